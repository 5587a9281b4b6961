"""Which part of a build an event belongs to — one of its stages, or the push — so a CI adapter can fold each
part of the log into a group or section of its own (GitHub's `::group::`, GitLab's collapsible sections).

The lines inside are rendered by dockyard's plain renderer, so a CI log reads as `--progress plain` does."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from dockyard.events import (BuildFailed, BuildFinished, Event, StageStarted, StepFinished, StepStarted,
                             TransferFinished, TransferStarted, event_from_json)

from .failure import paragraph
from .public import PlainRenderer


@dataclass(frozen=True)
class Phase:
    """A part of a build's log (one of its stages, or the push) that a CI adapter folds into a group of its own."""

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
        # Only once the steps are done: layers are uploaded while later steps run (registry/push.py EarlyUploads),
        # and those transfers belong to the stage that made them. A blob the push skipped (the registry had it, or
        # mounted it) finishes without having started; so does a base layer found in the local blob store.
        pushing = self._steps_done and (
            (isinstance(event, TransferStarted) and event.direction == "push") or isinstance(event, TransferFinished))
        if pushing and (self.current is None or self.current.key != "push"):
            return self._switch(Phase("push", "push"))
        return None

    def _switch(self, phase: Phase) -> Phase:
        self.current = phase
        return phase


class PhasedLog:
    """dockyard's `--progress json` stderr (fed line by line), rendered by the plain renderer so a CI log reads
    as `--progress plain` does, each phase inside a group of the platform's: subclasses write its markers
    (`open_group`, `close_group`). A failed build ends with its `BuildFailed` event, kept in `failure`;
    subclasses show it (`show_failure`). Lines that are not events belong to no group and are kept in
    `other_lines`: once the failure event is in, they are dockyard's text for the same error, and not printed
    again; without one (a dockyard that stopped before it could send it) they are the only word of the error."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._plain = PlainRenderer(self._stream)
        self._phases = PhaseTracker()
        self._open: Phase | None = None
        self.outcome: BuildFinished | None = None
        self.failure: BuildFailed | None = None
        self.other_lines: list[str] = []

    def open_group(self, phase: Phase, when: float) -> None:
        raise NotImplementedError

    def close_group(self, phase: Phase, when: float | None) -> None:
        raise NotImplementedError

    def observe(self, event: Event) -> None:
        """Called with every event, for what a subclass keeps (e.g. the steps, for a job summary)."""

    def write(self, text: str) -> None:
        """Writes to the log (a subclass's group markers, its failure)."""
        self._stream.write(text)

    def show_failure(self, failure: BuildFailed) -> None:
        """Shows the failure in the log; by default dockyard's own error paragraph."""
        self.write(f"error: {paragraph(failure)}\n")

    def event(self, event: Event) -> None:
        if (phase := self._phases.enter(event)) is not None:
            self._close(event.time)
            self._stream.flush()
            self.open_group(phase, event.time)
            self._open = phase
        elif isinstance(event, BuildFinished):
            self._close(event.time)
            self.outcome = event
        elif isinstance(event, BuildFailed):
            self._close(event.time)
            self.failure = event
        self.observe(event)
        self._plain(event)
        if isinstance(event, BuildFailed):
            self.show_failure(event)
            self._stream.flush()

    def line(self, text: str) -> None:
        text = text.rstrip("\n")
        if text.startswith("{"):
            try:
                event = event_from_json(json.loads(text))
            except (ValueError, TypeError):
                event = None
            if event is not None:
                self.event(event)
                return
        self._close()  # the error paragraph belongs to no stage
        self.other_lines.append(text)
        if self.failure is None:
            self._stream.write(text + "\n")
            self._stream.flush()

    def feed(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.line(text)
        self._close()

    def _close(self, when: float | None = None) -> None:
        if self._open is not None:
            self._stream.flush()
            self.close_group(self._open, when)
            self._open = None
