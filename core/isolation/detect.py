"""What this environment allows, probed in forked children, and the execution mode that follows.

  namespaces  mount namespace + overlayfs (root with CAP_SYS_ADMIN, in the host's user namespace or in one
              that dockyard re-entered): RUN in namespaces, overlay snapshots;
  userns      not root, but user namespaces work and /etc/subuid and /etc/subgid give the user ranges: the
              CLI re-enters itself as root of a user namespace (userns.py) and builds in the namespaces mode;
  proot       no mount/unshare (a container's default profile), or not root without subordinate ids: RUN
              through proot, roots as plain directories, snapshots by scanning (rootfs/trees.py, scan.py).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from ..rootfs.overlay import OVERLAY_OPTIONS, USERNS_OVERLAY_OPTIONS, in_user_namespace
from .userns import Subordinates, id_map_tools, subordinates

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CAP_SYS_ADMIN = 21
MODES = ("auto", "namespaces", "proot")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


@dataclass(frozen=True)
class Environment:
    """What `probe` found this environment allows: the facts `choose` picks a mode from and `dockyard doctor` shows."""

    euid: int
    cap_sys_admin: bool
    mount_namespace: bool  # unshare(CLONE_NEWNS) works
    overlayfs: bool  # an overlay mounts inside it
    user_namespace: bool  # unshare(CLONE_NEWUSER) with a uid map works
    max_user_namespaces: int | None
    seccomp: str
    proot: str | None  # proot's path, if it runs
    subordinates: Subordinates | None  # the user's /etc/subuid and /etc/subgid ranges
    id_map_tools: bool  # newuidmap and newgidmap are installed
    in_user_namespace: bool  # this process already runs in a user namespace other than the host's

    @property
    def can_reenter(self) -> bool:
        """A non-root user can become root of a user namespace mapped onto its subordinate ids."""
        return self.euid != 0 and self.user_namespace and self.subordinates is not None and self.id_map_tools


@dataclass(frozen=True)
class Mode:
    """The execution mode chosen for this environment (namespaces, userns or proot), and why."""

    name: str  # "namespaces", "userns" or "proot"
    reason: str


def _in_child(probe: Callable[[], bool]) -> bool:
    """Runs `probe` in a forked child (namespaces it enters die with it); True if it returned True."""
    return _child_result(_start_child(probe))


def _start_child(probe: Callable[[], bool]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if probe() else 1
        finally:
            os._exit(code)
    return pid


def _child_result(pid: int) -> bool:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


# Overlay probes started ahead by start_overlay_probe(): work dir -> the probing child's pid.
_overlay_probes: dict[str, int] = {}


def start_overlay_probe(work_dir: str) -> None:
    """Starts select()'s overlay probe for `work_dir` now, in a forked child that runs on another core while
    this process goes on (the CLI imports the builder meanwhile); select() collects its answer. Call it before
    any thread is started, with `work_dir` existing."""
    if work_dir not in _overlay_probes:
        _overlay_probes[work_dir] = _start_child(lambda: _overlay(work_dir))


def _mount_namespace() -> bool:
    return int(_libc.unshare(CLONE_NEWNS)) == 0


def _overlay(work_dir: str) -> bool:
    if _libc.unshare(CLONE_NEWNS) != 0 or _libc.mount(None, b"/", None, (1 << 14) | (1 << 18), None) != 0:
        return False
    # In the build's own work directory: an upper directory on some filesystems (overlayfs itself) is refused.
    with tempfile.TemporaryDirectory(prefix="dockyard-probe-", dir=work_dir) as scratch:
        dirs = {name: os.path.join(scratch, name) for name in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        data = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        data += "," + (USERNS_OVERLAY_OPTIONS if in_user_namespace() else OVERLAY_OPTIONS)  # the builder's own
        # Volatile where the kernel has it (5.10+): a plain overlay syncs the whole work filesystem when this
        # child's namespace goes away, which made the build wait for the writeback of the previous build's files
        # (0.46 s after a build of 20,000 files).
        mounted = any(_libc.mount(b"overlay", dirs["merged"].encode(), b"overlay", 0, (data + extra).encode()) == 0
                      for extra in (",volatile", ""))
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


def probe(work_dir: str = "/var/tmp") -> Environment:
    effective = int(_status_field("CapEff") or "0", 16)
    return Environment(
        euid=os.geteuid(), cap_sys_admin=bool(effective >> CAP_SYS_ADMIN & 1),
        mount_namespace=_in_child(_mount_namespace), overlayfs=_in_child(lambda: _overlay(work_dir)),
        user_namespace=_in_child(_user_namespace), max_user_namespaces=_max_user_namespaces(),
        seccomp=_seccomp(), proot=_proot(), subordinates=subordinates(), id_map_tools=id_map_tools() is not None,
        in_user_namespace=in_user_namespace())


def select(work_dir: str, wanted: str = "auto", *, reentry: bool = True) -> Mode:
    """`choose(probe(work_dir), ...)`, probing no more than the choice needs. Root whose overlay mounts (in a
    new mount namespace, so that one probe answers both) takes the namespaces mode at once: a build then starts
    with one forked child, not with every probe `dockyard doctor` shows (three children and a proot run, about
    a tenth of a small build's time)."""
    started = _overlay_probes.pop(work_dir, None)
    if wanted in ("auto", "namespaces") and os.geteuid() == 0:
        overlay = _child_result(started) if started is not None else _in_child(lambda: _overlay(work_dir))
        if overlay:
            return Mode("namespaces", _namespaces_reason(in_user_namespace()))
    elif started is not None:
        _child_result(started)  # not needed after all: reaped all the same
    return choose(probe(work_dir), wanted, reentry=reentry)


def choose(env: Environment, wanted: str = "auto", *, reentry: bool = True) -> Mode:
    """The mode for `env` (or the one `wanted` forces); IsolationError if none is possible. Without
    `reentry` (a library caller: only the CLI can re-exec itself) "userns" is never chosen."""
    from ..errors import IsolationError

    namespaces_ok = env.euid == 0 and env.mount_namespace and env.overlayfs
    if wanted in ("auto", "namespaces") and namespaces_ok:
        return Mode("namespaces", _namespaces_reason(env.in_user_namespace))
    if wanted in ("auto", "namespaces") and reentry and env.can_reenter:
        ids = env.subordinates
        assert ids is not None  # can_reenter says so
        return Mode("userns", f"not root: re-entering a user namespace with uids {ids.uids.start}.."
                              f"{ids.uids.start + ids.uids.count - 1} from /etc/subuid")
    if wanted == "namespaces":
        raise IsolationError("--isolation=namespaces needs root with CAP_SYS_ADMIN and overlayfs, or user "
                             "namespaces with subordinate ids (/etc/subuid), which this environment does not give",
                             hint="use --isolation=auto; `dockyard doctor` shows what is available")
    if env.proot is None:
        raise IsolationError(
            "RUN cannot be isolated here: no mount namespace is allowed, "
            + ("no user namespace with subordinate ids is available, " if env.euid != 0 else "")
            + "and proot is not installed or does not work",
            hint="install Debian's proot package" + (", or give this user ranges in /etc/subuid and /etc/subgid "
                                                     "(with the uidmap package)" if env.euid != 0 else "")
            + "; `dockyard doctor` shows what this environment allows")
    if wanted == "proot":
        return Mode("proot", "asked for with --isolation=proot")
    if env.euid != 0:
        why = "not root, " + ("no user namespaces" if not env.user_namespace else
                              "no subordinate ids in /etc/subuid and /etc/subgid" if env.subordinates is None else
                              "newuidmap/newgidmap not installed")
    elif not env.mount_namespace:
        why = "no mount namespace allowed (no CAP_SYS_ADMIN)"
    else:
        why = "overlayfs cannot be mounted"
    return Mode("proot", why)


def _namespaces_reason(in_userns: bool) -> str:
    if in_userns:
        return "root of a user namespace, with overlayfs (userxattr)"
    return "root with CAP_SYS_ADMIN and overlayfs"
