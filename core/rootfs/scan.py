"""Snapshots by scanning, for directory roots (no overlayfs): what a step changed, found by comparing each
path's stat data with the index the previous snapshot left.

The fingerprint of a path is (type and mode, size, mtime_ns, ctime_ns, inode, link count, owner, rdev).
The kernel moves ctime on every content, owner, mode, link or xattr change and no process can set it back,
so an equal fingerprint means an unchanged path without reading its xattrs or content; only a path whose
fingerprint differs has its xattrs read. Content is hashed only where stat data cannot tell:

* "racy" files — written so close to the scan that a later write in the same timestamp tick could leave
  every time unchanged (git's racy-clean problem): the scan stores their digest, and the next scan hashes
  them again only if their fingerprint is still equal;
* a fingerprint that differs only in ctime (or only in inode with the same size and mtime, a file replaced
  by an identical copy) while a digest is known: equal content and xattrs mean unchanged.

Without a digest such paths count as changed: the layer then carries a file that did not change, which is
correct, just larger. Nothing else is ever hashed, so a step costs one lstat per path of the root.
Deleted paths become whiteouts (only the topmost: everything below a deleted directory goes with it); a
directory replaced by a file, or a file by a directory, is written as its new entry, which replaces the old
one when the layer is applied. Like an overlay upper directory, the change set carries the parent
directories of every changed path.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from typing import Any

from ..cache.digests import hash_file
from .ownership import Ownership, OwnershipLedger
from .snapshot import Change

# Files whose mtime or ctime is this close to the scan's start are racy (the kernel's coarse clock ticks
# every 1-10 ms; 50 ms leaves room for a slow filesystem).
RACY_NS = 50_000_000


@dataclass(frozen=True, slots=True)
class Record:
    """One path as the last scan saw it: enough to tell, at the next scan, whether it changed."""

    fingerprint: tuple[int, ...]
    xattrs: tuple[tuple[str, bytes], ...] = ()
    digest: str | None = None  # only for racy files


@dataclass
class Index:
    """Every path of a directory root (root-relative; the root itself is ""), as the last scan saw it."""

    records: dict[str, Record] = field(default_factory=dict)
    taken_ns: int = 0


@dataclass
class ScanStats:
    """What a scan did, for the snapshot note: paths looked at, changes found, files hashed, time taken."""

    paths: int = 0
    changed: int = 0
    deleted: int = 0
    hashed: int = 0
    seconds: float = 0.0


@dataclass
class ScanResult:
    """A scan's outcome: the change set for the layer, the index for the next scan, and its stats."""

    changes: list[Change]
    index: Index
    stats: ScanStats


def fingerprint(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_nlink, st.st_uid,
            st.st_gid, st.st_rdev)


def read_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    found = []
    for name in sorted(names):
        try:
            found.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(found)


