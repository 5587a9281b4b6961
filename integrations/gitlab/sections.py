"""The job log: dockyard's `--progress json` events rendered by its plain renderer (so the log reads as
`--progress plain` does), each stage and the push folded into a collapsible section of GitLab's log.

A section is `ESC[0Ksection_start:UNIXTIME:NAME[collapsed=true]\\rESC[0KHEADER` ... `ESC[0Ksection_end:UNIXTIME:NAME
\\rESC[0K`. Every line the plain renderer writes starts with its `[  1.23s]` timestamp, so a RUN step's output can
never open or close a section of its own. A failed build's `BuildFailed` event gets a section of its own, open,
its header in red as GitLab's own errors are.
"""

from __future__ import annotations

import time

from dockyard.events import BuildFailed

from ..common.failure import location, paragraph, title
from ..common.phases import Phase, PhasedLog

ESC_CLEAR = "\x1b[0K"
RED = "\x1b[31;1m"
RESET = "\x1b[0m"
FAILURE_SECTION = "dockyard_failure"


def section_start(name: str, header: str, *, when: float | None = None, collapsed: bool = True) -> str:
    option = "[collapsed=true]" if collapsed else ""
    return f"{ESC_CLEAR}section_start:{int(when or time.time())}:{name}{option}\r{ESC_CLEAR}{header}\n"


def section_end(name: str, *, when: float | None = None) -> str:
    return f"{ESC_CLEAR}section_end:{int(when or time.time())}:{name}\r{ESC_CLEAR}\n"


def section_name(phase: Phase) -> str:
    # GitLab takes letters, digits, '_', '.' and '-' in a name; a prefix keeps ours apart from the runner's own.
    return "dockyard_" + phase.key.replace("-", "_")


class SectionedLog(PhasedLog):
    """Writes the job log, one collapsible section per phase."""

    def open_group(self, phase: Phase, when: float) -> None:
        self.write(section_start(section_name(phase), phase.title, when=when))

    def close_group(self, phase: Phase, when: float | None) -> None:
        self.write(section_end(section_name(phase), when=when))

    def show_failure(self, failure: BuildFailed) -> None:
        where = location(failure)
        header = f"{RED}dockyard build failed: {title(failure)}" + (f" at {where}" if where else "") + RESET
        self.write(section_start(FAILURE_SECTION, header, when=failure.time, collapsed=False))
        self.write(f"error: {paragraph(failure)}\n")
        self.write(section_end(FAILURE_SECTION, when=failure.time))
