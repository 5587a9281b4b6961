"""The job log: dockyard's `--progress json` events rendered by its plain renderer (so the log reads as
`--progress plain` does), each stage and the push folded into a collapsible section of GitLab's log.

A section is `ESC[0Ksection_start:UNIXTIME:NAME[collapsed=true]\\rESC[0KHEADER` ... `ESC[0Ksection_end:UNIXTIME:NAME
\\rESC[0K`. Every line the plain renderer writes starts with its `[  1.23s]` timestamp, so a RUN step's output can
never open or close a section of its own.
"""

from __future__ import annotations

import time

from dockyard.phases import Phase, PhasedLog

ESC_CLEAR = "\x1b[0K"


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
        self._stream.write(section_start(section_name(phase), phase.title, when=when))

    def close_group(self, phase: Phase, when: float | None) -> None:
        self._stream.write(section_end(section_name(phase), when=when))
