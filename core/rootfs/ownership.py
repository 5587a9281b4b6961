"""Owners, device nodes and file capabilities the image has but the host cannot give its files.

Without root (mode 3), or as a root whose user namespace maps only some ids, `chown` to an image's owner,
`mknod` of a device node and setting a security.* xattr fail. The directory-root modes (trees.py) then keep
what the image says in a ledger instead: the file stays the host user's, a device node becomes an empty
regular file, and the scan index (scan.py) carries the image's owner, device and xattrs into the layers it
writes. In the overlay modes there is no ledger and a refused chown is an error; a device node the kernel
refuses (the root of a user namespace has no CAP_MKNOD there) becomes an empty file that names the device
in an xattr of dockyard's own, which the snapshot and COPY read back.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Iterator

# chown: EPERM without CAP_CHOWN; EINVAL for an id the user namespace does not map.
_CANNOT = (errno.EPERM, errno.EINVAL)
# On a file standing in for a device node, without a ledger: "c MAJOR MINOR" or "b MAJOR MINOR". Never an
# image's xattr (xattrs.py leaves it out of layers; a layer's own is not applied).
DEVICE_XATTR = "user.dockyard.device"


@dataclass(frozen=True)
class Ownership:
    """What the image says a path is, where the host file differs: its owner, for a device node stood in
    for by an empty file ("c" or "b", major, minor), and the security.* xattrs the host refused (file
    capabilities need CAP_SETFCAP), sorted by name."""

    uid: int
    gid: int
    device: tuple[str, int, int] | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()


class OwnershipLedger:
    """Host path -> (inode, Ownership) for one build's directory roots. An entry holds only while the path
    still has the inode it was recorded for: a RUN that replaces the file (its new one is the RUN's own) or
    deletes it leaves a stale entry behind, which `lookup` then ignores. Another name of the same file (a hard
    link, which unpacking a layer or copying a tree makes without a chown of its own) has the entry's
    ownership too, as long as the recorded name still is that file.

    For a builder that is not root every file of a directory root is the host user's, so the ledger holds
    the image's owner of every file it knows, also where that owner happens to be the host user's ids: a
    RUN step sees the builder's files as its own user's (proot), and only the ledger tells which are not.

    What a RUN step itself changes (isolation/proot_supervisor.py) is recorded by inode instead, because
    the step may still rename the file: dpkg chowns `NAME.dpkg-new`, then renames it to NAME. The snapshot
    after the step finds those inodes under their final paths, and `end_step` turns what it found into path
    entries."""

    def __init__(self) -> None:
        self._by_path: dict[str, tuple[int, Ownership]] = {}
        self._named: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) -> the path last recorded for it
        self._by_inode: dict[tuple[int, int], Ownership] = {}  # (st_dev, st_ino), during a step
        self._seen: dict[str, tuple[os.stat_result, Ownership]] = {}  # path entries for _by_inode, by lookups

    def record(self, path: str, ownership: Ownership, st: os.stat_result | None = None) -> None:
        """`path` (whose lstat is `st`, when the caller has it) is `ownership`'s in the image."""
        st = st if st is not None else os.lstat(path)
        self._by_path[path] = (st.st_ino, ownership)
        self._named[(st.st_dev, st.st_ino)] = path

    def record_inode(self, st: os.stat_result, ownership: Ownership) -> None:
        self._by_inode[(st.st_dev, st.st_ino)] = ownership

    def lookup_inode(self, st: os.stat_result) -> Ownership | None:
        """What the running step recorded for this file, if anything."""
        return self._by_inode.get((st.st_dev, st.st_ino))

    def recorded_in_step(self) -> bool:
        return bool(self._by_inode)

    def entries(self) -> Iterator[tuple[str, int, Ownership]]:
        """(host path, inode, Ownership) of every path entry."""
        for path, (ino, owned) in self._by_path.items():
            yield path, ino, owned

    def has_path(self, path: str) -> bool:
        return path in self._by_path

    def lookup(self, path: str, st: os.stat_result, remember: bool = True) -> Ownership | None:
        """`remember=False` (a step's own stat calls, answered while it runs): what the snapshot finds later
        under this path is left to the snapshot."""
        by_inode = self._by_inode.get((st.st_dev, st.st_ino))
        if by_inode is not None:
            if remember:
                self._seen[path] = (st, by_inode)
            return by_inode
        found = self._by_path.get(path)
        if found is not None and found[0] == st.st_ino:
            return found[1]
        return self._other_name(path, st) if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode) else None

    def _other_name(self, path: str, st: os.stat_result) -> Ownership | None:
        """The entry of another name of the file at `path`, while that name still is the same file."""
        other = self._named.get((st.st_dev, st.st_ino))
        found = self._by_path.get(other) if other is not None and other != path else None
        if found is None or other is None or found[0] != st.st_ino:
            return None
        try:
            other_st = os.lstat(other)
        except OSError:
            return None
        return found[1] if (other_st.st_dev, other_st.st_ino) == (st.st_dev, st.st_ino) else None

    def end_step(self) -> None:
        """After a step's snapshot: the inodes it recorded keep their ownership under the paths it found."""
        for path, (st, owned) in self._seen.items():
            self.record(path, owned, st)
        self._seen.clear()
        self._by_inode.clear()

    def __len__(self) -> int:
        return len(self._by_path)


