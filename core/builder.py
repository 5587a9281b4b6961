"""A whole build: Dockerfile → plan → stages (pull, unpack, execute) → outputs. `build()` is the public API."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import events as ev
from . import workdirs
from .cache.digests import FileDigests
from .cache.keys import base_key
from .cache.layers import LayerCache
from .cache.locking import cache_lock_path, file_lock
from .cache.store import StepCache, StepEntry
from .context import BuildContext, DockerIgnore, check_context
from .dockerfile import instructions as ins
from .dockerfile.parser import load_dockerfile
from .errors import AuthenticationError, DockerfileError, DockyardError, OutputError, RegistryError, UsageError
from .files import replace_file
from .image.blobs import BlobStore
from .image.model import (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, Image, Layer,
                          Platform)
from .image.reference import Reference, parse_reference
from .isolation import NamespaceRunner, Runner
from .isolation.detect import select
from .named_contexts import NamedContexts
from .options import EPOCH_ARG, BuildOptions, check_compression
from .plan import StagePlan, make_plan
from .registry.routing import Routes
from .rootfs import PendingLayer, RootFS, Workspace, ownership
from .rootfs.overlay import enter_private_mount_namespace
from .stage.executor import StageExecutor, StageInputs
from .stage.history import created_time
from .stage.mounts import MountSources
from .stage.services import BuildServices, StepRecord
from .stage.sources import StageResult
from .stage.state import PROXY_ARGS, ArgScope

if TYPE_CHECKING:  # imported where used: a build without them does not pay for their import
    from .cache.remote import RemoteCache


@dataclass(frozen=True)
class BuildResult:
    """What a build made: the image and its digest, where it was tagged and pushed, and what each step did."""

    digest: str
    image: Image
    tags: tuple[str, ...]
    steps: tuple[StepRecord, ...]
    pushed: tuple[str, ...] = ()
    duration: float = 0.0
    warnings: tuple[str, ...] = field(default=())

    @property
    def config_digest(self) -> str:
        return self.image.config_descriptor().digest

    def metadata(self) -> dict:
        return {
            "containerimage.digest": self.digest,
            "containerimage.config.digest": self.config_digest,
            "image.name": ",".join(self.tags),
            "digest": self.digest,
            "config_digest": self.config_digest,
            "tags": list(self.tags),
            "pushed": list(self.pushed),
            "platform": str(self.image.platform),
            "layers": [{"digest": l.digest, "size": l.size, "mediaType": l.media_type, "diff_id": l.diff_id}
                       for l in self.image.layers],
            "steps": [{"step": s.step, "instruction": s.instruction, "file": s.file, "line": s.line,
                       "duration": round(s.duration, 4), "cached": s.cached, "cache_source": s.cache_source,
                       "layer": s.layer.digest if s.layer else None} for s in self.steps],
            "cache": {"hits": sum(s.cached is True for s in self.steps),
                      "misses": sum(s.cached is False for s in self.steps)},
            "duration": round(self.duration, 4),
        }


# Docker's layer media types become their OCI twins when written into an OCI manifest (same bytes).
_TO_OCI_LAYER = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}



def unused_build_args(build_args: dict[str, str], used: set[str]) -> list[str]:
    """Build args no ARG consumed. The proxy args (any spelling, as BuildKit compares them) are used by RUN
    without an ARG, and BUILDKIT_* args and SOURCE_DATE_EPOCH are the builder's own: docker reports none."""
    return sorted(name for name in build_args
                  if name not in used and name.upper() not in PROXY_ARGS and not name.startswith("BUILDKIT_")
                  and name != EPOCH_ARG)


def build_args_with_epoch(options: BuildOptions) -> dict[str, str]:
    """The build args, with the environment's SOURCE_DATE_EPOCH added as buildx and buildctl add it (so an
    `ARG SOURCE_DATE_EPOCH` sees it); a --build-arg of that name wins."""
    build_args = dict(options.build_args)
    if options.environ.get(EPOCH_ARG):
        build_args.setdefault(EPOCH_ARG, options.environ[EPOCH_ARG])
    return build_args


