"""Which part of a build an event belongs to — one of its stages, or the push — so a CI adapter can fold each
part of the log into a group or section of its own (GitHub's `::group::`, GitLab's collapsible sections)."""

from __future__ import annotations

from dataclasses import dataclass

from .events import Event, StageStarted, StepFinished, StepStarted, TransferFinished, TransferStarted


@dataclass(frozen=True)
class Phase:
    key: str  # stable and made of [a-z0-9-]: usable as a section id ("stage-1", "push")
    title: str  # what a person reads in the log's header


class PhaseTracker:
    """Feed it every event in order; `enter` says when a new phase starts."""

    def __init__(self) -> None:
        self.current: Phase | None = None
        self._stages = 0
        self._total_steps: int | None = None
        self._steps_done = False

    def enter(self, event: Event) -> Phase | None:
        """The phase this event starts, or None when it belongs to the current one."""
        if isinstance(event, StageStarted):
            self._stages += 1
            return self._switch(Phase(f"stage-{self._stages}", f"stage {event.stage} (FROM {event.base})"))
        if isinstance(event, StepStarted):
            self._total_steps = event.total
        elif isinstance(event, StepFinished) and event.step == self._total_steps:
            self._steps_done = True
        pushing = (isinstance(event, TransferStarted) and event.direction == "push") or (
            # A blob the push skipped (the registry had it, or mounted it) finishes without having started; so does
            # a base layer found in the local blob store while a stage runs, which is why the steps must be done.
            isinstance(event, TransferFinished) and self._steps_done)
        if pushing and (self.current is None or self.current.key != "push"):
            return self._switch(Phase("push", "push"))
        return None

    def _switch(self, phase: Phase) -> Phase:
        self.current = phase
        return phase
