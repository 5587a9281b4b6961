"""What this environment allows, probed in forked children, and the execution mode that follows.

  namespaces  mount namespace + overlayfs (root with CAP_SYS_ADMIN): RUN in namespaces, overlay snapshots;
  proot       no mount/unshare (a container's default profile), or not root: RUN through proot, roots as
              plain directories, snapshots by scanning (rootfs/trees.py, rootfs/scan.py).

A non-root user with user namespaces could have the namespaces mode inside one; dockyard does not enter a user
namespace yet, so such a user gets proot too (the report says so).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CAP_SYS_ADMIN = 21
MODES = ("auto", "namespaces", "proot")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


@dataclass(frozen=True)
class Environment:
    euid: int
    cap_sys_admin: bool
    mount_namespace: bool  # unshare(CLONE_NEWNS) works
    overlayfs: bool  # an overlay mounts inside it
    user_namespace: bool  # unshare(CLONE_NEWUSER) with a uid map works
    max_user_namespaces: int | None
    seccomp: str
    proot: str | None  # proot's path, if it runs
    subuid_ranges: tuple[str, ...]


@dataclass(frozen=True)
class Mode:
    name: str  # "namespaces" or "proot"
    reason: str


def _in_child(probe) -> bool:
    """Runs `probe` in a forked child (namespaces it enters die with it); True if it returned True."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if probe() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _mount_namespace() -> bool:
    return _libc.unshare(CLONE_NEWNS) == 0


def _overlay(work_dir: str) -> bool:
    if _libc.unshare(CLONE_NEWNS) != 0 or _libc.mount(None, b"/", None, (1 << 14) | (1 << 18), None) != 0:
        return False
    # In the build's own work directory: an upper directory on some filesystems (overlayfs itself) is refused.
    with tempfile.TemporaryDirectory(prefix="dockyard-probe-", dir=work_dir) as scratch:
        dirs = {name: os.path.join(scratch, name) for name in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        data = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        mounted = _libc.mount(b"overlay", dirs["merged"].encode(), b"overlay", 0, data.encode()) == 0
        if mounted:
            _libc.umount2(dirs["merged"].encode(), 2)  # detach, so the directory can be removed
        return mounted


def _user_namespace() -> bool:
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWUSER) != 0:
        return False
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
    except OSError:
        return False
    return True


def _status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def _seccomp() -> str:
    return {"0": "disabled", "1": "strict", "2": "filter"}.get(_status_field("Seccomp"), "unknown")


def _max_user_namespaces() -> int | None:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _proot() -> str | None:
    path = shutil.which("proot")
    if path is None:
        return None
    try:
        ok = subprocess.run([path, "-r", "/", "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if ok else None


def _subuid_ranges() -> tuple[str, ...]:
    import pwd

    try:
        name = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        name = None
    ranges = []
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                ranges += [f"{path}: {line.strip()}" for line in f
                           if re.match(rf"({re.escape(name or '')}|{os.geteuid()}):", line)]
        except OSError:
            continue
    return tuple(ranges)


def probe(work_dir: str = "/var/tmp") -> Environment:
    effective = int(_status_field("CapEff") or "0", 16)
    return Environment(
        euid=os.geteuid(), cap_sys_admin=bool(effective >> CAP_SYS_ADMIN & 1),
        mount_namespace=_in_child(_mount_namespace), overlayfs=_in_child(lambda: _overlay(work_dir)),
        user_namespace=_in_child(_user_namespace), max_user_namespaces=_max_user_namespaces(),
        seccomp=_seccomp(), proot=_proot(), subuid_ranges=_subuid_ranges())


def choose(env: Environment, wanted: str = "auto") -> Mode:
    """The mode for `env` (or the one `wanted` forces); IsolationError if neither is possible."""
    from ..errors import IsolationError

    namespaces_ok = env.euid == 0 and env.mount_namespace and env.overlayfs
    if wanted == "namespaces" or (wanted == "auto" and namespaces_ok):
        if not namespaces_ok:
            raise IsolationError("--isolation=namespaces needs root with CAP_SYS_ADMIN and overlayfs, which this "
                                 "environment does not give", hint="use --isolation=auto; `dockyard doctor` "
                                                                   "shows what is available")
        return Mode("namespaces", "root with CAP_SYS_ADMIN and overlayfs")
    if env.proot is None:
        raise IsolationError("this environment allows no mount namespace and proot does not work here",
                             hint="install Debian's proot package, or run as root with CAP_SYS_ADMIN")
    if wanted == "proot":
        return Mode("proot", "asked for with --isolation=proot")
    if env.euid != 0:
        why = ("not root (user namespaces are available, but dockyard does not enter one yet)"
               if env.user_namespace else "not root, and no user namespaces")
    elif not env.mount_namespace:
        why = "no mount namespace allowed (no CAP_SYS_ADMIN)"
    else:
        why = "overlayfs cannot be mounted"
    return Mode("proot", why)
