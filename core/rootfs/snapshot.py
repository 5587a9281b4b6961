"""Turning a step's change set into a layer blob, in one streaming pass: an overlay upper directory, or the
changes a scan of a directory root found (scan.py); both go through the same tar writer.

The upper directory holds exactly what the step changed (overlayfs copied up what was modified, marked what
was deleted), so the layer is made by walking that directory alone, never the whole root filesystem.
Overlay whiteouts (0/0 character devices) become `.wh.NAME` entries and opaque directories get a
`.wh..wh..opq` entry. The tar stream is hashed (diff_id), compressed and hashed again (digest) as it is
written, straight into the blob store (the compression and the blob writing on threads of their own).
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..image.blobs import BlobStore, BlobWriter
from ..image.compression import Compressor, compressor
from ..image.model import Descriptor, Layer
from ..image.tarwriter import Entry, TarWriter
from .overlay import overlay_xattr_prefix
from .ownership import Ownership, marked_device
from .xattrs import image_xattrs



@dataclass(frozen=True)
class LayerStats:
    """What a written layer holds: its number of tar entries and its uncompressed size."""

    entries: int
    uncompressed_size: int


class _Worker:
    """A thread applying `consume` to what `put` hands it, in order, through a bounded queue (so memory stays
    bounded whatever the layer's size). A failure is kept and raised by the next `put` or by `close`; the thread
    goes on draining the queue, so the producer never blocks on it."""

    _IN_FLIGHT = 4

    def __init__(self, consume: Callable[[bytes], object], name: str):
        self._consume = consume
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self._IN_FLIGHT)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # handed to the producer's thread, which raises it
                    self.error = exc

    def put(self, item: bytes) -> None:
        if self.error is not None:
            raise self.error  # e.g. the disk filled up: stop archiving now
        self._queue.put(item)

    def close(self) -> None:
        """Wait until everything put is consumed (or the thread failed); raises the failure."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            raise self.error


class _TarSink:
    """Receives tar bytes: hashes them (diff_id) and feeds them compressed into a blob writer, on three threads.

    Writes are gathered into fixed-size chunks, which are compressed one by one: ISA-L's output depends on how
    its input is split, so a layer's digest must not depend on the sizes the writes came in, and compressing per
    tar header would cost more than the data. Batches of whole chunks go, in order, to a thread that compresses
    them, whose output goes, in order, to a thread that writes (and so hashes) the blob, while this thread reads
    the next files and hashes the uncompressed stream. hashlib and ISA-L let go of the GIL on large buffers, so
    on two cores the hashing is off the critical path, which is the compression. The bytes are those of a
    single thread. Use it as a context manager: leaving the block stops the threads, whatever happened."""

    CHUNK = 1 << 16  # the compression unit: part of the output format, never to change
    BATCH = 16 * CHUNK  # what the compressing thread takes at a time

    def __init__(self, writer: BlobWriter, comp: Compressor):
        self._comp = comp
        self._hash = hashlib.sha256()
        self._pending = bytearray()
        self._blob = _Worker(writer.write, "layer-blob")
        self._compress = _Worker(self._compress_batch, "layer-compress")
        self.size = 0

    def __enter__(self) -> _TarSink:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in (self._compress, self._blob):
            try:
                worker.close()
            except BaseException:
                pass  # only stopping here: finish() raises what went wrong

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self._pending += data
        if len(self._pending) >= self.BATCH:
            whole = len(self._pending) - len(self._pending) % self.CHUNK
            with memoryview(self._pending) as view:
                batch = bytes(view[:whole])
            del self._pending[:whole]
            self._send(batch)
        return len(data)

    def _send(self, batch: bytes) -> None:
        self._compress.put(batch)
        self._hash.update(batch)

    def _compress_batch(self, batch: bytes) -> None:
        with memoryview(batch) as view:
            out = b"".join(self._comp.compress(view[start:start + self.CHUNK])
                           for start in range(0, len(view), self.CHUNK))
        if out:
            self._blob.put(out)

    def finish(self) -> str:
        if self._pending:
            self._send(bytes(self._pending))
            self._pending.clear()
        self._compress.close()
        tail = self._comp.flush()
        if tail:
            self._blob.put(tail)
        self._blob.close()
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
    def entries(archive: TarWriter, seen_inodes: dict[tuple[int, int], str]) -> int:
        count = 0
        for path, rel, st in _walk(upper):
            count += _add_entry(archive, path, rel, st, seen_inodes, source_date_epoch)
        return count

    return _write(entries, store, compression, level)


def write_changes(root: str, changes: list[Change], store: BlobStore, *, compression: str = "gzip",
                  level: int | None = None, source_date_epoch: int | None = None,
                  deleted_mtime: int = 0) -> tuple[Layer, LayerStats]:
    """Write scanned `changes` (parents before children) of the directory `root` as a layer into `store`."""
    def entries(archive: TarWriter, seen_inodes: dict[tuple[int, int], str]) -> int:
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


def _write(entries: Callable[[TarWriter, dict[tuple[int, int], str]], int], store: BlobStore,
           compression: str, level: int | None) -> tuple[Layer, LayerStats]:
    comp, media_type = compressor(compression, level)
    with store.writer() as blob, _TarSink(blob, comp) as sink:
        # PAX carries long names and xattrs; names of users/groups are left out (they belong to this host).
        archive = TarWriter(sink)
        count = entries(archive, {})
        archive.close()
        diff_id = sink.finish()
        digest = blob.commit()
        size = blob.size
    layer = Layer(Descriptor(media_type, digest, size), diff_id)
    return layer, LayerStats(count, sink.size)


def _walk(top: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(host path, root-relative path, lstat) under top in a fixed order (sorted, depth-first), parents before
    children. A stack of listings rather than nested generators: an entry deep down would otherwise pass
    through a generator per level on its way out, and a layer can hold tens of thousands."""
    stack = [(_listing(top), "")]
    while stack:
        children, prefix = stack[-1]
        entry = next(children, None)
        if entry is None:
            stack.pop()
            continue
        st = entry.stat(follow_symlinks=False)
        rel = prefix + entry.name
        yield entry.path, rel, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((_listing(entry.path), rel + "/"))


def _listing(directory: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(directory) as listing:
        return iter(sorted(listing, key=_entry_name))


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


# O_NOFOLLOW: the upper dir belongs to a finished RUN step, but a file swapped for a symlink must never make the
# snapshot read something outside it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_for_reading(path: str) -> int:
    """O_NOATIME where allowed (the file's owner, or CAP_FOWNER): a step's new files were never read, so reading
    each would otherwise also write its inode (relatime), 1.6 us a file on ext4."""
    try:
        return os.open(path, _READ_FLAGS | os.O_NOATIME)
    except PermissionError:
        return os.open(path, _READ_FLAGS)


def _marker(name: str, mtime: int) -> Entry:
    """An empty whiteout or opaque-marker entry."""
    return Entry(name, tarfile.REGTYPE, mtime=mtime)


def _add_entry(archive: TarWriter, path: str, rel: str, st: os.stat_result, seen_inodes: dict[tuple[int, int], str],
               source_date_epoch: int | None, ownership: Ownership | None = None) -> int:
    mtime = int(st.st_mtime)
    if source_date_epoch is not None and mtime > source_date_epoch:
        mtime = source_date_epoch
    if _is_whiteout(st):
        parent, _, name = rel.rpartition("/")
        archive.add(_marker(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mtime))
        return 1
    uid, gid = (ownership.uid, ownership.gid) if ownership else (st.st_uid, st.st_gid)
    xattrs = image_xattrs(path)
    if ownership is not None and ownership.xattrs:  # those the host refused
        xattrs = dict(sorted((xattrs | dict(ownership.xattrs)).items()))
    pax = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()} if xattrs else {}
    entry = Entry(rel, tarfile.REGTYPE, mode=stat.S_IMODE(st.st_mode), uid=uid, gid=gid, mtime=mtime, pax=pax)
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
    device = ownership.device if ownership is not None else None
    if device is None and stat.S_ISREG(st.st_mode) and not st.st_size:
        device = marked_device(path)
    if device is not None:
        # An empty file standing in for a device node the host could not create.
        kind, entry.devmajor, entry.devminor = device
        entry.type = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE
        archive.add(entry)
        return 1
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1:  # only a file with other names can be met again
            key = (st.st_dev, st.st_ino)
            if key in seen_inodes:
                entry.type, entry.linkname = tarfile.LNKTYPE, seen_inodes[key]
                archive.add(entry)
                return 1
            seen_inodes[key] = rel
        entry.size = st.st_size
        fd = _open_for_reading(path)
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
