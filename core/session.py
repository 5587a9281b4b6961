"""One build's resources and their lifetimes: the cache lock, the blob store, the work directory and its
workspace, the isolation runner, the layer cache's publishing, the snapshot thread, the registry client (and
its TLS settings), the early uploads of a push. `BuildSession` takes them all in one ExitStack when entered and
releases them, in reverse order, when the build ends however it ends; in between it builds a plan's stages for
a platform (`build_platform`), as often as the build has platforms."""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Self

from .bases import BaseResolver
from .cache.digests import FileDigests
from .cache.layers import LayerCache
from .cache.locking import cache_lock_path, file_lock
from .cache.store import StepCache, StepEntry
from .context import BuildContext, DockerIgnore
from .errors import UsageError
from .events import NULL_EVENTS, Events, Message, StageStarted, StepFinished, StepStarted
from .image.blobs import BlobStore
from .image.model import Image, Layer, Platform
from .image.reference import parse_reference
from .isolation import NamespaceRunner, Runner
from .isolation.detect import select
from .isolation.emulation import require_emulation
from .named_contexts import NamedContexts
from .options import BuildOptions
from .outputs import CachedLayers, OutputWriter, target_chain
from .plan import BuildPlan, StagePlan
from .registry.routing import Routes
from .rootfs import Workspace, ownership
from .rootfs.overlay import enter_private_mount_namespace
from .stage.executor import StageExecutor, StageInputs
from .stage.mounts import MountSources
from .stage.schedule import StageStopped, default_jobs, first_step_numbers, run_stages, stage_dependencies
from .stage.services import BuildServices, BuiltSteps, StepRecord
from .stage.sources import StageResult
from .stage.state import ArgScope
from .workdirs import Leftover, sweep
from .workdirs import create as create_work_dir

if TYPE_CHECKING:  # imported where used: a build without them does not pay for their import
    from .registry.client import RegistryClient
    from .registry.push import EarlyUploads
    from .registry.tls import TLSSettings


class BuiltPlatform(NamedTuple):
    """What building a plan's stages for one platform made: the target's image (not yet finalized), what each
    step did, and the step-cache entries used or made (with their stage's index), for --cache-to."""

    plan: BuildPlan
    platform: Platform
    image: Image
    steps: tuple[StepRecord, ...]
    cache_entries: tuple[tuple[int, StepEntry], ...]
    # The other stages' images, (stage name, image) in order: what BUILDKIT_SBOM_SCAN_STAGE scans.
    stages: tuple[tuple[str, Image], ...] = ()


class StepNumbers(NamedTuple):
    """How a platform's steps are numbered in a build of several: after the `before` steps of the platforms
    built before it, out of the `total` of them all."""

    before: int
    total: int


