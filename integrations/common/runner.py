"""The one way an adapter runs dockyard: the CLI with `--progress json` (request.py's arguments), its stderr
read line by line as it comes, each JSON event handed to the adapter's log (phases.PhasedLog or any
`EventLog`), which renders it. stdout carries only the digest, which the metadata file has too."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

# The shell's exit status for a command it could not find, which the Jenkins step names as such.
COMMAND_NOT_FOUND = 127


class EventLog(Protocol):
    """What the runner feeds: every line dockyard writes to stderr, in order (phases.PhasedLog is one)."""

    def feed(self, lines: Iterable[str]) -> None: ...


def dockyard_command(python: str = sys.executable) -> list[str]:
    """dockyard's CLI, run by the Python the adapter runs in (the same installation as the kernel)."""
    return [python, "-m", "dockyard"]


def run_dockyard(command: Sequence[str], log: EventLog, *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> int:
    """Runs `command` (dockyard's CLI and its arguments) and feeds its stderr to `log`; its exit code."""
    try:
        with subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              errors="replace", env=dict(env) if env is not None else None, cwd=cwd) as proc:
            assert proc.stderr is not None  # stderr=PIPE
            log.feed(proc.stderr)
    except FileNotFoundError:
        log.feed([f"error: cannot run {command[0]}: no such command"])
        return COMMAND_NOT_FOUND
    return proc.returncode
