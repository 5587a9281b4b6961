"""Executing one stage, instruction by instruction: each is resolved with the stage's state (ops.py), a config-only
one gives the next state, a RUN or COPY/ADD is looked up in the step cache by its inputs and, when missed,
applied and committed. `commit_layer` is the one place a step's changes become a layer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple, TYPE_CHECKING

from ..cache.keys import step_key
from ..cache.store import StepEntry, new_entry
from ..dockerfile import instructions as ins
from ..dockerfile.parser import parse_instruction
from ..errors import DockyardError, StepFailed
from ..events import Message, StepFinished, StepLog, StepStarted
from ..image.model import HistoryEntry, Image, Layer
from ..rootfs import RootFS, mounted_step
from ..rootfs.ownership import Ownership
from ..rootfs.snapshot import write_layer
from ..users import resolve_mkdir_owner
from .history import created_time
from .layer_writing import LayerWriting
from .ops import ArgOp, resolve
from .schedule import StageStopped
from .services import BuildServices, BuiltStep, StepRecord
from .sources import StageResult, StageSources
from .state import ArgScope, StageState
from .step import LayerOp, StepResources

if TYPE_CHECKING:
    from ..rootfs.scan import ScanStats

# Instructions that make a layer (through cached_step); every other one only changes the config.
_FILESYSTEM_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


class StageInputs(NamedTuple):
    """What every stage of one build shares: the Dockerfile, the ARG values outside the stages, the stages built
    so far (the builder adds each as it finishes), the step counter, and the set where the --build-arg names
    an ARG used are recorded (the builder warns about the others)."""

    dockerfile: ins.Dockerfile
    args: ArgScope
    stages: dict[int, StageResult]
    next_step: Callable[[], tuple[int, int]]
    used_args: set[str]


class StageExecutor:
    def __init__(self, stage: ins.Stage, base: StageResult, services: BuildServices, inputs: StageInputs) -> None:
        self.stage = stage
        self.s = services
        self.inputs = inputs
        self.state = StageState.start(base.image, inputs.dockerfile.escape)
        self.rootfs = base.rootfs
        self.cache_key = base.key  # the key of everything so far: the base, then each step in turn
        self.sources = StageSources(
            context=services.context, dockerfile=inputs.dockerfile, stage_index=stage.index, stages=inputs.stages,
            workspace=services.workspace, named_contexts=services.named_contexts,
            image_rootfs=services.image_rootfs, image_digest=services.image_digest,
            file_digests=services.file_digests)
        self._inst: ins.Instruction | None = None  # the instruction being dispatched
        self._next_inst: ins.Instruction | None = None  # the one after it in the stage, if any
        self._writing: LayerWriting | None = None  # the last step's layer, while the snapshot thread writes it

    @property
    def image(self) -> Image:
        return self.state.image

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self) -> StageResult:
        self._run_onbuild_triggers()
        instructions = self.stage.instructions
        for index, inst in enumerate(instructions):
            self._next_inst = instructions[index + 1] if index + 1 < len(instructions) else None
            self.dispatch(inst)
        self._next_inst = None
        self._finish_writing()
        self._commit_pending_workdirs()
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
        self.state = self.state.with_config(OnBuild=None)
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
        if self.s.stop is not None and self.s.stop.is_set():
            raise StageStopped(self.stage.display_name)
        self._inst = inst
        step, total = self.inputs.next_step()
        record = StepRecord(step, inst.original, inst.location.file, inst.location.start_line, started=time.time(),
                            stage=self.stage.display_name, platform=self.s.platform)
        self.s.steps.append(record)
        self.s.events.emit(StepStarted(step=step, total=total, stage=self.stage.display_name,
                                       text=inst.original, file=inst.location.file,
                                       line=inst.location.start_line, platform=self.s.platform))
        started = time.monotonic()
        try:
            try:
                layer = self._execute(inst)
            except OSError as exc:
                raise StepFailed(f"{inst.keyword} failed: {exc}") from None
        except DockyardError as exc:
            self._finish_writing()  # the step before is reported first (and its failure, if any, raised)
            if exc.location is None:
                exc.location = inst.location
            record.duration = time.monotonic() - started
            self.s.events.emit(StepFinished(step=step, duration=record.duration, failed=True))
            raise
        if inst.keyword not in _FILESYSTEM_INSTRUCTIONS:
            # A config-only step is keyed by what it made: the config and image metadata after it (its ARG and
            # ENV values expanded); an ARG's value reaches the key of every step that sees it.
            self.cache_key = step_key(self.cache_key, instruction=inst.original,
                                      config=self.image.container_config, meta=self.image.meta)

        def finished(made: Layer | None, at: float) -> None:
            record.duration = at - started
            record.layer = made
            self.s.events.emit(StepFinished(step=step, duration=record.duration,
                                            layer_digest=made.digest if made else None,
                                            layer_size=made.size if made else None, cached=record.cached,
                                            cache_source=record.cache_source))

        def failed() -> None:
            record.duration = time.monotonic() - started
            self.s.events.emit(StepFinished(step=step, duration=record.duration, failed=True))

        if isinstance(layer, LayerWriting):
            writing = layer
            writing.then(lambda made: finished(made, writing.done_at), failed)
        else:
            finished(layer, time.monotonic())

    def _execute(self, inst: ins.Instruction) -> Layer | LayerWriting | None:
        """Resolve `inst` once; a config-only op gives the next state, a RUN or COPY/ADD goes through the step
        cache with the inputs the same resolution gives."""
        op = resolve(inst, self.state, self.inputs.args)
        if isinstance(op, LayerOp):
            inputs = op.cache_inputs(self.sources)
            return self.cached_step(inputs, lambda: self._apply(op))
        if isinstance(op, ArgOp):
            self.inputs.used_args.update(op.used)
        self.state = op.apply(self.state).with_history(op.created_by, created_time(self.s.source_date_epoch))
        return None

    def _apply(self, op: LayerOp) -> Layer | LayerWriting:
        """The step's changes, made by `op` in an upper directory, committed as its layer."""
        step_no = self.s.steps[-1].step

        def log(line: str) -> None:
            self.s.events.emit(StepLog(step=step_no, line=line))

        resources = StepResources(sources=self.sources, rootfs=self.rootfs, runner=self.s.runner,
                                  mount_sources=self.s.mount_sources, take_upper=self._take_upper, log=log,
                                  resolv_conf=self.s.resolv_conf, hosts=self.s.hosts)
        changes = op.apply(resources)
        return self.commit_layer(changes.upper, changes.created_by, run_as=changes.run_as)

    # --- WORKDIR directories -----------------------------------------------------------------------------
    def _take_upper(self) -> str:
        """A new upper directory for a step, holding the pending WORKDIR directories (for a directory root,
        the root itself)."""
        trees = self.s.workspace.trees
        upper = trees.writable(self.rootfs) if trees is not None else self.s.workspace.new_layer_dir()
        if self.state.pending_workdirs:
            self._make_workdirs(upper)
        return upper

    def _make_workdirs(self, upper: str) -> None:
        """The pending WORKDIR directories, made in `upper` (over the current root); errors at their line."""
        # Imported by the first WORKDIR that makes a directory: a build of RUN steps alone starts without
        # copy.py (and the tar and compression code under it).
        from ..copy import Copier, CopyOptions

        pending = self.state.pending_workdirs
        self.state = self.state.with_workdirs_made()
        with mounted_step(self.rootfs, self.s.workspace, upper=upper) as step:
            for workdir in pending:
                try:
                    owner = _workdir_owner(step.merged, workdir.user)
                    Copier(step.merged, CopyOptions(owner=owner)).ensure_dir(workdir.path)
                except DockyardError as exc:
                    exc.location = workdir.inst.location
                    raise

    def _commit_pending_workdirs(self) -> None:
        """WORKDIR directories no later step of the stage took into its layer become a layer of their own."""
        if not self.state.pending_workdirs:
            return

        def make() -> Layer | LayerWriting | None:
            upper = self._take_upper()
            return self.commit_layer(upper, "WORKDIR (directories)") if os.listdir(upper) else None

        self.cached_step({"instruction": "WORKDIR (directories)"}, make)

    # --- layers ------------------------------------------------------------------------------------------
    def commit_layer(self, upper: str, created_by: str,
                     run_as: tuple[int, int] | None = None) -> Layer | LayerWriting:
        """The step's changes in `upper` become its layer. When the next instruction is a RUN, the layer is
        written on the snapshot thread while that RUN runs (it only needs `upper` as a directory): a
        LayerWriting."""
        self._finish_writing()  # the step before: its layer goes below this one
        epoch = self.s.source_date_epoch
        trees = self.s.workspace.trees
        if trees is not None:
            new_owner = Ownership(*run_as) if run_as and os.geteuid() != 0 else None
            layer = trees.commit(self.rootfs, compression=self.s.compression, level=self.s.compression_level,
                                 source_date_epoch=epoch, new_owner=new_owner)
            assert trees.last_scan is not None  # the commit's own scan
            self.s.events.emit(Message(level="info", text=_scan_note(trees.last_scan)))
            self.rootfs = self.rootfs.with_pending(layer)
            self._add_to_image(layer, HistoryEntry(created_by=created_by, created=created_time(epoch),
                                                   comment="dockyard"))
            return layer
        below = self.rootfs.resolved()
        if self.s.snapshots is not None and self._next_inst is not None and self._next_inst.keyword == "RUN":
            assert self._inst is not None
            future = self.s.snapshots.submit(write_layer, upper, self.s.store, compression=self.s.compression,
                                             level=self.s.compression_level, source_date_epoch=epoch)
            writing = LayerWriting(future, self._inst)
            self.rootfs = below.with_layer(upper)  # its ChainID is known once the layer is
            writing.then(lambda layer: self._add_layer(layer, upper, created_by, below))
            self._writing = writing
            return writing
        layer, _ = write_layer(upper, self.s.store, compression=self.s.compression, level=self.s.compression_level,
                               source_date_epoch=epoch)
        self._add_layer(layer, upper, created_by, below)
        return layer

    def _add_layer(self, layer: Layer, upper: str, created_by: str, below: RootFS) -> None:
        """`layer`, made from `upper`, goes on top of the root `below` and of the image."""
        chain = below.next_chain(layer.diff_id)
        if self.s.layer_cache is not None and chain is not None:
            # Later builds whose steps are cached find this step's directory instead of unpacking its blob.
            self.s.layer_cache.adopt(upper, chain)
        self.rootfs = below.with_layer(upper, layer.diff_id)
        self._add_to_image(layer, HistoryEntry(created_by=created_by,
                                               created=created_time(self.s.source_date_epoch), comment="dockyard"))

    def _add_to_image(self, layer: Layer, history: HistoryEntry) -> None:
        self.state = self.state.with_image(self.image.with_layer(layer, history))
        if self.s.on_layer is not None:
            self.s.on_layer(self.stage.index, layer)

    # --- the step cache ----------------------------------------------------------------------------------
    def cached_step(self, inputs: dict[str, Any] | None,
                    make: Callable[[], Layer | LayerWriting | None]) -> Layer | LayerWriting | None:
        """Run a filesystem step through the step cache: `inputs` is what it reads (None: it cannot be known
        before the step runs), `make` does the step. A hit adds the recorded layer without running anything
        and leaves the root unpacked only as far as it already was."""
        record = self.s.steps[-1]
        key = step_key(self.cache_key, **inputs) if inputs is not None else None
        built = self.s.built_steps.get(key) if key is not None and self.s.built_steps is not None else None
        if built is not None:  # built for another target of this build (or earlier for this one): not again
            record.cached, record.cache_source = True, f"this build, for {built.platform}"
            self._finish_writing()
            self._apply_cached(built.entry)
            self.cache_key = built.entry.key
            self.s.cache_entries.append((self.stage.index, built.entry))
            return built.entry.layer
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
        if isinstance(made, LayerWriting) and key is None:
            made = self._finish_writing()  # the key is the layer's own digest: needed now
        if isinstance(made, LayerWriting):
            known = key
            assert known is not None
            made.then(lambda layer: self._record_entry(known, layer, record.instruction))
            self.cache_key = known
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
        if self.s.step_cache is None and self.s.built_steps is None:
            return
        history = self.image.history[-1] if layer is not None else None
        entry = new_entry(key, layer, history, self.image.container_config, instruction)
        if self.s.built_steps is not None and self.s.platform is not None:
            self.s.built_steps.setdefault(key, BuiltStep(entry, self.s.platform))
        if self.s.step_cache is None:
            return
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
        self.state = self.state.with_workdirs_made()  # the recorded layer has them: made when the step ran
        if entry.layer is not None:
            history = entry.history or HistoryEntry(created_by=entry.instruction, comment="dockyard")
            self.rootfs = self.rootfs.with_pending(entry.layer)
            self._add_to_image(entry.layer, history)
        self.state = self.state.with_image(replace(self.image, container_config=dict(entry.config)))


def _workdir_owner(root: str, user: str | None) -> tuple[int, int] | None:
    """BuildKit creates missing WORKDIR directories as the current USER, resolved in this stage's root at the
    time (a passwd file an earlier instruction wrote counts); an unknown name is not an error there."""
    if not user:
        return None
    return resolve_mkdir_owner(root, user)


def _scan_note(stats: ScanStats) -> str:
    return (f"snapshot: scanned {stats.paths} paths in {stats.seconds * 1000:.0f} ms: {stats.changed} changed, "
            f"{stats.deleted} deleted, {stats.hashed} hashed")
