"""Isolation backends: how a RUN step's command is executed inside a root filesystem.

The executor only knows the `Runner` protocol; backends decide how isolation is achieved. Today there is one,
`NamespaceRunner` (namespaces + pivot_root, for root with CAP_SYS_ADMIN); unprivileged backends plug in here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from ..errors import IsolationError

SANDBOX = os.path.join(os.path.dirname(__file__), "sandbox.py")


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
    exit_code: int
    tail: tuple[str, ...]  # the last lines of output, for error messages
    setup_error: str | None = None  # the sandbox could not start the command


class Runner(Protocol):
    name: str

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult: ...


class NamespaceRunner:
    """Runs the sandbox script (sandbox.py) as a child process; see its docstring for what it does."""

    name = "namespaces"

    def __init__(self, tail_lines: int = 20):
        self._tail_lines = tail_lines

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult:
        status_r, status_w = os.pipe()
        payload = json.dumps({
            "status_fd": status_w, "rootfs": spec.rootfs, "argv": list(spec.argv), "env": dict(spec.env),
            "cwd": spec.cwd, "uid": spec.uid, "gid": spec.gid, "groups": list(spec.groups), "hostname": spec.hostname,
            "network": spec.network, "mounts": [asdict(m) for m in spec.mounts],
        }).encode()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", SANDBOX], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, close_fds=True, pass_fds=(status_w,),
                env={}, start_new_session=True)
        except OSError as exc:
            os.close(status_r)
            os.close(status_w)
            raise IsolationError(f"cannot start the RUN sandbox: {exc}") from None
        os.close(status_w)
        assert proc.stdin and proc.stdout
        proc.stdin.write(payload)
        proc.stdin.close()
        tail: deque[str] = deque(maxlen=self._tail_lines)
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                tail.append(line)
                on_line(line)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        with os.fdopen(status_r, "rb") as status:
            report = status.read().decode("utf-8", "replace").strip()
        setup_error = None
        if report:
            try:
                setup_error = json.loads(report.splitlines()[-1]).get("error")
            except ValueError:
                setup_error = report
        return RunResult(code, tuple(tail), setup_error)