class BuildSession:
    """A build's resources, taken when the session is entered and released when it is left.

    Made before the Dockerfile is read (a bad registry option is the first error a build reports); entered
    once the plan is made. What is per build lives here: the blob store, the registry client, the caches, the
    work directory; what is per platform (the stages' results, the bases pulled for that platform) lives in
    one `build_platform` call."""

    store: BlobStore
    workspace: Workspace
    runner: Runner
    layer_cache: LayerCache
    file_digests: FileDigests | None
    snapshots: ThreadPoolExecutor
    bases: BaseResolver
    cached_layers: CachedLayers
    outputs: OutputWriter
    context: BuildContext
    mount_sources: MountSources
    step_cache: StepCache
    host_files: HostFiles

    def __init__(self, options: BuildOptions, *, events: Events = NULL_EVENTS, runner: Runner | None = None,
                 client: RegistryClient | None = None):
        self.options = options
        self.events = events
        self._runner = runner
        self._client = client
        self._tls: TLSSettings | None = None  # the client's, made with the client and closed after the build
        self.routes = Routes.parse(options.registry_mirrors, options.registry_maps,
                                   fallback=not options.skip_default_registry_fallback)
        self.contexts = NamedContexts(options.build_contexts)
        self.early_uploads: EarlyUploads | None = None  # with --push: the final image's layers, sent early
        # Told of each layer of the final image a step makes, as it is made (with --sbom: recorded then).
        self.on_final_layer: Callable[[Layer], None] | None = None
        self._publishing: threading.Thread | None = None
        self._stack: ExitStack | None = None
        # The platforms the build's RUN steps execute for (plan.run_platforms), set by the builder before the
        # session is entered: what the emulation check looks at before any work starts.
        self.run_platforms: frozenset[Platform] = frozenset()
        # The steps a build of several platforms ran, by cache key, for the other targets to reuse.
        self.built_steps: BuiltSteps = {}
        self.jobs = 1  # how many stages may run at once: set when the session is entered

    # --- lifetimes -----------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        with ExitStack() as stack:  # what is taken before a failure here is released at once
            self._open(stack)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.__exit__(exc_type, exc, traceback)  # its callbacks never swallow the build's exception

    def _open(self, stack: ExitStack) -> None:
        """Takes the build's resources in order; `stack` releases them in reverse: the snapshot thread first
        (it reads the step directories), the cache lock and the TLS settings last."""
        opts = self.options
        work_parent = opts.work_parent
        work_parent.mkdir(parents=True, exist_ok=True)
        report_leftovers(sweep(work_parent), self.events)
        mode = select(str(work_parent), opts.isolation, reentry=False)
        self.events.emit(Message(level="info", text=f"isolation: {mode.name} ({mode.reason})"))
        require_emulation(self.run_platforms, mode.name, events=self.events)
        if mode.name == "namespaces":
            enter_private_mount_namespace()
        # Independent stages at the same time (stage/schedule.py); under proot one at a time, as its directory
        # roots and ownership records are kept for one step at a time.
        self.jobs = 1 if mode.name == "proot" else opts.jobs or default_jobs()
        stack.callback(self._close_tls)  # the client is made on first use, by any step of the build
        # Held shared for the whole build: `dockyard cache prune` (exclusive) never removes what a build uses.
        try:
            stack.enter_context(file_lock(cache_lock_path(opts.cache_root), shared=True))
            self.store = BlobStore(opts.blob_root)
        except OSError as exc:
            raise UsageError(f"cannot use the cache directory {opts.cache_root}: {exc.strerror}",
                             hint="give a writable directory with --cache-dir (or set XDG_CACHE_HOME)") from None
        work_dir = create_work_dir(work_parent)  # locked while this process lives: a sweep never takes it
        stack.callback(work_dir.remove)  # its lock file last: what cannot be removed now, a later sweep removes
        self.workspace = Workspace(work_dir.path)
        stack.callback(self.workspace.unmount)
        self.cached_layers = CachedLayers(self.registry_client, self.store)
        stack.callback(self.cached_layers.close)
        runner = self._runner or NamespaceRunner()
        if mode.name == "proot":
            from .isolation.proot import ProotRunner
            from .rootfs.trees import DirectoryRoots

            runner = self._runner or ProotRunner()
            # proot leaves the step on the host's directory tree: each path it opens in its root goes through
            # the work directory, and a step running as another user (a USER, or apt's download methods,
            # which switch to `_apt`) must be able to pass through it, or apt falls back to downloading as
            # root with a warning docker never prints. Others may pass (0711) but not list; the roots' own
            # directory has a name they cannot guess.
            os.chmod(self.workspace.root, 0o711)
            trees = self.workspace.root / f"trees-{secrets.token_hex(8)}"
            trees.mkdir(mode=0o711)
            self.workspace.trees = DirectoryRoots(trees, self.store, fetch=self.cached_layers.fetch)
            stack.enter_context(ownership.recording(self.workspace.trees.ledger))
        self.runner = runner
        self.layer_cache = LayerCache(opts.cache_root / "layers")
        stack.callback(self._finish_publishing)
        # With --no-cache nothing remembered is trusted, not even file contents.
        self.file_digests = None if opts.no_cache else FileDigests(opts.cache_root / "digests", str(opts.context))
        if self.file_digests is not None:
            self.file_digests.load()
        stack.callback(self._cancel_early_uploads)  # after the snapshot thread stops, which may still add layers
        # One layer per running stage is written while that stage's next RUN runs (stage/layer_writing.py).
        self.snapshots = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="snapshot")
        stack.callback(self.snapshots.shutdown, wait=True)  # before the workspace (the step directories it reads)
        # What the stages of every platform share.
        self.context = BuildContext(opts.context, DockerIgnore.load(opts.context, opts.dockerfile_path))
        self.mount_sources = MountSources.from_options(opts)
        self.step_cache = StepCache(opts.cache_root / "steps", ttl=opts.cache_ttl)
        self.host_files = host_files(self.workspace)
        self.bases = BaseResolver(client=self.registry_client, routes=self.routes, store=self.store,
                                  workspace=self.workspace, layer_cache=self.layer_cache,
                                  layers=self.cached_layers, compression=opts.compression,
                                  compression_level=opts.compression_level,
                                  source_date_epoch=opts.source_date_epoch)
        self.outputs = OutputWriter(opts, self.events, client=self.registry_client, store=self.store,
                                    cached_layers=self.cached_layers)
        if opts.wants_push:
            from .registry.push import EarlyUploads

            self.early_uploads = EarlyUploads(self.registry_client(), self.store,
                                              [parse_reference(t) for t in opts.push_targets])
        if opts.cache_to:
            from .cache.external import check_exports

            check_exports(opts.cache_to)  # before building: a cache that cannot be written is a usage error
        if opts.cache_from and not opts.no_cache:
            from .cache.external import import_caches

            self.cached_layers.remote = import_caches(self.registry_client, opts.cache_from, self.store,
                                                      self.events, opts.cache_ttl)

    def _close_tls(self) -> None:
        if self._tls is not None:
            self._tls.close()

    def _finish_publishing(self) -> None:
        if self._publishing is not None:
            self._publishing.join()
        else:
            self.layer_cache.publish()  # a failed build's finished steps are cached: keep their directories

    def _cancel_early_uploads(self) -> None:
        if self.early_uploads is not None:
            self.early_uploads.cancel()  # a failed build: nothing more is sent (a no-op once finished)

    # --- the registry --------------------------------------------------------------------------------------
    def registry_client(self) -> RegistryClient:
        """The build's registry client, made on first use (a build that uses no registry makes none)."""
        if self._client is None:
            from .registry.client import RegistryClient
            from .registry.tls import TLSSettings

            opts = self.options
            self._tls = TLSSettings.from_environment(
                opts.environ, ca_files=opts.registry_cas, client_certs=opts.registry_client_certs,
                insecure=opts.insecure_registries + opts.skip_tls_verify_registries, events=self.events)
            self._client = RegistryClient(insecure_registries=opts.insecure_registries, environ=opts.environ,
                                          events=self.events, max_parallel=opts.max_parallel_transfers,
                                          tls=self._tls, **self._retry_settings())
        return self._client

    def _retry_settings(self) -> dict[str, Any]:
        """The client's retry keywords for --push-retry / --image-download-retry (absent: its defaults)."""
        settings: dict[str, Any] = {}
        if self.options.push_retry is not None:
            settings["retries"] = self.options.push_retry
        if self.options.image_download_retry is not None:
            settings["pull_retries"] = self.options.image_download_retry
        return settings

    # --- building ------------------------------------------------------------------------------------------
    def build_platform(self, plan: BuildPlan, platform: Platform, build_args: dict[str, str],
                       used_args: set[str], *, steps: StepNumbers | None = None) -> BuiltPlatform:
        """Runs `plan`'s stages (made for `platform`) in order; the ARGs that consume a build arg add its name
        to `used_args`. In a build of several platforms, `steps` numbers the steps across them all, and the
        progress says which platform each stage and step is for; a step another target already built (the
        same cache key) is taken from it instead of running again."""
        opts = self.options
        services = BuildServices(
            store=self.store, workspace=self.workspace, runner=self.runner, context=self.context,
            events=self.events, compression=opts.compression, compression_level=opts.compression_level,
            source_date_epoch=opts.source_date_epoch,
            mount_sources=self.mount_sources, layer_cache=self.layer_cache,
            step_cache=self.step_cache, cache_lookups=not opts.no_cache,
            file_digests=self.file_digests, snapshots=self.snapshots,
            image_digest=lambda ref, inst: self.bases.image_digest(ref, inst, platform),
            image_rootfs=lambda ref, inst: self.bases.image_rootfs(ref, inst, platform),
            resolv_conf=self.host_files.resolv_conf, hosts=self.host_files.hosts)
        if self.contexts:
            services.named_contexts = self.bases.context_loader(self.contexts, platform)
        listeners = [f for f in (self.early_uploads.add if self.early_uploads is not None else None,
                                 self.on_final_layer) if f is not None]
        if listeners:
            final_stages = target_chain(plan)

            def on_layer(stage: int, layer: Layer) -> None:
                if stage in final_stages:
                    for listener in listeners:
                        listener(layer)
            services.on_layer = on_layer
        if self.cached_layers.remote is not None:
            services.remote_cache = self.cached_layers.remote
        if steps is not None:  # several platforms
            services.platform = str(platform)
            services.built_steps = self.built_steps
        results: dict[int, StageResult] = {}
        image = self._run_stages(plan, platform, services, build_args, used_args,
                                 steps or StepNumbers(0, plan.step_count), results)
        stages = tuple((p.stage.display_name, results[p.stage.index].image) for p in plan.stages
                       if p.stage.index != plan.target_index and p.stage.index in results)
        return BuiltPlatform(plan, platform, image, tuple(services.steps), tuple(services.cache_entries), stages)

    def _run_stages(self, plan: BuildPlan, platform: Platform, services: BuildServices,
                    build_args: dict[str, str], used_args: set[str], steps: StepNumbers,
                    results: dict[int, StageResult]) -> Image:
        """Runs the plan's stages, independent ones at the same time (stage/schedule.py); each stage records
        its steps and cache entries on its own, and they are gathered in Dockerfile order, as a build of one
        stage at a time has them."""
        total = steps.total
        first_steps = first_step_numbers(plan, steps.before)
        inputs = StageInputs(plan.dockerfile, ArgScope(build_args, plan.global_args), results,
                             lambda: (total, total), used_args)
        stop = threading.Event()
        stage_services: dict[int, BuildServices] = {}
        by_index = {p.stage.index: p for p in plan.stages}

        def run(index: int) -> None:
            own = stage_services[index] = replace(services, steps=[], cache_entries=[], stop=stop)
            numbers = itertools.count(first_steps[index])

            def next_step() -> tuple[int, int]:
                return min(next(numbers), total), total

            results[index] = self._run_stage(by_index[index], platform, own, inputs._replace(next_step=next_step))

        def stop_running() -> None:
            self.events.info("stopping the stages still running")
            stop_runner = getattr(self.runner, "stop", None)  # a runner without it: each stops after its step
            if stop_runner is not None:
                stop_runner()

        try:
            run_stages([p.stage.index for p in plan.stages], stage_dependencies(plan), run, jobs=self.jobs,
                       stop=stop, stop_running=stop_running)
        finally:
            for stage_plan in plan.stages:
                own = stage_services.get(stage_plan.stage.index)
                if own is not None:
                    services.steps.extend(own.steps)
                    services.cache_entries.extend(own.cache_entries)
        return results[plan.target_index].image

    def _run_stage(self, stage_plan: StagePlan, platform: Platform, services: BuildServices,
                   inputs: StageInputs) -> StageResult:
        """One stage: its FROM step (the base pulled, or an earlier stage's result taken), then its steps."""
        stage = stage_plan.stage
        shown_platform = services.platform  # None in a build of one platform: its output is as it always was
        base = (f"context {stage_plan.base_context}" if stage_plan.base_context is not None
                else stage_plan.base_image or f"stage {stage_plan.base_stage}")
        if services.stop is not None and services.stop.is_set():
            raise StageStopped(stage.display_name)
        self.events.emit(StageStarted(stage=stage.display_name, base=base, platform=shown_platform))
        step, total = inputs.next_step()
        services.steps.append(StepRecord(step, stage.base.original, stage.base.location.file,
                                         stage.base.location.start_line, started=time.time(),
                                         stage=stage.display_name, platform=shown_platform))
        self.events.emit(StepStarted(step=step, total=total, stage=stage.display_name,
                                     text=stage.base.original, file=stage.base.location.file,
                                     line=stage.base.location.start_line, platform=shown_platform))
        t0 = time.monotonic()
        try:
            image, rootfs, key = self.bases.stage_base(stage_plan, platform, inputs.stages, services.named_contexts)
        except Exception:
            self.events.emit(StepFinished(step=step, duration=time.monotonic() - t0, failed=True))
            raise
        services.steps[-1].duration = time.monotonic() - t0
        self.events.emit(StepFinished(step=step, duration=services.steps[-1].duration))
        if stage_plan.replaced:  # the stage is the named context of its name: nothing of it runs
            return StageResult(image, rootfs, key)
        return StageExecutor(stage, StageResult(image, rootfs, key), services, inputs).run()

    def finish_steps(self) -> None:
        """Once every platform's stages ran: remembers the context's file digests, and starts moving the
        steps' directories into the layer cache (renamed in, with boot-id markers) while the image is written."""
        if self.file_digests is not None:
            self.file_digests.save()
        self._publishing = threading.Thread(target=self.layer_cache.publish, name="layer-cache-publish")
        self._publishing.start()

    def finish_early_uploads(self) -> frozenset[str]:
        """Waits for the early uploads; the digests of the layers every pushed repository now has."""
        return self.early_uploads.finish() if self.early_uploads is not None else frozenset()


