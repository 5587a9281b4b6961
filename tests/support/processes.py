"""Watching processes from a test: which pids run a given command line, and waiting for a condition."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable


def processes_running(argv: list[str]) -> list[int]:
    """Pids whose command line is `argv`."""
    wanted = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline == wanted:
                found.append(int(entry))
    return found


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> bool:
    """Whether `condition()` became true within `timeout` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