def directive_notes(dockerfile: ins.Dockerfile) -> list[str]:
    """What dockyard says about parser directives it accepts but does not act on."""
    notes = []
    for name, value in dockerfile.directives:
        if name == "syntax":
            notes.append(f"dockyard uses its built-in Dockerfile frontend; the syntax directive ({value}) is not "
                         "fetched")
        elif name == "check":
            notes.append(f"the check directive ({value}) applies to the build checks, which run with "
                         "`dockyard build --check` or `dockyard lint`")
    return notes


class Builder:
    def __init__(self, options: BuildOptions, *, events: ev.Events = ev.NULL_EVENTS,
                 runner: Runner | None = None, client=None):
        self.options = options
        self.events = events
        self.runner = runner
        self._client = client
        self._tls = None  # the client's TLSSettings, made with the client and closed after the build
        self.routes = Routes.parse(options.registry_mirrors, options.registry_maps,
                                   fallback=not options.skip_default_registry_fallback)
        self._pulled: dict[str, tuple[Image, RootFS | None]] = {}
        self.remote_cache: RemoteCache | None = None  # the --cache-from entries, read at the build's start
        self.platform = self._parse_platform(options.platform)

    @staticmethod
    def _parse_platform(text: str) -> Platform:
        try:
            return Platform.parse(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    @property
    def client(self):
        if self._client is None:
            from .registry.client import RegistryClient

            opts = self.options
            self._tls = self._tls_settings()
            self._client = RegistryClient(insecure_registries=opts.insecure_registries, environ=opts.environ,
                                          events=self.events, max_parallel=opts.max_parallel_transfers,
                                          tls=self._tls, **self._retry_settings())
        return self._client

    def _tls_settings(self):
        from .registry.tls import TLSSettings

        opts = self.options
        return TLSSettings.from_environment(opts.environ, ca_files=opts.registry_cas,
                                            client_certs=opts.registry_client_certs,
                                            insecure=opts.insecure_registries + opts.skip_tls_verify_registries,
                                            events=self.events)

    def _retry_settings(self) -> dict[str, int]:
        """The client's retry keywords for --push-retry / --image-download-retry (absent: its defaults)."""
        settings = {}
        if self.options.push_retry is not None:
            settings["retries"] = self.options.push_retry
        if self.options.image_download_retry is not None:
            settings["pull_retries"] = self.options.image_download_retry
        return settings

    # --- the build ---------------------------------------------------------------------------------------
    def build(self) -> BuildResult:
        started = time.monotonic()
        opts = self.options
        check_context(opts.context)
        check_compression(opts.compression, opts.compression_level)
        epoch = opts.source_date_epoch
        tags = tuple(self._check_tags(opts.tags))
        dockerfile_path = opts.dockerfile_path
        dockerfile = load_dockerfile(dockerfile_path, display_path(dockerfile_path))
        build_args = build_args_with_epoch(opts)
        used_args: set[str] = set()
        contexts = NamedContexts(opts.build_contexts)
        plan = make_plan(dockerfile, opts.target, build_args, used_args, platform=self.platform, contexts=contexts)
        self.events.emit(ev.BuildStarted(dockerfile=dockerfile.path, context=str(opts.context),
                                         stages=len(plan.stages), steps=plan.step_count))
        for note in directive_notes(dockerfile):
            self.events.emit(ev.Message(level="info", text=note))
        work_parent = opts.work_parent
        work_parent.mkdir(parents=True, exist_ok=True)
        report_leftovers(workdirs.sweep(work_parent), self.events)
        mode = select(str(work_parent), opts.isolation, reentry=False)
        self.events.emit(ev.Message(level="info", text=f"isolation: {mode.name} ({mode.reason})"))
        if mode.name == "namespaces":
            enter_private_mount_namespace()
        # Held shared for the whole build: `dockyard cache prune` (exclusive) never removes what a build uses.
        cache_lock = ExitStack()
        try:
            cache_lock.enter_context(file_lock(cache_lock_path(opts.cache_root), shared=True))
            store = BlobStore(opts.blob_root)
        except OSError as exc:
            cache_lock.close()
            raise UsageError(f"cannot use the cache directory {opts.cache_root}: {exc.strerror}",
                             hint="give a writable directory with --cache-dir (or set XDG_CACHE_HOME)") from None
        work_dir = workdirs.create(work_parent)  # locked while this process lives: a sweep never takes it
        workspace = Workspace(work_dir.path)
        recording = ExitStack()
        runner = self.runner or NamespaceRunner()
        if mode.name == "proot":
            from .isolation.proot import ProotRunner
            from .rootfs.trees import DirectoryRoots

            runner = self.runner or ProotRunner()
            # proot leaves the step on the host's directory tree: each path it opens in its root goes through
            # the work directory, and a step running as another user (a USER, or apt's download methods,
            # which switch to `_apt`) must be able to pass through it, or apt falls back to downloading as
            # root with a warning docker never prints. Others may pass (0711) but not list; the roots' own
            # directory has a name they cannot guess.
            os.chmod(workspace.root, 0o711)
            trees = workspace.root / f"trees-{secrets.token_hex(8)}"
            trees.mkdir(mode=0o711)
            workspace.trees = DirectoryRoots(trees, store,
                                             fetch=lambda layers: self._fetch_cached_layers(layers, store, None))
            recording.enter_context(ownership.recording(workspace.trees.ledger))
        self.layer_cache = LayerCache(opts.cache_root / "layers")
        # With --no-cache nothing remembered is trusted, not even file contents.
        file_digests = None if opts.no_cache else FileDigests(opts.cache_root / "digests", str(opts.context))
        if file_digests is not None:
            file_digests.load()
        publishing: threading.Thread | None = None
        early_uploads = None  # with --push: the final image's layers, sent while the build goes on
        # One layer at a time is written while the next RUN runs (stage/layer_writing.py).
        snapshots = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        try:
            services = BuildServices(
                store=store, workspace=workspace, runner=runner,
                context=BuildContext(opts.context, DockerIgnore.load(opts.context, dockerfile_path)),
                events=self.events, compression=opts.compression, compression_level=opts.compression_level,
                source_date_epoch=epoch,
                mount_sources=MountSources.from_options(opts), layer_cache=self.layer_cache,
                step_cache=StepCache(opts.cache_root / "steps", ttl=opts.cache_ttl), cache_lookups=not opts.no_cache,
                file_digests=file_digests, snapshots=snapshots,
                image_digest=lambda ref, inst: self._image_digest(ref, inst, store, workspace),
                image_rootfs=lambda ref, inst: self._image_rootfs(ref, inst, store, workspace),
                **self._host_files(workspace))
            if contexts:
                services.named_contexts = self._context_loader(contexts, store, workspace)
            if opts.wants_push:
                from .registry.push import EarlyUploads

                early_uploads = EarlyUploads(self.client, store, [parse_reference(t) for t in tags])
                pushed_stages = target_chain(plan)
                services.on_layer = lambda stage, layer: early_uploads.add(layer) if stage in pushed_stages else None
            if opts.cache_from and not opts.no_cache:
                from .cache.remote import import_caches

                self.remote_cache = import_caches(self.client, [c.ref for c in opts.cache_from], store,
                                                  self.events, opts.cache_ttl)
                services.remote_cache = self.remote_cache
            image = self._run_stages(plan, dockerfile, services, build_args, used_args)
            if file_digests is not None:
                file_digests.save()
            # The steps' directories join the layer cache (renamed in, with boot-id markers) as the image is written.
            publishing = threading.Thread(target=self.layer_cache.publish, name="layer-cache-publish")
            publishing.start()
            image = self._finalize(image, epoch)
            digest = image.digest
            pushed = self._write_outputs(image, store, tags,
                                         early_uploads.finish() if early_uploads is not None else frozenset())
            self._export_caches(plan, services.cache_entries, store, pushed)
            unused = unused_build_args(build_args, used_args)
            warnings = []
            if unused:
                warnings.append(f"build arguments were not consumed by any ARG: {', '.join(unused)}")
                self.events.warning(warnings[-1])
            result = BuildResult(digest=digest, image=image, tags=tags, steps=tuple(services.steps),
                                 pushed=tuple(pushed), duration=time.monotonic() - started,
                                 warnings=tuple(warnings))
            self._write_result_files(result)
            self.events.emit(ev.BuildFinished(digest=digest, duration=result.duration))
            return result
        finally:
            snapshots.shutdown(wait=True)  # before the workspace (the step directories it reads) goes
            if early_uploads is not None:
                early_uploads.cancel()  # a failed build: nothing more is sent (a no-op once finished)
            if publishing is not None:
                publishing.join()
            else:
                self.layer_cache.publish()  # a failed build's finished steps are cached: keep their directories
            recording.close()
            workspace.unmount()
            work_dir.remove()  # its lock file last: what cannot be removed now, a later sweep removes
            cache_lock.close()
            if self._tls is not None:
                self._tls.close()

    def _check_tags(self, tags: tuple[str, ...]) -> list[str]:
        for tag in tags:
            parse_reference(tag)  # raises UsageError naming the bad tag
        if self.options.wants_push and not tags:
            raise UsageError("--push needs at least one --tag naming where to push",
                             hint="e.g. -t registry.example.com/team/app:1.0")
        return list(tags)

    def _host_files(self, workspace: Workspace) -> dict:
        """Private copies of the host's resolv.conf and hosts for RUN steps (bound read-only)."""
        directory = workspace.new_file_dir()
        found = {}
        for name, key in (("resolv.conf", "resolv_conf"), ("hosts", "hosts")):
            source = Path("/etc") / name
            if source.is_file():
                target = os.path.join(directory, name)
                shutil.copyfile(source, target)
                os.chmod(target, 0o644)
                found[key] = target
        return found

    def _context_loader(self, contexts: NamedContexts, store: BlobStore, workspace: Workspace):
        from .context_sources import ContextImage, LayerSettings, NamedContextLoader

        def pull(text: str, platform: Platform) -> ContextImage:
            image, rootfs = self._pull_and_unpack(text, platform, store, workspace)
            return ContextImage(image, rootfs, _base_digest(image))

        opts = self.options
        return NamedContextLoader(contexts, store=store, workspace=workspace, pull=pull, platform=self.platform,
                                  new_root=lambda: RootFS(unpacker=self._unpacker(store, workspace)),
                                  layers=LayerSettings(opts.compression, opts.compression_level,
                                                       opts.source_date_epoch))

    def _run_stages(self, plan, dockerfile: ins.Dockerfile, services: BuildServices,
                    build_args: dict[str, str], used_args: set[str]) -> Image:
        results: dict[int, StageResult] = {}
        counter = iter(range(1, plan.step_count + 1))
        total = plan.step_count

        def next_step() -> tuple[int, int]:
            return next(counter, total), total

        inputs = StageInputs(dockerfile, ArgScope(build_args, plan.global_args), results, next_step, used_args)

        for stage_plan in plan.stages:
            stage = stage_plan.stage
            base = (f"context {stage_plan.base_context}" if stage_plan.base_context is not None
                    else stage_plan.base_image or f"stage {stage_plan.base_stage}")
            self.events.emit(ev.StageStarted(stage=stage.display_name, base=base))
            step, _ = next_step()
            services.steps.append(StepRecord(step, stage.base.original, stage.base.location.file,
                                             stage.base.location.start_line))
            self.events.emit(ev.StepStarted(step=step, total=total, stage=stage.display_name,
                                            text=stage.base.original, file=stage.base.location.file,
                                            line=stage.base.location.start_line))
            t0 = time.monotonic()
            try:
                image, rootfs, key = self._stage_base(stage_plan, results, services)
            except Exception:
                self.events.emit(ev.StepFinished(step=step, duration=time.monotonic() - t0, failed=True))
                raise
            services.steps[-1].duration = time.monotonic() - t0
            self.events.emit(ev.StepFinished(step=step, duration=services.steps[-1].duration))
            if stage_plan.replaced:  # the stage is the named context of its name: nothing of it runs
                results[stage.index] = StageResult(image, rootfs, key)
                continue
            executor = StageExecutor(stage, StageResult(image, rootfs, key), services, inputs)
            results[stage.index] = executor.run()
        return results[plan.target_index].image

    def _stage_base(self, stage_plan: StagePlan, results: dict[int, StageResult],
                    services: BuildServices) -> tuple[Image, RootFS, str]:
        """The stage's starting image, root and cache key."""
        if stage_plan.base_stage is not None:
            parent = results[stage_plan.base_stage]
            return parent.image, parent.rootfs, parent.key
        platform = self._parse_platform(stage_plan.platform) if stage_plan.platform else self.platform
        opts = self.options
        settings = dict(platform=str(platform), source_date_epoch=opts.source_date_epoch,
                        compression=opts.compression, level=opts.compression_level)
        if stage_plan.base_context is not None:
            return self._context_base(stage_plan, platform, services, settings)
        if stage_plan.base_image == "scratch":
            return Image(meta={"architecture": platform.architecture, "os": platform.os,
                               **({"variant": platform.variant} if platform.variant else {})}), \
                RootFS(unpacker=self._unpacker(services.store, services.workspace)), base_key("scratch", **settings)
        try:
            image, rootfs = self._pull_and_unpack(stage_plan.base_image, platform, services.store, services.workspace)
            return image, rootfs, base_key(_base_digest(image), **settings)
        except DockyardError as exc:
            if exc.location is None:  # a pull error is reported at the FROM line that asked for the image
                exc.location = stage_plan.stage.base.location
            raise

    @staticmethod
    def _context_base(stage_plan: StagePlan, platform: Platform, services: BuildServices,
                      settings: dict) -> tuple[Image, RootFS, str]:
        """FROM a named context (or a stage the context replaces): its image, and a key from its digest."""
        loader = services.named_contexts
        context = loader.lookup(stage_plan.base_context) if loader is not None else None
        assert context is not None, "the plan names only contexts the build has"
        try:
            loaded = loader.image(context, platform)
            key = base_key(f"context {loader.digest(context, platform)}", **settings)
        except DockyardError as exc:
            if exc.location is None:
                exc.location = stage_plan.stage.base.location
            raise
        return loaded.image, loaded.rootfs, key

    def _pull_and_unpack(self, text: str, platform: Platform, store: BlobStore,
                         workspace: Workspace) -> tuple[Image, RootFS]:
        key = f"{text}|{platform}"
        cached = self._pulled.get(key)
        if cached and cached[1] is not None:
            return cached[0], cached[1]
        from .registry.pull import pull_image

        ref = parse_reference(text)
        pulled = pull_image(self.client, ref, platform, store, self.routes)
        image = pulled.image.with_config()  # a copy of the base's config to build on
        # Unpacked (into the layer cache, once per machine) only when a step mounts the root.
        rootfs = RootFS(unpacker=self._unpacker(store, workspace))
        for layer in image.layers:
            rootfs = rootfs.with_pending(layer)
        base_annotations = (("org.opencontainers.image.base.digest", pulled.digest),
                            ("org.opencontainers.image.base.name", str(ref)))
        image = replace(image, annotations=base_annotations)
        self._pulled[key] = (image, rootfs)
        return image, rootfs

    def _unpacker(self, store: BlobStore, workspace: Workspace):
        def unpack(pending: PendingLayer, lowers: list[str]) -> str:
            if not self.layer_cache.has(pending.chain):
                self._fetch_cached_layers([pending.layer], store, None)  # a registry cache hit's blob
            return self.layer_cache.unpacked(pending.layer, pending.chain, lowers, store, workspace.new_mountpoint())
        return unpack

    def _image_digest(self, text: str, inst: ins.Instruction, store: BlobStore, workspace: Workspace) -> str:
        try:
            return _base_digest(self._pull_and_unpack(text, self.platform, store, workspace)[0])
        except UsageError as exc:
            raise DockerfileError(f"--from={text} is neither a stage nor an image reference: {exc.message}",
                                  location=inst.location) from None

    def _image_rootfs(self, text: str, inst: ins.Instruction, store: BlobStore, workspace: Workspace) -> RootFS:
        try:
            return self._pull_and_unpack(text, self.platform, store, workspace)[1]
        except UsageError as exc:
            raise DockerfileError(f"--from={text} is neither a stage nor an image reference: {exc.message}",
                                  location=inst.location) from None

    def _finalize(self, image: Image, epoch: int | None) -> Image:
        """The image as it is written: OCI media types, build labels, a creation time (SOURCE_DATE_EPOCH's)."""
        labels = dict(image.container_config.get("Labels") or {})
        labels.update(dict(self.options.labels))
        if labels:
            image = image.with_config(Labels=labels)
        layers = tuple(Layer(Descriptor(_TO_OCI_LAYER.get(l.media_type, l.media_type), l.digest, l.size), l.diff_id)
                       for l in image.layers)
        # The user's annotations join the base image's (org.opencontainers.image.base.*) and win on the same key.
        annotations = dict(image.annotations) | dict(self.options.annotations)
        return replace(image, layers=layers, manifest_media_type=OCI_MANIFEST,
                       annotations=tuple(sorted(annotations.items()))).with_meta(created=created_time(epoch))

    # --- outputs -----------------------------------------------------------------------------------------
    def _write_outputs(self, image: Image, store: BlobStore, tags: tuple[str, ...],
                       uploaded: frozenset[str]) -> list[str]:
        pushed: list[str] = []
        opts = self.options
        refs = [parse_reference(t) for t in tags]
        # Layers of registry cache hits: mounted into the pushed repositories when they are all on the cache's
        # registry and nothing else is written, else downloaded now.
        registries = {r.registry for r in refs}
        mount_to = registries.pop() if opts.wants_push and not opts.outputs and len(registries) == 1 else None
        self._fetch_cached_layers(list(image.layers), store, mount_to)
        if opts.wants_push:
            from .registry.push import push_image

            push_image(self.client, image, store, refs, uploaded)
            pushed = [str(r) for r in refs]
        for output in opts.outputs:
            if output.type == "oci":
                from .image.layout import write_oci_layout

                names = [r.tag or "latest" for r in refs] or ["latest"]
                write_oci_layout(image, store, Path(output.dest), names)
            elif output.type == "docker":
                from .image.archive import write_docker_archive

                write_docker_archive(image, store, Path(output.dest), [_repo_tag(r) for r in refs])
        if not opts.wants_push and not opts.outputs:
            self.events.warning("no output requested: the image was built but is only kept in dockyard's blob "
                                "store; use --push or --output type=oci,dest=DIR")
        return pushed

    def _fetch_cached_layers(self, layers: list[Layer], store: BlobStore, mount_to: str | None) -> None:
        """Make each layer that came from a registry cache available: tell the client where it is when it can
        be mounted into registry `mount_to`, else download it into the store."""
        if self.remote_cache is None:
            return
        for layer in layers:
            source = self.remote_cache.source_of(layer.digest)
            if source is None or store.has(layer.digest):
                continue
            if source.registry == mount_to:
                self.client.remember_source(source, layer.digest)
            else:
                self.client.fetch_blob(source, layer.digest, store, size=layer.size)

    def _export_caches(self, plan, entries: list[tuple[int, StepEntry]], store: BlobStore,
                       pushed: list[str]) -> None:
        """--cache-to: the steps of the final image (mode=min) or of every stage (max) to each cache ref. A
        failure is an error (a warning with ignore-error=true) that says the image itself was written."""
        if not self.options.cache_to:
            return
        from .cache.remote import export_cache

        final_stages = target_chain(plan)
        for spec in self.options.cache_to:
            ref = parse_reference(spec.ref)
            chosen = {e.key: e for stage, e in entries if spec.mode == "max" or stage in final_stages}
            try:
                self._fetch_cached_layers([e.layer for e in chosen.values() if e.layer], store, ref.registry)
                digest = export_cache(self.client, store, ref, list(chosen.values()))
            except DockyardError as exc:
                done = f"the image was pushed to {', '.join(pushed)}" if pushed else "the image was built"
                text = f"cannot export the build cache to {ref} ({done}; only the cache export failed): {exc.message}"
                if spec.ignore_error:
                    self.events.warning(text)
                    continue
                error = AuthenticationError if isinstance(exc, AuthenticationError) else RegistryError
                raise error(text, hint=exc.hint, subject=str(ref)) from None
            self.events.info(f"exported {len(chosen)} cached steps to {ref} ({digest})")

    def _write_result_files(self, result: BuildResult) -> None:
        for path, text in ((self.options.digest_file, result.digest),
                           (self.options.metadata_file, json.dumps(result.metadata(), indent=2))):
            if path is None:
                continue
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                replace_file(Path(path), (text + ("\n" if not text.endswith("\n") else "")).encode())
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror}", subject=str(path)) from None