class HostFiles(NamedTuple):
    """Private copies of the host's resolv.conf and hosts for RUN steps (bound read-only); None: the host has none."""

    resolv_conf: str | None = None
    hosts: str | None = None


def host_files(workspace: Workspace) -> HostFiles:
    """Copies the host's resolv.conf and hosts into a directory of the workspace."""
    directory = workspace.new_file_dir()
    found = {}
    for name, key in (("resolv.conf", "resolv_conf"), ("hosts", "hosts")):
        source = Path("/etc") / name
        if source.is_file():
            target = os.path.join(directory, name)
            shutil.copyfile(source, target)
            os.chmod(target, 0o644)
            found[key] = target
    return HostFiles(**found)


def report_leftovers(leftovers: list[Leftover], events: Events) -> None:
    """Says what a sweep of the work parent removed (the work directories of killed builds) and what it could not."""
    removed = [leftover for leftover in leftovers if leftover.kept is None]
    if removed:
        freed = sum(leftover.freed for leftover in removed)
        events.info(f"removed the work directories of {len(removed)} stopped build(s) from {removed[0].path.parent} "
                    f"({freed / 1e6:.1f} MB)")
    for leftover in leftovers:
        if leftover.kept is not None:
            events.warning(f"cannot remove {leftover.path}, left by a stopped build: {leftover.kept}")
