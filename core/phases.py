"""Which part of a build an event belongs to — one of its stages, or the push — so a CI adapter can fold each
part of the log into a group or section of its own (GitHub's `::group::`, GitLab's collapsible sections)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Iterable, TextIO

from .events import (BuildFinished, Event, StageStarted, StepFinished, StepStarted, TransferFinished, TransferStarted,
                     event_from_json)


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
    (`open_group`, `close_group`). Lines that are not events (dockyard's error paragraph) belong to no group
    and are kept in `other_lines`."""

    def __init__(self, stream: TextIO | None = None):
        from .progress import PlainRenderer

        self._stream = stream or sys.stdout
        self._plain = PlainRenderer(self._stream)
        self._phases = PhaseTracker()
        self._open: Phase | None = None
        self.outcome: BuildFinished | None = None
        self.other_lines: list[str] = []

    def open_group(self, phase: Phase, when: float) -> None:
        raise NotImplementedError

    def close_group(self, phase: Phase, when: float | None) -> None:
        raise NotImplementedError

    def observe(self, event: Event) -> None:
        """Called with every event, for what a subclass keeps (e.g. the steps, for a job summary)."""

    def event(self, event: Event) -> None:
        if (phase := self._phases.enter(event)) is not None:
            self._close(event.time)
            self._stream.flush()
            self.open_group(phase, event.time)
            self._open = phase
        elif isinstance(event, BuildFinished):
            self._close(event.time)
            self.outcome = event
        self.observe(event)
        self._plain(event)

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
