"""The build's reaper: a process that outlives a builder killed with SIGKILL just long enough to end the proot
steps it was running.

When proot dies, the processes it traces are let go, not killed (Debian's proot 5.1 sets no PTRACE_O_EXITKILL),
and a builder that is killed cannot clean up. So the first proot RUN of a build forks a reaper from the builder:
it holds the read end of a pipe whose write end only the builder holds, and learns there which process groups
hold a running step ("+GROUP", "-GROUP" lines). When the pipe reaches end of file (the builder has exited, however
it died), it kills the groups still listed and exits. It ignores SIGINT, SIGTERM and SIGHUP and has a session of
its own, so the signal that ends a CI job's process group reaches the builder and not it.

It is forked, not started as a new interpreter (about 20 ms), and the forked code follows sandbox.py's rules
(no imports, no locks, no logging: only system calls) since the builder may have threads.
"""

from __future__ import annotations

import gc
import os
import signal

from .proot_supervisor import kill_groups

_writer: int | None = None


def _reaper(reader: int) -> None:
    gc.disable()
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.closerange(0, reader)
    os.closerange(reader + 1, 65536)
    listed: dict[int, int] = {}  # group -> proot's pid (the tracer that makes it the step's)
    pending = b""
    while chunk := os.read(reader, 4096):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sign, group, tracer = line[:1], *map(int, line[1:].split(b" "))
            if sign == b"+":
                listed[group] = tracer
            else:
                listed.pop(group, None)
    for group, tracer in listed.items():
        if group != tracer:
            kill_groups(tracer, [group])
    for group, tracer in listed.items():
        if group == tracer:
            kill_groups(tracer, [group])


def _send(line: str) -> None:
    global _writer
    if _writer is None:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                _reaper(reader)
            finally:
                os._exit(0)
        os.close(reader)
        _writer = writer
    os.write(_writer, line.encode() + b"\n")


def watch(group: int, tracer: int) -> None:
    """The reaper kills `group` (a proot step's, traced by `tracer`) if the builder dies before `unwatch`."""
    _send(f"+{group} {tracer}")


def unwatch(group: int, tracer: int) -> None:
    _send(f"-{group} {tracer}")