class Scanner:
    """One scan of `root` against `previous` (None: the first scan, which only builds the index).

    `ledger` holds the image owners the host could not give (ownership.py); `new_owner` is who a file the
    step made belongs to in the image when the ledger does not say (the identity a RUN ran as, in the
    non-root mode: the file is the host user's only because the host user had to create it). A file that was
    there before the step (changed in place, renamed, or given another name) keeps the owner it had."""

    def __init__(self, root: str, previous: Index | None, *, ledger: OwnershipLedger | None = None,
                 new_owner: Ownership | None = None):
        self.root = root
        self.previous = previous
        self.ledger = ledger
        self.new_owner = new_owner
        self.index = Index(taken_ns=time.time_ns())
        self.stats = ScanStats()
        self.changed: set[str] = set()
        self._old_names: dict[int, str] | None = None  # inode -> a path of the previous index, when needed

    def run(self) -> ScanResult:
        started = time.monotonic()
        self._visit("", os.lstat(self.root))
        changes = self._changes() if self.previous is not None else []
        self.stats.seconds = time.monotonic() - started
        return ScanResult(changes, self.index, self.stats)

    def _visit(self, rel: str, st: os.stat_result) -> None:
        self.stats.paths += 1
        self.index.records[rel] = self._record(rel, st)
        if stat.S_ISDIR(st.st_mode):
            path = os.path.join(self.root, rel) if rel else self.root
            with os.scandir(path) as entries:
                children = [(f"{rel}/{e.name}" if rel else e.name, e.stat(follow_symlinks=False)) for e in entries]
            for child, child_st in children:
                self._visit(child, child_st)

    def _record(self, rel: str, st: os.stat_result) -> Record:
        path = os.path.join(self.root, rel) if rel else self.root
        current = fingerprint(st)
        old = self.previous.records.get(rel) if self.previous is not None else None
        racy = stat.S_ISREG(st.st_mode) and max(st.st_mtime_ns, st.st_ctime_ns) >= self.index.taken_ns - RACY_NS
        if self.ledger is not None and self.ledger.lookup_inode(st) is not None:
            # The step chowned it: only the ledger knows, the host file (and so its stat data) is as it was.
            old = None
        if old is not None and old.fingerprint == current and not (old.digest and racy):
            if old.digest is None:
                return old
            # Racy last time: equal times prove nothing, the content decides.
            return self._compare_content(rel, path, current, old, old.xattrs, racy)
        xattrs = read_xattrs(path)
        if old is not None and old.digest and _same_but_times(old.fingerprint, current) and xattrs == old.xattrs:
            return self._compare_content(rel, path, current, old, xattrs, racy)
        if old is not None and _only_ctime(old.fingerprint, current) and xattrs == old.xattrs \
                and not stat.S_ISREG(st.st_mode):
            # A directory, link or device whose ctime moved with nothing else changed (e.g. a chmod to
            # the same mode): nothing to write.
            return Record(current, xattrs)
        self.changed.add(rel)
        return Record(current, xattrs, self._hash(path) if racy else None)

    def _compare_content(self, rel: str, path: str, current: tuple[int, ...], old: Record,
                         xattrs: tuple[tuple[str, bytes], ...], racy: bool) -> Record:
        digest = self._hash(path)
        if digest != old.digest:
            self.changed.add(rel)
        return Record(current, xattrs, digest if racy else None)

    def _hash(self, path: str) -> str:
        self.stats.hashed += 1
        return hash_file(path)

    def _changes(self) -> list[Change]:
        assert self.previous is not None
        old, new = self.previous.records, self.index.records
        entries: dict[str, Change] = {}
        for rel in self.changed - {""}:  # the root directory itself is never a layer entry
            entries[rel] = Change(rel, ownership=self._ownership(rel))
            self._add_parents(rel, entries)
        for rel in old:
            # Only the topmost deleted path: a deleted or replaced directory takes what was below it along.
            parent = new.get(_parent(rel))
            if rel and rel not in new and parent is not None and stat.S_ISDIR(parent.fingerprint[0]):
                entries[rel] = Change(rel, deleted=True)
                self._add_parents(rel, entries)
        self.stats.changed = sum(1 for c in entries.values() if not c.deleted)
        self.stats.deleted = len(entries) - self.stats.changed
        return [entries[rel] for rel in sorted(entries, key=lambda r: r.split("/"))]

    def _add_parents(self, rel: str, entries: dict[str, Change]) -> None:
        parent = _parent(rel)
        while parent and parent not in entries:
            entries[parent] = Change(parent, ownership=self._ownership(parent))
            parent = _parent(parent)

    def _ownership(self, rel: str) -> Ownership | None:
        """The image's owner of a changed path, where the host file cannot show it; recorded in the ledger, so
        that later steps, `COPY --from` and the steps' own stat calls find it too."""
        path = os.path.join(self.root, rel)
        st = os.lstat(path)
        if self.ledger is None:
            return self.new_owner if self.new_owner is not None and st.st_uid == os.geteuid() else None
        owned = self.ledger.lookup(path, st)
        # Neither a step user nor entries: root's build, whose host owners are the image's.
        if owned is None and (self.new_owner is not None or len(self.ledger)):
            origin = self._origin(rel, st)
            if origin is not None:
                # There before the step (in place, moved or linked): it keeps the owner it had.
                owned = self.ledger.lookup(os.path.join(self.root, origin), st) if origin != rel else None
            elif self.new_owner is not None and st.st_uid == os.geteuid():
                owned = self.new_owner
        if owned is not None:
            self.ledger.record(path, owned, st)
        return owned

    def _origin(self, rel: str, st: os.stat_result) -> str | None:
        """Where the previous scan saw the file now at `rel`: `rel` itself (changed in place), another name it
        still has (a new hard link), or the name it had before a rename (the same inode, type and mtime: a new
        file that happens to get a freed inode number has a new mtime). None: the step made it."""
        if self.previous is None:
            return None
        old = self.previous.records.get(rel)
        if old is not None and old.fingerprint[4] == st.st_ino:
            return rel
        if self._old_names is None:
            self._old_names = {record.fingerprint[4]: name for name, record in self.previous.records.items()}
        name = self._old_names.get(st.st_ino)
        if name is None:
            return None
        now = self.index.records.get(name)
        if now is not None and now.fingerprint[4] == st.st_ino:
            return name
        before = self.previous.records[name].fingerprint
        same = stat.S_IFMT(before[0]) == stat.S_IFMT(st.st_mode) and before[2] == st.st_mtime_ns
        return name if same else None


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


# Fingerprint positions: mode, size, mtime, ctime, inode, nlink, uid, gid, rdev.
def _same_but_times(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """Same type, mode, size, mtime, owner: only ctime, inode or link count differ."""
    return old[:3] == new[:3] and old[6:] == new[6:]


def _only_ctime(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    return old[:3] == new[:3] and old[4:] == new[4:]


def scan(root: str, previous: Index | None, **kwargs: Any) -> ScanResult:
    return Scanner(root, previous, **kwargs).run()
