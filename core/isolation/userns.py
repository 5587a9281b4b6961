"""Mode 1 for a non-root user: the builder re-enters itself in a user namespace where it is root.

As rootless podman and buildah do, the namespace maps id 0 onto the user and ids 1..N onto the user's
subordinate range from /etc/subuid and /etc/subgid. Only the setuid helpers newuidmap/newgidmap (Debian's
`uidmap` package) may write such a map, and only for a process that already runs in the new namespace, so:

  1. the builder forks; the child unshares a user namespace and waits on a pipe;
  2. the parent runs newuidmap/newgidmap for the child's pid, then lets it go on;
  3. the child, now root of its namespace with every capability in it, execs `python -m dockyard` with
     the same arguments; that builder finds itself root and picks the namespaces mode (overlay mounts
     with `userxattr`, see rootfs/overlay.py), so RUN's chown and setuid bits are real;
  4. the parent relays signals to the child and exits with its status.

Files the inner builder creates in the user's cache are owned by subordinate ids on the host, which the user
cannot remove directly: `dockyard cache prune` re-enters the namespace the same way to remove them.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass

from ..errors import IsolationError

CLONE_NEWUSER = 0x10000000
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class IdRange:
    """A range of subordinate ids: `count` ids from `start`, as a line of /etc/subuid or /etc/subgid gives it."""

    start: int
    count: int


@dataclass(frozen=True)
class Subordinates:
    """The user's first ranges in /etc/subuid and /etc/subgid."""

    uids: IdRange
    gids: IdRange


def _first_range(path: str, name: str | None, uid: int) -> IdRange | None:
    """The first `owner:start:count` line of `path` whose owner is the user's name or numeric id."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (name, str(uid)) and fields[1].isdigit() and fields[2].isdigit():
            if int(fields[2]) > 0:
                return IdRange(int(fields[1]), int(fields[2]))
    return None


def subordinates(uid: int | None = None) -> Subordinates | None:
    """The subordinate id ranges of `uid` (default: this process's user), or None if it has not both."""
    uid = os.geteuid() if uid is None else uid
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    uids = _first_range("/etc/subuid", name, uid)
    gids = _first_range("/etc/subgid", name, uid)
    return Subordinates(uids, gids) if uids and gids else None


def id_map_tools() -> tuple[str, str] | None:
    """Paths of newuidmap and newgidmap, if both are installed."""
    uidmap, gidmap = shutil.which("newuidmap"), shutil.which("newgidmap")
    return (uidmap, gidmap) if uidmap and gidmap else None


def reenter(args: list[str], ids: Subordinates) -> int:
    """Run `python -m dockyard ARGS` as root of a new user namespace mapped onto `ids`; its exit status."""
    tools = id_map_tools()
    if tools is None:
        raise IsolationError("a user namespace build needs newuidmap and newgidmap, which are not installed",
                             hint="install Debian's uidmap package, or build with --isolation=proot")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return into the caller's code
        code = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            if _libc.unshare(CLONE_NEWUSER) != 0:
                os.write(2, f"error: cannot create a user namespace: {os.strerror(ctypes.get_errno())}\n".encode())
                os._exit(8)
            os.write(ready_w, b"1")
            os.close(ready_w)
            if os.read(go_r, 1) == b"1":  # anything else: the parent could not write the maps
                os.execv(sys.executable, [sys.executable, "-m", "dockyard", *args])
        except OSError as exc:
            os.write(2, f"error: cannot start dockyard in the user namespace: {exc}\n".encode())
            code = 8
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    with os.fdopen(ready_r, "rb", buffering=0) as ready, os.fdopen(go_w, "wb", buffering=0) as go:
        if ready.read(1) != b"1":
            return _wait(pid)  # the child could not unshare and said why
        uid, gid = os.geteuid(), os.getegid()
        for tool, own, extra in ((tools[0], uid, ids.uids), (tools[1], gid, ids.gids)):
            done = subprocess.run([tool, str(pid), "0", str(own), "1", "1", str(extra.start), str(extra.count)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                go.close()  # the child reads end-of-file and exits
                _wait(pid)
                raise IsolationError(f"cannot map the user namespace's ids: {done.stderr.strip()}",
                                     hint="check this user's ranges in /etc/subuid and /etc/subgid, or build "
                                          "with --isolation=proot")
        go.write(b"1")
    return _wait(pid)


def _wait(pid: int) -> int:
    """The child's exit status; signals meant for the builder (Ctrl-C, a CI job cancelled) are passed on."""
    previous = {sig: signal.signal(sig, lambda number, _frame: os.kill(pid, number)) for sig in _FORWARDED}
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)
