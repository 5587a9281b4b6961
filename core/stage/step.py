"""The narrow interface between the stage executor and a RUN or COPY/ADD operation: what the executor gives an
operation to apply it (StepResources), and what the operation gives back (StepChanges) for the executor to
commit as the step's layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..dockerfile import instructions as ins
from ..isolation import Runner
from ..rootfs import RootFS, Workspace
from .mounts import MountSources
from .sources import StageSources


class StepResources(NamedTuple):
    """For one step: its sources, the stage's root as it is below the step, the runner, RUN --mount's host
    side and the host's resolv.conf and hosts copies. `take_upper` gives the directory the step writes its
    changes in (the pending WORKDIR directories already made there); `log` reports a line of the step's output."""

    sources: StageSources
    rootfs: RootFS
    runner: Runner
    mount_sources: MountSources
    take_upper: Callable[[], str]
    log: Callable[[str], None]
    resolv_conf: str | None = None
    hosts: str | None = None

    @property
    def workspace(self) -> Workspace:
        return self.sources.workspace


class StepChanges(NamedTuple):
    """A step's changes in `upper`, to become its layer: its history text, and for a RUN, the user it ran as
    (the owner, in the image, of what it made without root)."""

    upper: str
    created_by: str
    run_as: tuple[int, int] | None = None


@runtime_checkable
class LayerOp(Protocol):
    """A resolved RUN or COPY/ADD: what it reads, for its step's cache key (None: it cannot be known before the
    step runs), and its changes, made when the step is not cached."""

    @property
    def inst(self) -> ins.Instruction: ...

    def cache_inputs(self, sources: StageSources) -> dict[str, Any] | None: ...

    def apply(self, step: StepResources) -> StepChanges: ...
