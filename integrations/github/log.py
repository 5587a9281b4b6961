"""The build log: dockyard's `--progress json` events, one `::group::` per stage (and one for the push), the
lines inside rendered by dockyard's own plain renderer, so the log reads as `--progress plain` does.

Every line the plain renderer writes starts with its `[  1.23s]` timestamp, so a RUN step printing `::...` can
never issue a workflow command of its own (the runner only parses lines that start with `::`).
"""

from __future__ import annotations

import json
import sys
from typing import Iterable, TextIO

from dockyard.events import BuildFinished, Event, StepFinished, StepStarted, event_from_json
from dockyard.phases import PhaseTracker
from dockyard.progress import PlainRenderer

from . import workflow


class GroupedLog:
    """Feed it dockyard's stderr lines; it prints the log and keeps what the job summary needs."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdout
        self._plain = PlainRenderer(self._stream)
        self._group: str | None = None
        self.steps: dict[int, StepStarted] = {}
        self.finished: dict[int, StepFinished] = {}
        self.outcome: BuildFinished | None = None
        self.other_lines: list[str] = []  # what dockyard printed that is not an event: its error paragraph
        self._phases = PhaseTracker()  # which stage, or the push, an event belongs to

    def _open(self, title: str) -> None:
        self._close()
        self._stream.flush()
        workflow.start_group(title)
        self._group = title

    def _close(self) -> None:
        if self._group is not None:
            self._stream.flush()
            workflow.end_group()
            self._group = None

    def event(self, e: Event) -> None:
        if (phase := self._phases.enter(e)) is not None:
            self._open(phase.title)
        elif isinstance(e, BuildFinished):
            self._close()
            self.outcome = e
        if isinstance(e, StepStarted):
            self.steps[e.step] = e
        elif isinstance(e, StepFinished):
            self.finished[e.step] = e
        self._plain(e)

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
