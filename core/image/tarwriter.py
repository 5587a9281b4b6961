"""Writing layer tars fast: the same bytes as `tarfile` in PAX format, without its per-entry cost.

A step that creates 20,000 small files spent most of its snapshot inside `tarfile` (a TarInfo copy, a PAX
check and a header built field by field for every entry). Most entries need nothing PAX offers: an ASCII name
of at most 100 bytes, no xattrs, numbers that fit the octal fields. For those this module packs the ustar
header itself, byte for byte what `tarfile.TarInfo.tobuf(PAX_FORMAT)` produces (tests compare the two), so
layer digests do not depend on which path wrote an entry; every other entry goes through `tarfile`.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from typing import Protocol

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_READ_CHUNK = 1 << 20
# ustar's fixed parts: magic and version, then empty user and group names; device numbers of a non-device;
# the empty name prefix and the padding to 512 bytes.
_MAGIC_AND_NAMES = tarfile.POSIX_MAGIC + bytes(64)
_NO_DEVICE = bytes(16)
_PREFIX_AND_PADDING = bytes(155 + 12)
_BLANK_CHECKSUM_SUM = 8 * ord(" ")
_MAX_ID = 8 ** 7  # what 7 octal digits hold (uid, gid)
_MAX_NUMBER = 8 ** 11  # 11 digits (size, mtime)


@dataclass
class Entry:
    """One tar member: what a layer records of a path."""

    name: str  # relative, without a trailing slash (directories get theirs here, as tarfile adds it)
    type: bytes  # tarfile.REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, CHRTYPE, BLKTYPE, FIFOTYPE
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)  # e.g. SCHILY.xattr.* records


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class TarWriter:
    """Streams tar members into `sink` (anything with `write(bytes)`), then the end-of-archive blocks. Writes
    are as small as a header: a sink that hashes or compresses should gather them (snapshot.py's does)."""

    def __init__(self, sink: Sink):
        self._sink = sink
        self._offset = 0

    def add(self, entry: Entry, fd: int | None = None) -> None:
        """Adds `entry`; a regular file's `entry.size` bytes are read from `fd` (which stays open)."""
        header = _header(entry)
        if fd is None or not entry.size:
            self._put(header)
        elif entry.size <= _READ_CHUNK:
            # A small file goes out with its header in one write: most files of a layer are small.
            self._put(header + self._read(fd, entry.size, entry.name) + _padding(entry.size))
        else:
            self._put(header)
            self._copy(fd, entry.size, entry.name)

    def close(self) -> None:
        self._put(bytes(2 * BLOCK))
        remainder = self._offset % RECORD
        if remainder:
            self._put(bytes(RECORD - remainder))  # tarfile pads to whole records (tar -b20)

    @staticmethod
    def _read(fd: int, size: int, name: str) -> bytes:
        data = os.read(fd, size)
        while len(data) < size:
            more = os.read(fd, size - len(data))
            if not more:
                raise OSError(f"{name} became shorter while it was being archived")
            data += more
        return data

    def _copy(self, fd: int, size: int, name: str) -> None:
        left = size
        while left:
            data = os.read(fd, min(left, _READ_CHUNK))
            if not data:
                raise OSError(f"{name} became shorter while it was being archived")
            self._put(data)
            left -= len(data)
        self._put(_padding(size))

    def _put(self, data: bytes) -> None:
        self._sink.write(data)
        self._offset += len(data)


def _padding(size: int) -> bytes:
    """The NULs that fill a file's data up to whole blocks."""
    return bytes(-size % BLOCK)


def _header(entry: Entry) -> bytes:
    name = entry.name + "/" if entry.type == tarfile.DIRTYPE and not entry.name.endswith("/") else entry.name
    fast = _ustar_header(entry, name)
    return fast if fast is not None else _pax_header(entry, name)


def _ustar_header(entry: Entry, name: str) -> bytes | None:
    """The header when no PAX record is needed, else None. Formatted in one go (a third of the time struct
    packing and separate octal fields took: it runs once per file of a layer)."""
    if entry.pax or not (_fits(name, 100) and _fits(entry.linkname, 100)):
        return None
    if not (0 <= entry.uid < _MAX_ID and 0 <= entry.gid < _MAX_ID and 0 <= entry.size < _MAX_NUMBER
            and 0 <= entry.mtime < _MAX_NUMBER):
        return None
    if entry.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        device = b"%07o\0%07o\0" % (entry.devmajor, entry.devminor)
    else:
        device = _NO_DEVICE
    head = b"%s%07o\0%07o\0%07o\0%011o\0%011o\0" % (name.encode("ascii").ljust(100, b"\0"), entry.mode & 0o7777,
                                                    entry.uid, entry.gid, entry.size, entry.mtime)
    tail = b"%s%s%s%s" % (entry.type, entry.linkname.encode("ascii").ljust(100, b"\0"), _MAGIC_AND_NAMES, device)
    # The checksum counts its own field as eight spaces, and is written as six octal digits, NUL, space.
    checksum = sum(head) + _BLANK_CHECKSUM_SUM + sum(tail)
    return b"%s%06o\0 %s%s" % (head, checksum, tail, _PREFIX_AND_PADDING)


def _pax_header(entry: Entry, name: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = entry.type, entry.mode, entry.uid, entry.gid
    info.size, info.mtime, info.linkname = entry.size, entry.mtime, entry.linkname
    info.uname = info.gname = ""
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    info.pax_headers = dict(entry.pax)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _fits(text: str, length: int) -> bool:
    return len(text) <= length and text.isascii()

