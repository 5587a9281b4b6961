"""Owners and device nodes the image has but the host cannot give its files.

Without root (mode 3), or as a root whose user namespace maps only some ids, `chown` to an image's owner and
`mknod` of a device node fail. The directory-root modes (trees.py) then keep what the image says in a ledger
instead: the file stays the host user's, a device node becomes an empty regular file, and the scan index
(scan.py) carries the image's owner and device into the layers it writes. With full privileges (overlay
mode) there is no ledger and failures are errors, as before.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

# chown: EPERM without CAP_CHOWN; EINVAL for an id the user namespace does not map.
_CANNOT = (errno.EPERM, errno.EINVAL)


@dataclass(frozen=True)
class Ownership:
    """What the image says a path is, where the host file differs: its owner, and for a device node stood in
    for by an empty file, ("c" or "b", major, minor)."""

    uid: int
    gid: int
    device: tuple[str, int, int] | None = None


class OwnershipLedger:
    """Host path -> (inode, Ownership) for one build's directory roots. An entry holds only while the path
    still has the inode it was recorded for: a RUN that replaces the file (its new one is the RUN's own) or
    deletes it leaves a stale entry behind, which `lookup` then ignores.

    What a RUN step itself changes (isolation/proot_supervisor.py) is recorded by inode instead, because
    the step may still rename the file: dpkg chowns `NAME.dpkg-new`, then renames it to NAME. The snapshot
    after the step finds those inodes under their final paths, and `end_step` turns what it found into path
    entries."""

    def __init__(self) -> None:
        self._by_path: dict[str, tuple[int, Ownership]] = {}
        self._by_inode: dict[tuple[int, int], Ownership] = {}  # (st_dev, st_ino), during a step
        self._seen: dict[str, tuple[int, Ownership]] = {}  # path entries for _by_inode, made by lookups

    def record(self, path: str, ownership: Ownership) -> None:
        self._by_path[path] = (os.lstat(path).st_ino, ownership)

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

    def forget(self, path: str) -> None:
        self._by_path.pop(path, None)

    def lookup(self, path: str, st: os.stat_result) -> Ownership | None:
        by_inode = self._by_inode.get((st.st_dev, st.st_ino))
        if by_inode is not None:
            self._seen[path] = (st.st_ino, by_inode)
            return by_inode
        found = self._by_path.get(path)
        return found[1] if found and found[0] == st.st_ino else None

    def end_step(self) -> None:
        """After a step's snapshot: the inodes it recorded keep their ownership under the paths it found."""
        self._by_path.update(self._seen)
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


def chown(path: str, uid: int, gid: int) -> None:
    """os.chown without following symlinks; recorded instead when the host refuses and a ledger is active."""
    ledger = _active.get()
    try:
        os.chown(path, uid, gid, follow_symlinks=False)
    except OSError as exc:
        if ledger is None or exc.errno not in _CANNOT:
            raise
        previous = ledger.lookup(path, os.lstat(path))
        ledger.record(path, Ownership(uid, gid, previous.device if previous else None))
        return
    if ledger is not None:
        ledger.forget(path)


def mknod(path: str, mode: int, rdev: int) -> None:
    """os.mknod; an empty placeholder file plus a ledger entry when the host refuses device nodes."""
    ledger = _active.get()
    try:
        os.mknod(path, mode, rdev)
    except PermissionError:
        if ledger is None or not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        kind = "c" if stat.S_ISCHR(mode) else "b"
        st = os.lstat(path)
        ledger.record(path, Ownership(st.st_uid, st.st_gid, (kind, os.major(rdev), os.minor(rdev))))


def image_owner(path: str, st: os.stat_result) -> tuple[int, int]:
    """The owner the image gives a host file: the ledger's when it has one, else the file's own."""
    ledger = _active.get()
    recorded = ledger.lookup(path, st) if ledger is not None else None
    return (recorded.uid, recorded.gid) if recorded else (st.st_uid, st.st_gid)
