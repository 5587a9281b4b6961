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
from .ownership import Ownership

OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass(frozen=True)
class LayerStats:
    entries: int
    uncompressed_size: int


class _TarSink:
    """Receives tar bytes: hashes them (diff_id) and feeds them compressed into a blob writer."""

    def __init__(self, writer, comp):
        self._writer = writer
        self._comp = comp
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        out = self._comp.compress(data)
        if out:
            self._writer.write(out)
        return len(data)

    def finish(self) -> str:
        tail = self._comp.flush()
        if tail:
            self._writer.write(tail)
        return "sha256:" + self._hash.hexdigest()


def _xattrs(path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return found
    for name in sorted(names):  # listxattr's order is the filesystem's; the layer's must not depend on it
        # overlayfs bookkeeping and SELinux labels belong to this machine, not to the image.
        if name.startswith("trusted.overlay.") or name == "security.selinux":
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return found


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
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
    def entries(archive: tarfile.TarFile, seen_inodes: dict) -> int:
        return sum(_add_entry(archive, upper, rel, seen_inodes, source_date_epoch) for rel in _walk(upper))

    return _write(entries, store, compression, level)


def write_changes(root: str, changes: list[Change], store: BlobStore, *, compression: str = "gzip",
                  level: int | None = None, source_date_epoch: int | None = None,
                  deleted_mtime: int = 0) -> tuple[Layer, LayerStats]:
    """Write scanned `changes` (parents before children) of the directory `root` as a layer into `store`."""
    def entries(archive: tarfile.TarFile, seen_inodes: dict) -> int:
        count = 0
        for change in changes:
            if change.deleted:
                parent, _, name = change.rel.rpartition("/")
                archive.addfile(_marker(f"{parent}/.wh.{name}" if parent else f".wh.{name}", deleted_mtime))
                count += 1
            else:
                count += _add_entry(archive, root, change.rel, seen_inodes, source_date_epoch, change.ownership)
        return count

    return _write(entries, store, compression, level)


def _write(entries, store: BlobStore, compression: str, level: int | None) -> tuple[Layer, LayerStats]:
    comp, media_type = compressor(compression, level)
    with store.writer() as blob:
        sink = _TarSink(blob, comp)
        # PAX carries long names and xattrs; names of users/groups are left out (they belong to this host).
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                          errors="surrogateescape") as archive:
            count = entries(archive, {})
        diff_id = sink.finish()
        digest = blob.commit()
        size = blob.size
    layer = Layer(Descriptor(media_type, digest, size), diff_id)
    return layer, LayerStats(count, sink.size)


def _walk(top: str, rel: str = ""):
    """Root-relative paths under top in a fixed order (sorted, depth-first), parents before children."""
    directory = os.path.join(top, rel) if rel else top
    for name in sorted(os.listdir(directory)):
        child = f"{rel}/{name}" if rel else name
        yield child
        path = os.path.join(top, child)
        if os.path.isdir(path) and not os.path.islink(path):
            yield from _walk(top, child)


def _marker(name: str, mtime: int) -> tarfile.TarInfo:
    """An empty whiteout or opaque-marker entry."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uname, info.gname = tarfile.REGTYPE, 0, mtime, "", ""
    return info


def _add_entry(archive: tarfile.TarFile, upper: str, rel: str, seen_inodes: dict,
               source_date_epoch: int | None, ownership: Ownership | None = None) -> int:
    path = os.path.join(upper, rel)
    st = os.lstat(path)
    parent, _, name = rel.rpartition("/")
    mtime = int(st.st_mtime)
    if source_date_epoch is not None and mtime > source_date_epoch:
        mtime = source_date_epoch
    if _is_whiteout(st):
        archive.addfile(_marker(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mtime))
        return 1
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = (ownership.uid, ownership.gid) if ownership else (st.st_uid, st.st_gid)
    info.uname = info.gname = ""
    info.mtime = mtime
    xattrs = _xattrs(path)
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    count = 1
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
        if _is_opaque(path):
            archive.addfile(_marker(f"{rel}/.wh..wh..opq", mtime))
            count += 1
        return count
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        archive.addfile(info)
        return count
    if ownership is not None and ownership.device is not None:
        # An empty file standing in for a device node the host user could not create.
        kind, info.devmajor, info.devminor = ownership.device
        info.type = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE
        archive.addfile(info)
        return count
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen_inodes:
            info.type = tarfile.LNKTYPE
            info.linkname = seen_inodes[key]
            archive.addfile(info)
            return count
        seen_inodes[key] = rel
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        # O_NOFOLLOW: the upper dir belongs to a finished RUN step, but a file swapped for a symlink must never
        # make the snapshot read something outside it.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as data:
            archive.addfile(info, data)
        return count
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        archive.addfile(info)
        return count
    if stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
        archive.addfile(info)
        return count
    return 0  # sockets cannot be stored in a layer