def active_ledger() -> OwnershipLedger | None:
    return _active.get()


_active: ContextVar[OwnershipLedger | None] = ContextVar("dockyard_ownership_ledger", default=None)


@contextmanager
def recording(ledger: OwnershipLedger) -> Iterator[OwnershipLedger]:
    """Within the block, chown/mknod that the host refuses are recorded in `ledger`."""
    token = _active.set(ledger)
    try:
        yield ledger
    finally:
        _active.reset(token)


def chown(path: str, uid: int, gid: int, *, fd: int | None = None) -> None:
    """os.chown without following symlinks (through `fd` when the caller has the file open: one path walk
    less); recorded instead when the host refuses and a ledger is active (and recorded as well for a builder
    that is not root: see OwnershipLedger)."""
    ledger = _active.get()
    try:
        if fd is None:
            os.chown(path, uid, gid, follow_symlinks=False)
        else:
            os.fchown(fd, uid, gid)
    except OSError as exc:
        if ledger is None or exc.errno not in _CANNOT:
            raise
    else:
        if ledger is None:
            return
        if os.geteuid() == 0 and not ledger.has_path(path):
            return  # root's chown is real: only a device node stood in for keeps an entry
    st = os.lstat(path)
    previous = ledger.lookup(path, st)
    ledger.record(path, Ownership(uid, gid, previous.device if previous else None), st)


def mknod(path: str, mode: int, rdev: int) -> None:
    """os.mknod; where the host refuses device nodes, an empty placeholder file instead, with a ledger entry
    when a ledger is active, else (a user namespace's root, whose unpacked layers later builds reuse) with
    the device written on the file itself, in DEVICE_XATTR."""
    ledger = _active.get()
    try:
        os.mknod(path, mode, rdev)
    except PermissionError:
        if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IMODE(mode)))
        kind = "c" if stat.S_ISCHR(mode) else "b"
        if ledger is not None:
            st = os.lstat(path)
            ledger.record(path, Ownership(st.st_uid, st.st_gid, (kind, os.major(rdev), os.minor(rdev))), st)
            return
        try:
            os.setxattr(path, DEVICE_XATTR, f"{kind} {os.major(rdev)} {os.minor(rdev)}".encode(),
                        follow_symlinks=False)
        except OSError:
            os.unlink(path)
            raise PermissionError(errno.EPERM, "device nodes cannot be made here", path) from None


def marked_device(path: str) -> tuple[str, int, int] | None:
    """The device an empty file stands in for, as mknod wrote it in DEVICE_XATTR; None if it has none."""
    try:
        kind, major, minor = os.getxattr(path, DEVICE_XATTR, follow_symlinks=False).decode().split()
        return (kind, int(major), int(minor)) if kind in ("c", "b") else None
    except (OSError, ValueError):
        return None


def image_owner(path: str, st: os.stat_result) -> tuple[int, int]:
    """The owner the image gives a host file: the ledger's when it has one, else the file's own."""
    ledger = _active.get()
    recorded = ledger.lookup(path, st) if ledger is not None else None
    return (recorded.uid, recorded.gid) if recorded else (st.st_uid, st.st_gid)


def stood_in_for(path: str, st: os.stat_result) -> tuple[int, int] | None:
    """(mode, rdev) of the device node the image has where the host has only the empty file standing in for
    it (see mknod); None for every other file."""
    if not stat.S_ISREG(st.st_mode) or st.st_size:
        return None
    ledger = _active.get()
    recorded = ledger.lookup(path, st) if ledger is not None else None
    device = recorded.device if recorded is not None else marked_device(path)
    if device is None:
        return None
    kind, major, minor = device
    return (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | stat.S_IMODE(st.st_mode), os.makedev(major, minor)


def setxattr(path: str, name: str, value: bytes) -> None:
    """os.setxattr without following symlinks; a security.* xattr the host refuses is recorded when a ledger
    is active. Other refusals are ignored, as docker ignores the kernel's refusal of user.* on a symlink."""
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        ledger = _active.get()
        if ledger is None or exc.errno not in (errno.EPERM, errno.EACCES) or not name.startswith("security."):
            return
        st = os.lstat(path)
        recorded = ledger.lookup(path, st) or Ownership(st.st_uid, st.st_gid)
        xattrs = dict(recorded.xattrs) | {name: value}
        ledger.record(path, replace(recorded, xattrs=tuple(sorted(xattrs.items()))), st)


def recorded_xattrs(path: str, st: os.stat_result) -> dict[str, bytes]:
    """The xattrs the image has for this file that the host refused (see setxattr)."""
    ledger = _active.get()
    recorded = ledger.lookup(path, st) if ledger is not None else None
    return dict(recorded.xattrs) if recorded is not None else {}
