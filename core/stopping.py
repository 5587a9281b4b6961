"""Stopping on SIGTERM, SIGINT and SIGHUP: what a cancelled CI job, Ctrl-C and a closed terminal send.

Python's default ends the process at once on SIGTERM and SIGHUP, leaving the build's work directory, mounts
and step processes behind. Here each of the three raises `Stopped` in the main thread instead, so the build
unwinds as from any failure: the RUN in progress is killed with everything it started, the work directory is
unmounted and removed, and the command exits with 128 + the signal's number, as a shell reports a process
killed by it. `Stopped` is a KeyboardInterrupt, so no `except Exception` on the way swallows it.

Signals that come while the build cleans up are ignored: a second Ctrl-C must not leave half a work directory
behind. SIGKILL cannot be caught; the next build removes what such a build left (workdirs.py).
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """For the block: the first of the signals raises Stopped, later ones are ignored. The previous handlers
    come back afterwards (main() may run inside a test). Outside the main thread, nothing changes."""
    stopping = False

    def handle(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Stopped(signum)

    previous = {}
    try:
        for signum in SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # started with it ignored (nohup, a runner's choice): keep it so
            previous[signum] = signal.signal(signum, handle)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
