"""Executing one stage, instruction by instruction. The instructions that only change the image config are
here; RUN is in run_step.py and COPY/ADD in copy_step.py. Each filesystem change becomes one layer."""

from __future__ import annotations

import datetime as _dt
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

from . import events as ev
from .cache.digests import FileDigests
from .cache.keys import step_key
from .cache.layers import LayerCache
from .cache.store import StepCache, StepEntry, new_entry
from .context import BuildContext
from .dockerfile import instructions as ins
from .dockerfile.expand import Expander
from .errors import DockerfileError, DockyardError, StepFailed
from .image.blobs import BlobStore
from .image.model import HistoryEntry, Image, Layer
from .isolation import Runner
from .mounts import MountSources
from .named_contexts import NamedContext
from .options import go_duration
from .rootfs import RootFS, Workspace, mounted_readonly, mounted_step
from .rootfs.ownership import Ownership
from .rootfs.paths import image_path_join
from .rootfs.snapshot import write_layer
from .run_step import execute_run, run_cache_inputs
from .users import resolve_mkdir_owner

if TYPE_CHECKING:
    from .cache.remote import RemoteCache
    from .context_sources import NamedContextLoader

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")
# Build args that RUN sees without an ARG line (BuildKit's proxy env); never in the image config or history.
PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")


def created_time(epoch: int | None = None) -> str:
    """A `created` timestamp: now, or SOURCE_DATE_EPOCH written as BuildKit writes it (whole seconds, UTC)."""
    if epoch is None:
        return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StageResult:
    """What later stages need from a finished stage: its image, its root filesystem and its cache key."""

    image: Image
    rootfs: RootFS
    key: str = ""


@dataclass
class StepRecord:
    """What one step did, for the build's result and metadata: its instruction, time, layer and cache outcome."""

    step: int
    instruction: str
    file: str
    line: int
    duration: float = 0.0
    layer: Layer | None = None
    cached: bool | None = None  # True: taken from the step cache; False: looked up and missed; None: not cacheable
    cache_source: str | None = None  # a hit's origin: "local", or the --cache-from ref


@dataclass
class BuildServices:
    """What a stage executor works with; filled once per build by the builder."""

    store: BlobStore
    workspace: Workspace
    runner: Runner
    context: BuildContext
    events: ev.Events
    compression: str = "gzip"
    compression_level: int | None = None
    # Reproducible builds: history times and layer mtimes no later than this (None: the clock, mtimes as found).
    source_date_epoch: int | None = None
    # COPY --from=IMAGE (not a stage): returns that image's unpacked root.
    image_rootfs: Callable[[str, ins.Instruction], RootFS] | None = None
    resolv_conf: str | None = None
    hosts: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    # RUN --mount's host side: --secret, --ssh, the cache-mount directory.
    mount_sources: MountSources = field(default_factory=MountSources)
    layer_cache: LayerCache | None = None  # unpacked layers shared between builds
    step_cache: StepCache | None = None  # results of RUN/COPY/ADD steps, by key
    cache_lookups: bool = True  # False with --no-cache: every step runs (and its result is recorded)
    remote_cache: RemoteCache | None = None  # --cache-from: looked up when the local cache misses
    # Every step entry this build used or made, with its stage's index: what --cache-to exports.
    cache_entries: list[tuple[int, StepEntry]] = field(default_factory=list)
    # COPY --from=IMAGE / RUN --mount=from=IMAGE in a cache key: that image's manifest digest.
    image_digest: Callable[[str, ins.Instruction], str] | None = None
    # Content digests of context files remembered between builds, for COPY/ADD and bind-mount cache keys.
    file_digests: FileDigests | None = None
    # Writes a step's layer while the next RUN runs (StageExecutor._commit); None: every layer in turn.
    snapshots: ThreadPoolExecutor | None = None
    # --build-context: the named contexts, read when a step first needs one.
    named_contexts: NamedContextLoader | None = None
    # Told of every layer a stage's image gains (made or cached), with the stage's index: the builder starts
    # pushing the final image's layers while later steps run.
    on_layer: Callable[[int, Layer], None] | None = None


