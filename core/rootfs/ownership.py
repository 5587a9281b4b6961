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

    def lookup(self, path: str, st: os.stat_result) -> Ownership | None:
        by_inode = self._by_inode.get((st.st_dev, st.st_ino))
        if by_inode is not None:
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
        if found is None or found[0] != st.st_ino:
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


def chown(path: str, uid: int, gid: int) -> None:
    """os.chown without following symlinks; recorded instead when the host refuses and a ledger is active
    (and recorded as well for a builder that is not root: see OwnershipLedger)."""
    ledger = _active.get()
    try:
        os.chown(path, uid, gid, follow_symlinks=False)
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
