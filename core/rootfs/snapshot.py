"""Turning a step's change set into a layer blob, in one streaming pass: an overlay upper directory, or the
changes a scan of a directory root found (scan.py); both go through the same tar writer.

The upper directory holds exactly what the step changed (overlayfs copied up what was modified, marked what
was deleted), so the layer is made by walking that directory alone, never the whole root filesystem.
Overlay whiteouts (0/0 character devices) become `.wh.NAME` entries and opaque directories get a
`.wh..wh..opq` entry. The tar stream is hashed (diff_id), compressed and hashed again (digest) as it is
written, straight into the blob store.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass

from ..image.blobs import BlobStore
from ..image.compression import compressor
from ..image.model import Descriptor, Layer
from ..image.tarwriter import Entry, TarWriter
from .overlay import overlay_xattr_prefix
from .ownership import Ownership
from .xattrs import image_xattrs



@dataclass(frozen=True)
class LayerStats:
    entries: int
    uncompressed_size: int


class _TarSink:
    """Receives tar bytes: hashes them (diff_id) and feeds them compressed into a blob writer.

    Writes are gathered into fixed-size chunks, which are hashed and compressed: ISA-L's output depends on how
    its input is split, so a layer's digest must not depend on the sizes the writes came in, and hashing and
    compressing per tar header would cost more than the data."""

    CHUNK = 1 << 16

    def __init__(self, writer, comp):
        self._writer = writer
        self._comp = comp
        self._hash = hashlib.sha256()
        self._pending = bytearray()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self._pending += data
        if len(self._pending) >= self.CHUNK:
            whole = len(self._pending) - len(self._pending) % self.CHUNK
            view = memoryview(self._pending)
            for start in range(0, whole, self.CHUNK):
                self._consume(view[start:start + self.CHUNK])
            view.release()
            del self._pending[:whole]
        return len(data)

    def _consume(self, chunk) -> None:
        self._hash.update(chunk)
        out = self._comp.compress(chunk)
        if out:
            self._writer.write(out)

    def finish(self) -> str:
        if self._pending:
            self._consume(bytes(self._pending))
            self._pending.clear()
        tail = self._comp.flush()
        if tail:
            self._writer.write(tail)
        return "sha256:" + self._hash.hexdigest()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, overlay_xattr_prefix() + "opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


@dataclass(frozen=True)
class Change:
    """One entry of a scanned change set: `rel` is the root-relative path; a deleted path becomes a whiteout.
    `ownership` is what the image says when the host file cannot show it (ownership.py)."""

    rel: str
    deleted: bool = False
    ownership: Ownership | None = None


def write_layer(upper: str, store: BlobStore, *, compression: str = "gzip", level: int | None = None,
                source_date_epoch: int | None = None) -> tuple[Layer, LayerStats]:
    """Write the change set in `upper` (an overlay upper directory) as a compressed layer into `store`. With
    `source_date_epoch`, no entry is dated later than it (BuildKit's rewrite-timestamp), so a rebuild gives
    the same bytes."""
    def entries(archive: TarWriter, seen_inodes: dict) -> int:
        return sum(_add_entry(archive, os.path.join(upper, rel), rel, st, seen_inodes, source_date_epoch)
                   for rel, st in _walk(upper))

    return _write(entries, store, compression, level)


def write_changes(root: str, changes: list[Change], store: BlobStore, *, compression: str = "gzip",
                  level: int | None = None, source_date_epoch: int | None = None,
                  deleted_mtime: int = 0) -> tuple[Layer, LayerStats]:
    """Write scanned `changes` (parents before children) of the directory `root` as a layer into `store`."""
    def entries(archive: TarWriter, seen_inodes: dict) -> int:
        count = 0
        for change in changes:
            if change.deleted:
                parent, _, name = change.rel.rpartition("/")
                archive.add(_marker(f"{parent}/.wh.{name}" if parent else f".wh.{name}", deleted_mtime))
                count += 1
            else:
                path = os.path.join(root, change.rel)
                count += _add_entry(archive, path, change.rel, os.lstat(path), seen_inodes, source_date_epoch,
                                    change.ownership)
        return count

    return _write(entries, store, compression, level)


def _write(entries, store: BlobStore, compression: str, level: int | None) -> tuple[Layer, LayerStats]:
    comp, media_type = compressor(compression, level)
    with store.writer() as blob:
        sink = _TarSink(blob, comp)
        # PAX carries long names and xattrs; names of users/groups are left out (they belong to this host).
        archive = TarWriter(sink)
        count = entries(archive, {})
        archive.close()
        diff_id = sink.finish()
        digest = blob.commit()
        size = blob.size
    layer = Layer(Descriptor(media_type, digest, size), diff_id)
    return layer, LayerStats(count, sink.size)


def _walk(top: str, rel: str = ""):
    """(root-relative path, lstat) under top in a fixed order (sorted, depth-first), parents before children."""
    with os.scandir(os.path.join(top, rel) if rel else top) as listing:
        children = sorted((entry.name, entry) for entry in listing)
    for name, entry in children:
        child = f"{rel}/{name}" if rel else name
        st = entry.stat(follow_symlinks=False)
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(top, child)


def _marker(name: str, mtime: int) -> Entry:
    """An empty whiteout or opaque-marker entry."""
    return Entry(name, tarfile.REGTYPE, mtime=mtime)


def _add_entry(archive: TarWriter, path: str, rel: str, st: os.stat_result, seen_inodes: dict,
               source_date_epoch: int | None, ownership: Ownership | None = None) -> int:
    parent, _, name = rel.rpartition("/")
    mtime = int(st.st_mtime)
    if source_date_epoch is not None and mtime > source_date_epoch:
        mtime = source_date_epoch
    if _is_whiteout(st):
        archive.add(_marker(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mtime))
        return 1
    uid, gid = (ownership.uid, ownership.gid) if ownership else (st.st_uid, st.st_gid)
    entry = Entry(rel, tarfile.REGTYPE, mode=stat.S_IMODE(st.st_mode), uid=uid, gid=gid, mtime=mtime,
                  pax={f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in image_xattrs(path).items()})
    if stat.S_ISDIR(st.st_mode):
        entry.type = tarfile.DIRTYPE
        archive.add(entry)
        if _is_opaque(path):
            archive.add(_marker(f"{rel}/.wh..wh..opq", mtime))
            return 2
        return 1
    if stat.S_ISLNK(st.st_mode):
        entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(path)
        archive.add(entry)
        return 1
    if ownership is not None and ownership.device is not None:
        # An empty file standing in for a device node the host user could not create.
        kind, entry.devmajor, entry.devminor = ownership.device
        entry.type = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE
        archive.add(entry)
        return 1
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen_inodes:
            entry.type, entry.linkname = tarfile.LNKTYPE, seen_inodes[key]
            archive.add(entry)
            return 1
        seen_inodes[key] = rel
        entry.size = st.st_size
        # O_NOFOLLOW: the upper dir belongs to a finished RUN step, but a file swapped for a symlink must never
        # make the snapshot read something outside it.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            archive.add(entry, fd)
        finally:
            os.close(fd)
        return 1
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        entry.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        entry.devmajor, entry.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        archive.add(entry)
        return 1
    if stat.S_ISFIFO(st.st_mode):
        entry.type = tarfile.FIFOTYPE
        archive.add(entry)
        return 1
    return 0  # sockets cannot be stored in a layer