def report_leftovers(leftovers: list[workdirs.Leftover], events: ev.Events) -> None:
    """Says what a sweep of the work parent removed (the work directories of killed builds) and what it could not."""
    removed = [l for l in leftovers if l.kept is None]
    if removed:
        freed = sum(l.freed for l in removed)
        events.info(f"removed the work directories of {len(removed)} stopped build(s) from {removed[0].path.parent} "
                    f"({freed / 1e6:.1f} MB)")
    for leftover in leftovers:
        if leftover.kept is not None:
            events.warning(f"cannot remove {leftover.path}, left by a stopped build: {leftover.kept}")


def target_chain(plan) -> set[int]:
    """The indexes of the target stage and the stages it is built on (FROM another stage): every layer they make
    is in the final image."""
    chain = set()
    index: int | None = plan.target_index
    by_index = {p.stage.index: p for p in plan.stages}
    while index is not None:
        chain.add(index)
        index = by_index[index].base_stage
    return chain


def _base_digest(image: Image) -> str:
    """The manifest digest a pulled image was resolved to (recorded in its base annotations)."""
    return dict(image.annotations)["org.opencontainers.image.base.digest"]


def _repo_tag(ref: Reference) -> str:
    name = ref.name[len("docker.io/"):] if ref.registry == "docker.io" else ref.name
    if name.startswith("library/") and ref.registry == "docker.io":
        name = name[len("library/"):]
    return f"{name}:{ref.tag or 'latest'}"


def display_path(path: Path) -> str:
    """How messages and findings name a file: relative to the working directory when it is below it."""
    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("..") else str(path)
    except ValueError:
        return str(path)


def build(options: BuildOptions, *, events: ev.Events = ev.NULL_EVENTS, runner: Runner | None = None,
          client=None) -> BuildResult:
    """Build an image as `options` say. Raises a DockyardError subclass (with a location) on failure."""
    return Builder(options, events=events, runner=runner, client=client).build()
