"""The job log: dockyard's `--progress json` events rendered by its plain renderer (so the log reads as
`--progress plain` does), each stage and the push folded into a collapsible section of GitLab's log.

A section is `ESC[0Ksection_start:UNIXTIME:NAME[collapsed=true]\\rESC[0KHEADER` ... `ESC[0Ksection_end:UNIXTIME:NAME
\\rESC[0K`. Every line the plain renderer writes starts with its `[  1.23s]` timestamp, so a RUN step's output can
never open or close a section of its own.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Iterable, TextIO

from dockyard.events import BuildFinished, Event, event_from_json
from dockyard.phases import Phase, PhaseTracker
from dockyard.progress import PlainRenderer

ESC_CLEAR = "\x1b[0K"


def section_start(name: str, header: str, *, when: float | None = None, collapsed: bool = True) -> str:
    option = "[collapsed=true]" if collapsed else ""
    return f"{ESC_CLEAR}section_start:{int(when or time.time())}:{name}{option}\r{ESC_CLEAR}{header}\n"


def section_end(name: str, *, when: float | None = None) -> str:
    return f"{ESC_CLEAR}section_end:{int(when or time.time())}:{name}\r{ESC_CLEAR}\n"


def section_name(phase: Phase) -> str:
    # GitLab takes letters, digits, '_', '.' and '-' in a name; a prefix keeps ours apart from the runner's own.
    return "dockyard_" + phase.key.replace("-", "_")


class SectionedLog:
    """Feed it dockyard's stderr lines; it writes the job log and keeps dockyard's error paragraph."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdout
        self._plain = PlainRenderer(self._stream)
        self._phases = PhaseTracker()
        self._open: str | None = None
        self.outcome: BuildFinished | None = None
        self.other_lines: list[str] = []  # what dockyard printed that is not an event: its error paragraph

    def _close(self, when: float | None = None) -> None:
        if self._open is not None:
            self._stream.flush()
            self._stream.write(section_end(self._open, when=when))
            self._open = None

    def event(self, event: Event) -> None:
        if (phase := self._phases.enter(event)) is not None:
            self._close(event.time)
            self._open = section_name(phase)
            self._stream.write(section_start(self._open, phase.title, when=event.time))
        elif isinstance(event, BuildFinished):
            self._close(event.time)
            self.outcome = event
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