class _Writing:
    """A step's layer being written on the snapshot thread while the next RUN runs (StageExecutor._commit).

    What the step still has to do once its layer is known (put the layer in the image, record its cache entry,
    report it finished) is queued with `then`, and done in order by `finish`, which the executor calls before
    anything that reads the image or the root's ChainID: at the latest, when that next RUN is committed. So a
    RUN's command and the snapshot of the step before it run at the same time, each on a core of its own."""

    def __init__(self, future: Future, inst: ins.Instruction):
        self._future = future
        self._inst = inst
        self._then: list[Callable[[Layer], None]] = []
        self._failed: list[Callable[[], None]] = []
        self.done_at = 0.0  # when the layer was written: the end of the step, for its duration
        future.add_done_callback(self._mark_done)

    def _mark_done(self, _future: Future) -> None:
        self.done_at = time.monotonic()

    def then(self, action: Callable[[Layer], None], failed: Callable[[], None] | None = None) -> None:
        self._then.append(action)
        if failed is not None:
            self._failed.append(failed)

    def finish(self) -> Layer:
        try:
            try:
                layer, _ = self._future.result()
            except OSError as exc:
                raise StepFailed(f"{self._inst.keyword} failed: {exc}") from None
        except DockyardError as exc:
            if exc.location is None:
                exc.location = self._inst.location
            for failed in self._failed:
                failed()
            raise
        for action in self._then:
            action(layer)
        return layer


