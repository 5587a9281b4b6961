"""The build log: dockyard's `--progress json` events, one `::group::` per stage (and one for the push), the
lines inside rendered by dockyard's own plain renderer, so the log reads as `--progress plain` does.

Every line the plain renderer writes starts with its `[  1.23s]` timestamp, so a RUN step printing `::...` can
never issue a workflow command of its own (the runner only parses lines that start with `::`).
"""

from __future__ import annotations

from typing import TextIO

from dockyard.events import Event, StepFinished, StepStarted
from dockyard.phases import Phase, PhasedLog

from . import workflow


class GroupedLog(PhasedLog):
    """Prints the log, one `::group::` per phase, and keeps what the job summary needs."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self.steps: dict[int, StepStarted] = {}
        self.finished: dict[int, StepFinished] = {}

    def open_group(self, phase: Phase, when: float) -> None:
        workflow.start_group(phase.title)

    def close_group(self, phase: Phase, when: float | None) -> None:
        workflow.end_group()

    def observe(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.steps[event.step] = event
        elif isinstance(event, StepFinished):
            self.finished[event.step] = event
