"""The namespace backend: each RUN step in namespaces of its own with pivot_root into its root, for root with
CAP_SYS_ADMIN (also inside a user namespace)."""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from typing import BinaryIO, Callable

from ..errors import IsolationError
from .emulation import is_foreign
from .ids import GROUPS_SKIPPED, notice_once, setgroups_allowed
from .runner import RunResult, RunSpec
from .sandbox import start as start_sandbox


class NamespaceRunner:
    """Runs each step in a child forked from the builder (sandbox.py says what the child does, and why a
    fork rather than a new interpreter)."""

    name = "namespaces"

    def __init__(self, tail_lines: int = 20):
        self._tail_lines = tail_lines
        # The keepers of the steps running now (several when stages run at the same time), for `stop`.
        self._running: set[int] = set()
        self._running_lock = threading.Lock()

    def stop(self) -> None:
        """Kills every step running now, with everything it started (the build is stopping: another stage
        failed). Each step's own `run` then reaps it and reports it killed."""
        with self._running_lock:
            for pid in self._running:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:  # no group of its own yet: the keeper alone (the step dies with it)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult:
        if spec.groups and not setgroups_allowed():
            notice_once(GROUPS_SKIPPED, on_line)
        output_r, output_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            pid = start_sandbox(spec, output_w, status_w)
        except OSError as exc:
            for fd in (output_r, status_r):
                os.close(fd)
            raise IsolationError(f"cannot start the RUN sandbox: {exc}") from None
        finally:
            os.close(output_w)
            os.close(status_w)
        with self._running_lock:
            self._running.add(pid)
        with os.fdopen(output_r, "rb") as output, os.fdopen(status_r, "rb") as status:
            try:
                tail = self._relay(output, on_line)
                self._forget(pid)  # before it is reaped: `stop` never signals a reused pid
                code = _exit_code(pid)
            except BaseException:
                self._forget(pid)
                _kill(pid)
                raise
            report = status.read().decode("utf-8", "replace").strip()
        error = report.splitlines()[-1] if report else None
        if error and "Exec format error" in error and is_foreign(spec.platform):
            error += (f" (a {spec.platform} program needs QEMU registered in binfmt_misc with the F flag; "
                      "`dockyard doctor` says how this machine runs each platform)")
        return RunResult(code, tuple(tail), error)

    def _forget(self, pid: int) -> None:
        with self._running_lock:
            self._running.discard(pid)

    def _relay(self, output: BinaryIO, on_line: Callable[[str], None]) -> deque[str]:
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