class StageExecutor:
    def __init__(self, stage: ins.Stage, image: Image, rootfs: RootFS, services: BuildServices,
                 build_args: dict[str, str], used_args: set[str], stages: dict[int, StageResult],
                 dockerfile: ins.Dockerfile, step_counter: Callable[[], tuple[int, int]],
                 global_args: dict[str, str], cache_key: str = ""):
        self.stage = stage
        self.cache_key = cache_key  # the key of everything so far: the base, then each step in turn
        self.image = image
        self.rootfs = rootfs
        self.s = services
        self.build_args = build_args
        self.used_args = used_args
        self.stages = stages
        self.dockerfile = dockerfile
        self.expander = Expander(escape=dockerfile.escape)
        self.args: dict[str, str] = {}  # ARGs declared in this stage, with their values
        # ARGs declared after the last ENV of the same name (inherited ENV included): BuildKit keeps one
        # environment in declaration order, so such an ARG wins; an ENV declared after an ARG wins over it.
        self._args_over_env: set[str] = set()
        self.shell = tuple(image.container_config.get("Shell") or DEFAULT_SHELL)
        self.cmd_set_in_stage = False
        # WORKDIR's directories (path, USER, the WORKDIR line), made in the next step's layer when that step
        # runs: made right away they would need the root unpacked even when every later step is cached.
        self._pending_workdirs: list[tuple[str, str | None, ins.Instruction]] = []
        self._next_step = step_counter
        self.global_args = global_args  # values of the ARGs before the first FROM
        self._inst: ins.Instruction | None = None  # the instruction being dispatched
        self._next_inst: ins.Instruction | None = None  # the one after it in the stage, if any
        self._writing: _Writing | None = None  # the last step's layer, while the snapshot thread writes it

    default_path = DEFAULT_PATH

    # --- environment -------------------------------------------------------------------------------------
    def env_list(self) -> list[str]:
        return list(self.image.container_config.get("Env") or [])

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env_list():
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def expansion_env(self) -> dict[str, str]:
        """Variables visible to expansion: stage ARGs and ENV, the later declaration of a name winning."""
        env = dict(self.args)
        env.update(self.env_dict())
        env.update({name: self.args[name] for name in self._args_over_env})
        return env

    def step_env(self) -> dict[str, str]:
        """The environment of a RUN step: the proxy build args (both spellings, as BuildKit sets them, with
        no ARG needed), then what expansion sees."""
        env: dict[str, str] = {}
        for name in PROXY_ARGS:
            value = self.build_args.get(name, self.build_args.get(name.lower()))
            if value is not None:
                env[name] = env[name.lower()] = value
        env.update(self.expansion_env())
        return env

    def expand(self, inst: ins.Instruction, text: str) -> str:
        try:
            return self.expander.expand_word(text, self.expansion_env())
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None

    def expand_words(self, inst: ins.Instruction, text: str) -> list[str]:
        try:
            return self.expander.expand_words(text, self.expansion_env())
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None

    # --- other stages and images (COPY --from, RUN --mount from=) ------------------------------------------
    def stage_named(self, ref: str) -> ins.Stage | None:
        """The stage `ref` names, by name or index; None when it names an image. (The plan has already refused
        a reference to this stage or a later one.)"""
        stage = self.dockerfile.stage_by_name(ref)
        if stage is None and ref.isdigit() and int(ref) < len(self.dockerfile.stages):
            stage = self.dockerfile.stages[int(ref)]
        return stage

    def named_context(self, ref: str) -> NamedContext | None:
        """The named context `ref` names when it names no stage (a stage of a context's name is replaced by the
        context already)."""
        if self.s.named_contexts is None or self.stage_named(ref) is not None:
            return None
        return self.s.named_contexts.lookup(ref)

    def source_rootfs(self, inst: ins.Instruction, ref: str, flag: str) -> RootFS:
        """The root that `flag`=`ref` reads: an earlier stage's, a named context's, or an image's."""
        stage = self.stage_named(ref)
        if stage is not None:
            if stage.index >= self.stage.index or stage.index not in self.stages:
                raise DockerfileError(f"{flag}={ref} must name a stage before this one")
            return self.stages[stage.index].rootfs
        context = self.named_context(ref)
        if context is not None:
            assert self.s.named_contexts is not None
            return self.s.named_contexts.image(context).rootfs
        if self.s.image_rootfs is None:
            raise DockerfileError(f"{flag}={ref}: no such stage")
        return self.s.image_rootfs(ref, inst)

    def source_root(self, inst: ins.Instruction, ref: str, flag: str, stack: ExitStack) -> str:
        """The directory `flag`=`ref` reads, for the time of `stack`: a directory context's tree itself, else a
        read-only mount of the root source_rootfs gives."""
        context = self.named_context(ref)
        if context is not None and context.is_directory:
            assert self.s.named_contexts is not None
            return self.s.named_contexts.tree(context).directory
        return stack.enter_context(mounted_readonly(self.source_rootfs(inst, ref, flag), self.s.workspace))

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self) -> StageResult:
        if "PATH" not in self.env_dict():
            # BuildKit (and buildah) give every stage a PATH when its base has none (e.g. FROM scratch).
            self.image = self.image.with_config(Env=[*self.env_list(), f"PATH={DEFAULT_PATH}"])
        self._run_onbuild_triggers()
        instructions = self.stage.instructions
        for index, inst in enumerate(instructions):
            self._next_inst = instructions[index + 1] if index + 1 < len(instructions) else None
            self.dispatch(inst)
        self._next_inst = None
        self._finish_writing()
        self._commit_pending()
        return StageResult(self.image, self.rootfs, self.cache_key)

    def _finish_writing(self) -> Layer | None:
        """Complete the step whose layer the snapshot thread is writing, if any; returns its layer."""
        writing, self._writing = self._writing, None
        return writing.finish() if writing is not None else None

    def _run_onbuild_triggers(self) -> None:
        """The base's ONBUILD triggers run first, in this build (COPY reads this build's context), and are
        not inherited further. Errors point at this stage's FROM line and name the trigger, as BuildKit's."""
        triggers = list(self.image.container_config.get("OnBuild") or [])
        if not triggers:
            return
        self.image = self.image.with_config(OnBuild=None)
        from .dockerfile.parser import parse_instruction

        where = self.stage.base.location
        for trigger in triggers:
            try:
                self.dispatch(parse_instruction(trigger, where))
            except DockyardError as exc:
                exc.message = f"ONBUILD trigger {trigger!r} from the base image: {exc.message}"
                raise

    def dispatch(self, inst: ins.Instruction) -> None:
        if inst.keyword != "RUN":
            self._finish_writing()  # only a RUN runs while the step before it is being written
        self._inst = inst
        step, total = self._next_step()
        record = StepRecord(step, inst.original, inst.location.file, inst.location.start_line)
        self.s.steps.append(record)
        self.s.events.emit(ev.StepStarted(step=step, total=total, stage=self.stage.display_name,
                                          text=inst.original, file=inst.location.file,
                                          line=inst.location.start_line))
        started = time.monotonic()
        handler = getattr(self, "do_" + inst.keyword.lower())
        try:
            try:
                layer = handler(inst)
            except OSError as exc:
                raise StepFailed(f"{inst.keyword} failed: {exc}") from None
        except DockyardError as exc:
            self._finish_writing()  # the step before is reported first (and its failure, if any, raised)
            if exc.location is None:
                exc.location = inst.location
            record.duration = time.monotonic() - started
            self.s.events.emit(ev.StepFinished(step=step, duration=record.duration, failed=True))
            raise
        if inst.keyword not in _FILESYSTEM_INSTRUCTIONS:
            # A config-only step is keyed by what it made: the config and image metadata after it (its ARG and
            # ENV values expanded); an ARG's value reaches the key of every step that sees it.
            self.cache_key = step_key(self.cache_key, instruction=inst.original,
                                      config=self.image.container_config, meta=self.image.meta)

        def finished(made: Layer | None, at: float) -> None:
            record.duration = at - started
            record.layer = made
            self.s.events.emit(ev.StepFinished(step=step, duration=record.duration,
                                               layer_digest=made.digest if made else None,
                                               layer_size=made.size if made else None, cached=record.cached,
                                               cache_source=record.cache_source))

        def failed() -> None:
            record.duration = time.monotonic() - started
            self.s.events.emit(ev.StepFinished(step=step, duration=record.duration, failed=True))

        if isinstance(layer, _Writing):
            writing = layer
            writing.then(lambda made: finished(made, writing.done_at), failed)
        else:
            finished(layer, time.monotonic())

    # --- metadata instructions ---------------------------------------------------------------------------
    def _history(self, text: str) -> None:
        self.image = self.image.with_history(HistoryEntry(created_by=text, empty_layer=True,
                                                          created=created_time(self.s.source_date_epoch),
                                                          comment="dockyard"))

    def do_arg(self, inst: ins.Arg) -> None:
        shown = []
        for definition in inst.args:
            value = self.arg_value(inst, definition)
            if value is not None:
                # An ARG with no value leaves an earlier value of the name in place (BuildKit).
                self.args[definition.name] = value
                self._args_over_env.add(definition.name)
            shown.append(definition.name if value is None else f"{definition.name}={value}")
        self._history("ARG " + " ".join(shown))

    def arg_value(self, inst: ins.Arg, definition: ins.ArgDef) -> str | None:
        """--build-arg, else the default (expanded), else the global scope's value for a bare `ARG NAME`
        (global ARGs and the predefined TARGET*/BUILD* args), else None."""
        if definition.name in self.build_args:
            self.used_args.add(definition.name)
            return self.build_args[definition.name]
        if definition.default is not None:
            return self.expand(inst, definition.default)
        return self.global_args.get(definition.name)

    def do_env(self, inst: ins.Env) -> None:
        # Every pair is expanded with the variables as they were before this ENV (`ENV a=1 b=$a` reads the
        # old a), then set; a name already set keeps its place in the list (BuildKit's addEnv).
        pairs = [(self.expand(inst, key), self.expand(inst, value)) for key, value in inst.pairs]
        env = self.env_list()
        for key, value in pairs:
            if not key:
                raise DockerfileError("ENV names can not be blank", hint="e.g. ENV NAME=value")
            names = [e.partition("=")[0] for e in env]
            if key in names:
                env[names.index(key)] = f"{key}={value}"
            else:
                env.append(f"{key}={value}")
            self._args_over_env.discard(key)
        self.image = self.image.with_config(Env=env)
        self._history(inst.original)

    def do_label(self, inst: ins.Label) -> None:
        labels = dict(self.image.container_config.get("Labels") or {})
        for key, raw in inst.pairs:
            labels[self.expand(inst, key)] = self.expand(inst, raw)
        self.image = self.image.with_config(Labels=labels)
        self._history(inst.original)

    def do_maintainer(self, inst: ins.Maintainer) -> None:
        self.image = self.image.with_meta(author=inst.name)
        self._history(inst.original)

    def do_expose(self, inst: ins.Expose) -> None:
        ports = dict(self.image.container_config.get("ExposedPorts") or {})
        for word in inst.ports:
            for spec in self.expand_words(inst, word):
                ports.update(dict.fromkeys(exposed_ports(spec), {}))
        self.image = self.image.with_config(ExposedPorts=ports)
        self._history(inst.original)

    def do_volume(self, inst: ins.Volume) -> None:
        volumes = dict(self.image.container_config.get("Volumes") or {})
        for path in inst.paths:
            expanded = self.expand(inst, path)
            if not expanded:
                raise DockerfileError("VOLUME needs a non-empty path")
            volumes[expanded] = {}
        self.image = self.image.with_config(Volumes=volumes)
        self._history(inst.original)

    def do_user(self, inst: ins.User) -> None:
        self.image = self.image.with_config(User=self.expand(inst, inst.user))
        self._history(inst.original)

    def do_workdir(self, inst: ins.Workdir) -> None:
        previous = self.image.container_config.get("WorkingDir") or "/"
        path = image_path_join(previous, self.expand(inst, inst.path))
        self.image = self.image.with_config(WorkingDir=path)
        # docker creates the directory right away; its mkdir joins the next layer this stage makes.
        self._pending_workdirs.append((path, self.image.container_config.get("User"), inst))
        self._history(f"WORKDIR {path}")

    def _make_workdirs(self, upper: str) -> None:
        """The pending WORKDIR directories, made in `upper` (over the current root); errors at their line."""
        from .copy import Copier, CopyOptions

        pending, self._pending_workdirs = self._pending_workdirs, []
        with mounted_step(self.rootfs, self.s.workspace, upper=upper) as step:
            for path, user, inst in pending:
                try:
                    Copier(step.merged, CopyOptions(owner=self._workdir_owner(step.merged, user))).ensure_dir(path)
                except DockyardError as exc:
                    exc.location = inst.location
                    raise

    @staticmethod
    def _workdir_owner(root: str, user: str | None) -> tuple[int, int] | None:
        """BuildKit creates missing WORKDIR directories as the current USER, resolved in this stage's root at the
        time (a passwd file an earlier instruction wrote counts); an unknown name is not an error there."""
        if not user:
            return None
        return resolve_mkdir_owner(root, user)

    def do_stopsignal(self, inst: ins.Stopsignal) -> None:
        signal = self.expand(inst, inst.signal)
        if not is_signal(signal):
            raise DockerfileError(f"invalid STOPSIGNAL {signal!r}", hint="e.g. STOPSIGNAL SIGTERM, SIGKILL or 9")
        self.image = self.image.with_config(StopSignal=signal)
        self._history(inst.original)

    def do_shell(self, inst: ins.Shell) -> None:
        self.shell = tuple(inst.args)
        self.image = self.image.with_config(Shell=list(inst.args))
        self._history(inst.original)

    def do_cmd(self, inst: ins.Cmd) -> None:
        self.image = self.image.with_config(Cmd=inst.command.argv(self.shell))
        self.cmd_set_in_stage = True
        self._history(inst.original)

    def do_entrypoint(self, inst: ins.Entrypoint) -> None:
        argv = inst.command.argv(self.shell)
        if not inst.command.exec_form and not inst.command.shell_text.strip():
            argv = None  # `ENTRYPOINT ""` clears it
        changes: dict = {"Entrypoint": argv}
        if not self.cmd_set_in_stage:
            changes["Cmd"] = None  # docker: a new ENTRYPOINT drops a CMD inherited from the base
        self.image = self.image.with_config(**changes)
        self._history(inst.original)

    def do_onbuild(self, inst: ins.Onbuild) -> None:
        triggers = list(self.image.container_config.get("OnBuild") or []) + [inst.trigger]
        self.image = self.image.with_config(OnBuild=triggers)
        self._history(inst.original)

    def do_healthcheck(self, inst: ins.Healthcheck) -> None:
        if inst.command is None:
            self.image = self.image.with_config(Healthcheck={"Test": ["NONE"]})
        else:
            test = (["CMD", *inst.command.args] if inst.command.exec_form
                    else ["CMD-SHELL", inst.command.shell_text])
            check: dict = {"Test": test}
            # Docker omits a field left at zero (the runtime default applies), so only non-zero ones are set.
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
                value = inst.flag(flag)
                duration = parse_duration_ns(value, flag) if value is not None else 0
                if 0 < duration < _MIN_HEALTHCHECK_NS:
                    raise DockerfileError(f"--{flag}={value} cannot be less than 1ms")
                if duration:
                    check[key] = duration
            retries = inst.flag("retries")
            if retries is not None:
                if not retries.isdigit():
                    raise DockerfileError(f"invalid --retries={retries}: expected a whole number")
                if int(retries):
                    check["Retries"] = int(retries)
            self.image = self.image.with_config(Healthcheck=check)
        self._history(inst.original)

    # --- filesystem instructions -------------------------------------------------------------------------
    def _commit(self, upper: str, created_by: str, run_as: tuple[int, int] | None = None) -> Layer | _Writing:
        """The step's changes in `upper` become its layer. When the next instruction is a RUN, the layer is
        written on the snapshot thread while that RUN runs (it only needs `upper` as a directory): a _Writing."""
        self._finish_writing()  # the step before: its layer goes below this one
        epoch = self.s.source_date_epoch
        trees = self.s.workspace.trees
        if trees is not None:
            new_owner = Ownership(*run_as) if run_as and os.geteuid() != 0 else None
            layer = trees.commit(self.rootfs, compression=self.s.compression, level=self.s.compression_level,
                                 source_date_epoch=epoch, new_owner=new_owner)
            self.s.events.emit(ev.Message(level="info", text=_scan_note(trees.last_scan)))
            self.rootfs = self.rootfs.with_pending(layer)
            self.image = self.image.with_layer(layer, HistoryEntry(created_by=created_by, created=created_time(epoch),
                                                                   comment="dockyard"))
            self._layer_added(layer)
            return layer
        below = self.rootfs.resolved()
        settings = dict(compression=self.s.compression, level=self.s.compression_level, source_date_epoch=epoch)
        if self.s.snapshots is not None and self._next_inst is not None and self._next_inst.keyword == "RUN":
            assert self._inst is not None
            writing = _Writing(self.s.snapshots.submit(write_layer, upper, self.s.store, **settings), self._inst)
            self.rootfs = below.with_layer(upper)  # its ChainID is known once the layer is
            writing.then(lambda layer: self._add_layer(layer, upper, created_by, below))
            self._writing = writing
            return writing
        layer, _ = write_layer(upper, self.s.store, **settings)
        self._add_layer(layer, upper, created_by, below)
        return layer

    def _add_layer(self, layer: Layer, upper: str, created_by: str, below: RootFS) -> None:
        """`layer`, made from `upper`, goes on top of the root `below` and of the image."""
        chain = below.next_chain(layer.diff_id)
        if self.s.layer_cache is not None and chain is not None:
            # Later builds whose steps are cached find this step's directory instead of unpacking its blob.
            self.s.layer_cache.adopt(upper, chain)
        self.rootfs = below.with_layer(upper, layer.diff_id)
        self.image = self.image.with_layer(layer, HistoryEntry(created_by=created_by,
                                                               created=created_time(self.s.source_date_epoch),
                                                               comment="dockyard"))
        self._layer_added(layer)

    def _layer_added(self, layer: Layer) -> None:
        if self.s.on_layer is not None:
            self.s.on_layer(self.stage.index, layer)

    def _commit_pending(self) -> None:
        """WORKDIR directories no later step of the stage took into its layer become a layer of their own."""
        if not self._pending_workdirs:
            return

        def make() -> Layer | None:
            upper = self._take_upper()
            return self._commit(upper, "WORKDIR (directories)") if os.listdir(upper) else None

        self.cached_step({"instruction": "WORKDIR (directories)"}, make)

    def _take_upper(self) -> str:
        """A new upper directory for a step, holding the pending WORKDIR directories (for a directory root,
        the root itself)."""
        trees = self.s.workspace.trees
        upper = trees.writable(self.rootfs) if trees is not None else self.s.workspace.new_layer_dir()
        if self._pending_workdirs:
            self._make_workdirs(upper)
        return upper

    # --- the step cache ----------------------------------------------------------------------------------
    def cached_step(self, inputs: dict | None, make: Callable[[], Layer | None]) -> Layer | None:
        """Run a filesystem step through the step cache: `inputs` is what it reads (None: it cannot be known
        before the step runs), `make` does the step. A hit adds the recorded layer without running anything
        and leaves the root unpacked only as far as it already was."""
        record = self.s.steps[-1]
        key = step_key(self.cache_key, **inputs) if inputs is not None else None
        cache = self.s.step_cache
        if key is not None and cache is not None:
            entry = self._lookup(key, record) if self.s.cache_lookups else None
            record.cached = entry is not None
            if entry is not None:
                self._finish_writing()  # the step before's layer goes into the image first
                self._apply_cached(entry)
                self.cache_key = key
                self.s.cache_entries.append((self.stage.index, entry))
                return entry.layer
        made = make()
        if isinstance(made, _Writing) and key is None:
            made = self._finish_writing()  # the key is the layer's own digest: needed now
        if isinstance(made, _Writing):
            known = key
            made.then(lambda layer: self._record_entry(known, layer, record.instruction))
            self.cache_key = key
            return made
        if key is None:
            # Keyed by what the step produced, so the steps after it can still hit when it fetched the same.
            key = step_key(self.cache_key, uncacheable=record.instruction, diff_id=made.diff_id if made else None)
        else:
            self._record_entry(key, made, record.instruction)
        self.cache_key = key
        return made

    def _record_entry(self, key: str, layer: Layer | None, instruction: str) -> None:
        """The step cache's entry for a step that ran: its layer (the image's last) and the config after it."""
        if self.s.step_cache is None:
            return
        history = self.image.history[-1] if layer is not None else None
        entry = new_entry(key, layer, history, self.image.container_config, instruction)
        self.s.step_cache.record(entry)
        self.s.cache_entries.append((self.stage.index, entry))

    def _lookup(self, key: str, record: StepRecord) -> StepEntry | None:
        """The local cache's entry for `key`, else a --cache-from's (recorded locally too, so the next build
        finds it here once its blob is in the store)."""
        assert self.s.step_cache is not None
        entry = self.s.step_cache.lookup(key, self.s.store)
        if entry is not None:
            record.cache_source = "local"
            return entry
        hit = self.s.remote_cache.lookup(key) if self.s.remote_cache is not None else None
        if hit is None:
            return None
        self.s.step_cache.record(hit.entry)
        record.cache_source = hit.ref
        return hit.entry

    def _apply_cached(self, entry: StepEntry) -> None:
        self._pending_workdirs = []  # the recorded layer has them: they were made when the step ran
        if entry.layer is not None:
            history = entry.history or HistoryEntry(created_by=entry.instruction, comment="dockyard")
            self.image = self.image.with_layer(entry.layer, history)
            self.rootfs = self.rootfs.with_pending(entry.layer)
            self._layer_added(entry.layer)
        self.image = replace(self.image, container_config=dict(entry.config))

    def do_run(self, inst: ins.Run) -> Layer | None:
        return self.cached_step(run_cache_inputs(self, inst), lambda: execute_run(self, inst))

    def do_copy(self, inst: ins.Copy) -> Layer | None:
        # copy_step (and the tar, compression and download code under it) is imported by the first COPY or ADD:
        # a build of RUN steps alone starts without it.
        from .copy_step import copy_cache_inputs, execute_copy

        return self.cached_step(copy_cache_inputs(self, inst), lambda: execute_copy(self, inst))

    do_add = do_copy


