"""What a RUN step's isolation backend is given and returns: the `Runner` protocol the executor knows, the
`RunSpec` it runs (with the `SandboxMount`s made inside the root) and the `RunResult` it ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol


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
    # The platform of the image being built ("linux/arm64"); a foreign one runs through QEMU (emulation.py).
    platform: str | None = None


@dataclass(frozen=True)
class RunResult:
    """How a RUN command ended: its exit code and last lines of output, or why the sandbox could not start it."""

    exit_code: int
    tail: tuple[str, ...]  # the last lines of output, for error messages
    setup_error: str | None = None  # the sandbox could not start the command


class Runner(Protocol):
    name: str

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult: ...
