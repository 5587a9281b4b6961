"""Overlay mounts for root filesystems: a stack of layer directories (lower) plus one step's upper directory.

The builder first moves itself into a private mount namespace, so every mount it makes is invisible to the
host and disappears with the process even if it is killed. Layer directories are in overlayfs's own format
(whiteouts are 0/0 character devices, opaque directories carry `trusted.overlay.opaque=y`): the upper
directory of a step *is* that step's change set, and becomes a lower directory for the steps after it.

In a user namespace (a non-root user's build, isolation/userns.py) trusted.* xattrs cannot be written, so
overlays are mounted with `userxattr` (Linux 5.11+) and overlayfs keeps its bookkeeping in `user.overlay.*`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from contextlib import contextmanager
from functools import cache
from typing import Iterator, Sequence

from ..errors import IsolationError

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

# redirect_dir/metacopy/index off: the upper directory must be a plain, self-contained diff (a renamed
# directory is copied, a chmod copies the file) so that it can be turned into a layer tar as it is.
OVERLAY_OPTIONS = "index=off,redirect_dir=off,metacopy=off,xino=off"
# In a user namespace: `userxattr` refuses redirect_dir=off where the kernel reads "off" as "follow";
# nofollow neither creates nor follows redirects, which is what "off" is for here.
USERNS_OVERLAY_OPTIONS = "index=off,redirect_dir=nofollow,metacopy=off,xino=off,userxattr"
# The mount(2) data argument is one page.
_MAX_OPTIONS = 4000

# The initial user namespace maps every id onto itself; any other map means a user namespace.
_INITIAL_UID_MAP = ["0", "0", "4294967295"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_mount_lock = threading.Lock()
_in_private_namespace = False
# Whether this kernel takes overlayfs's `volatile` option (Linux 5.10+); learnt from the first mount that asks.
_volatile_supported: bool | None = None


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, flags, data.encode() if data else None),
           f"mount {fstype or 'bind'} on {target}")


def _mount_overlay(target: str, upper: str | None, data: str, volatile: bool) -> None:
    global _volatile_supported
    flags = 0 if upper else MS_RDONLY
    if volatile and _volatile_supported is not False:
        try:
            mount("overlay", target, "overlay", flags, data + ",volatile")
            _volatile_supported = True
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL or _volatile_supported:
                raise
            _volatile_supported = False  # an older kernel: the same mount without the option below
    mount("overlay", target, "overlay", flags, data)


def umount(target: str, detach: bool = True) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH if detach else 0), f"umount {target}")


@cache
def in_user_namespace() -> bool:
    """True in a user namespace other than the host's (this process never changes user namespace)."""
    with open("/proc/self/uid_map") as f:
        return f.read().split() != _INITIAL_UID_MAP


def overlay_xattr_prefix() -> str:
    """Where overlayfs keeps its own xattrs (opaque directories, redirects) on the mounts this process makes."""
    return "user.overlay." if in_user_namespace() else "trusted.overlay."


def enter_private_mount_namespace() -> None:
    """Move this process into its own mount namespace (once). Mounts made afterwards never reach the host."""
    global _in_private_namespace
    if _in_private_namespace:
        return
    if _libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise IsolationError(
            f"cannot create a mount namespace: {os.strerror(err)}",
            hint="build with --isolation=auto, which picks a mode this environment allows (`dockyard doctor`)"
            if err in (errno.EPERM, errno.EACCES) else None)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    _in_private_namespace = True


def overlay_options(lowers: Sequence[str], upper: str | None, work: str | None) -> tuple[str, str | None]:
    """The mount data string, and the directory it must be mounted from when paths are made relative.

    Lower directories are given top first. When absolute paths would overflow the one-page limit, the paths
    are made relative to their common parent and the mount is done from there (docker's trick).
    """
    def build(paths: Sequence[str], up: str | None, wk: str | None) -> str:
        opts = f"lowerdir={':'.join(paths)}"
        if up:
            opts += f",upperdir={up},workdir={wk}"
        return opts + "," + (USERNS_OVERLAY_OPTIONS if in_user_namespace() else OVERLAY_OPTIONS)

    data = build(lowers, upper, work)
    if len(data) <= _MAX_OPTIONS:
        return data, None
    base = os.path.commonpath([*lowers, *(p for p in (upper, work) if p)])
    rel = [os.path.relpath(p, base) for p in lowers]
    data = build(rel, os.path.relpath(upper, base) if upper else None, os.path.relpath(work, base) if work else None)
    if len(data) > _MAX_OPTIONS:
        raise IsolationError(f"too many layers ({len(lowers)}) for one overlay mount",
                             hint="squash the base image or reduce the number of steps")
    return data, base


@contextmanager
def overlay_mount(lowers: Sequence[str], target: str, upper: str | None = None,
                  work: str | None = None, *, volatile: bool = False) -> Iterator[str]:
    """Mount lowers (top first) + optional upper at target for the duration of the block.

    `volatile` (for a step's upper directory): unmounting an overlay otherwise syncs the whole upper
    filesystem, which wrote a step's new files (and every blob written since) to disk before the build could go
    on: 0.26 s for a 256 MB file on this machine. Nothing is lost by it: a step's blob is fsynced when it is
    stored (image/blobs.py), and its directory joins the layer cache marked with the boot id, so that after a
    crash it is unpacked again from that blob (cache/layers.py). A kernel without the option (before 5.10)
    mounts without it."""
    if not lowers:
        raise ValueError("overlay needs at least one lower directory")
    if len(lowers) == 1 and upper is None:
        # overlayfs refuses a single lower without an upper; a read-only bind does the same job.
        mount(lowers[0], target, None, MS_BIND)
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    else:
        data, cwd = overlay_options(lowers, upper, work)
        with _mount_lock:
            old = os.getcwd() if cwd else None
            try:
                if cwd:
                    os.chdir(cwd)
                _mount_overlay(target, upper, data, volatile and upper is not None)
            finally:
                if old:
                    os.chdir(old)
    try:
        yield target
    finally:
        umount(target)
