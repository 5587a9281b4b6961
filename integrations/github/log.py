"""The build log: dockyard's `--progress json` events, one `::group::` per stage (and one for the push), the
lines inside rendered by dockyard's own plain renderer, so the log reads as `--progress plain` does; a failed
build's `BuildFailed` event becomes an error annotation at its Dockerfile line.

Every line the plain renderer writes starts with its `[  1.23s]` timestamp, so a RUN step printing `::...` can
never issue a workflow command of its own (the runner only parses lines that start with `::`).
"""

from __future__ import annotations

from typing import TextIO

from dockyard.events import BuildFailed, Event, StepFinished, StepStarted

from ..common.failure import paragraph, title
from ..common.phases import Phase, PhasedLog
from . import workflow


class GroupedLog(PhasedLog):
    """Prints the log, one `::group::` per phase, and keeps what the job summary needs."""

    def __init__(self, stream: TextIO | None = None) -> None:
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

    def show_failure(self, failure: BuildFailed) -> None:
        self.write(failure_annotation(failure) + "\n")


def failure_annotation(failure: BuildFailed) -> str:
    """`::error file=F,line=N,endLine=M,title=StepFailed (exit code 5)::MESSAGE`: on the Dockerfile line when the
    failure is about one. The message is the error's paragraph without its location (the annotation has it)."""
    message = paragraph(failure, with_location=not failure.file)
    end_line = failure.end_line if failure.end_line != failure.line else None
    return workflow.command("error", message, {"file": failure.file, "line": failure.line, "endLine": end_line,
                                               "title": title(failure)})