def _scan_note(stats) -> str:
    return (f"snapshot: scanned {stats.paths} paths in {stats.seconds * 1000:.0f} ms: {stats.changed} changed, "
            f"{stats.deleted} deleted, {stats.hashed} hashed")


# Instructions that make a layer (through cached_step); every other one only changes the config.
_FILESYSTEM_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


_MIN_HEALTHCHECK_NS = 1_000_000

# Signal names the runtime knows (moby/sys/signal for Linux), with or without the SIG prefix.
_SIGNALS = frozenset("ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV "
                     "STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ".split())


def is_signal(text: str) -> bool:
    """A number, a signal name (`SIGTERM`, `term`), or `SIGRTMIN+n` / `RTMAX-n`, as docker accepts."""
    if text.isdigit():
        return int(text) > 0
    name = text.upper().removeprefix("SIG")
    if name in _SIGNALS:
        return True
    for base, sign in (("RTMIN", "+"), ("RTMAX", "-")):
        offset = name.removeprefix(base)
        if offset != name and (offset == "" or (offset[:1] == sign and offset[1:].isdigit()
                                                 and int(offset[1:]) <= 15)):
            return True
    return False


def exposed_ports(spec: str) -> list[str]:
    """`80`, `53/udp`, `8000-8002/tcp` as docker's ExposedPorts keys; a range gives one key per port."""
    number, _, proto = spec.partition("/")
    start, dash, end = number.partition("-")
    proto = (proto or "tcp").lower()
    valid = start.isdigit() and (end.isdigit() if dash else True) and proto in ("tcp", "udp", "sctp")
    first, last = (int(start), int(end or start)) if valid else (0, -1)
    if not valid or last < first or last > 65535:
        raise DockerfileError(f"invalid port {spec!r} in EXPOSE",
                              hint="e.g. EXPOSE 80, EXPOSE 53/udp or EXPOSE 8000-8010/tcp")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text: str, flag: str) -> int:
    """Go duration syntax (`30s`, `1m30s`, `500ms`) to nanoseconds, as HEALTHCHECK stores them."""
    nanoseconds = go_duration(text, _DURATION_UNITS)
    if nanoseconds is None:
        raise DockerfileError(f"invalid --{flag}={text}: expected a duration such as 30s or 1m30s")
    return int(nanoseconds)
