"""Isolation backends: how a RUN step's command is executed inside a root filesystem.

The executor only knows the `Runner` protocol; backends decide how isolation is achieved: `NamespaceRunner`
(namespaces + pivot_root, for root with CAP_SYS_ADMIN, also inside a user namespace) and proot.py's
`ProotRunner` (ptrace, no privilege). detect.py says which one an environment allows.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..errors import IsolationError
from . import ids, sandbox


@dataclass(frozen=True)
class SandboxMount:
    """A mount the sandbox makes inside the root before pivoting into it. The builder prepares the sources
    (overlays for writable binds, secret files on a tmpfs, ...); the sandbox only binds them or makes tmpfs.
    A missing mount point is created without following symlinks; the builder gives targets in the image root
    a mount point of their own beforehand, so none is ever created in the step's layer."""

    target: str  # absolute path inside the root, free of symlinks
    kind: str = "bind"  # or "tmpfs"
    source: str = ""  # bind: the host path
    readonly: bool = True
    file: bool = False  # the mount point is a file (a bound file), not a directory
    options: str = ""  # tmpfs: mount data, e.g. "size=1048576"


@dataclass(frozen=True)
class RunSpec:
    """What a Runner runs for a RUN step: the command, and the root, user, environment and mounts it runs with."""

    rootfs: str  # the mounted root (an overlay mount point)
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    hostname: str = "dockyard"
    network: str = "default"  # or "none": a network namespace of its own, with only loopback
    mounts: tuple[SandboxMount, ...] = field(default=())  # parents before children


@dataclass(frozen=True)
class RunResult:
    """How a RUN command ended: its exit code and last lines of output, or why the sandbox could not start it."""

    exit_code: int
    tail: tuple[str, ...]  # the last lines of output, for error messages
    setup_error: str | None = None  # the sandbox could not start the command


class Runner(Protocol):
    name: str

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult: ...


class NamespaceRunner:
    """Runs each step in a child forked from the builder (sandbox.py says what the child does, and why a
    fork rather than a new interpreter)."""

    name = "namespaces"

    def __init__(self, tail_lines: int = 20):
        self._tail_lines = tail_lines

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult:
        if spec.groups and not ids.setgroups_allowed():
            ids.notice_once(ids.GROUPS_SKIPPED, on_line)
        output_r, output_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            pid = sandbox.start(spec, output_w, status_w)
        except OSError as exc:
            for fd in (output_r, status_r):
                os.close(fd)
            raise IsolationError(f"cannot start the RUN sandbox: {exc}") from None
        finally:
            os.close(output_w)
            os.close(status_w)
        with os.fdopen(output_r, "rb") as output, os.fdopen(status_r, "rb") as status:
            try:
                tail = self._relay(output, on_line)
                code = _exit_code(pid)
            except BaseException:
                _kill(pid)
                raise
            report = status.read().decode("utf-8", "replace").strip()
        return RunResult(code, tuple(tail), report.splitlines()[-1] if report else None)

    def _relay(self, output, on_line: Callable[[str], None]) -> deque[str]:
        """Passes every output line on, until the step and everything it started have exited."""
        tail: deque[str] = deque(maxlen=self._tail_lines)
        for raw in output:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line)
            on_line(line)
        return tail


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _kill(pid: int) -> None:
    """Ends a step the builder gives up on: the keeper's process group (the keeper and the step, pid 1 of its
    namespace, whose death ends every process in it), or the keeper alone if it has no group of its own yet."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
