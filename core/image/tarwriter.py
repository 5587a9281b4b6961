"""Writing layer tars fast: the same bytes as `tarfile` in PAX format, without its per-entry cost.

A step that creates 20,000 small files spent most of its snapshot inside `tarfile` (a TarInfo copy, a PAX
check and a header built field by field for every entry). Most entries need nothing PAX offers: an ASCII name
of at most 100 bytes, no xattrs, numbers that fit the octal fields. For those this module packs the ustar
header itself, byte for byte what `tarfile.TarInfo.tobuf(PAX_FORMAT)` produces (tests compare the two), so
layer digests do not depend on which path wrote an entry; every other entry goes through `tarfile`.
"""

from __future__ import annotations

import os
import struct
import tarfile
from dataclasses import dataclass, field

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_READ_CHUNK = 1 << 20
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_CHECKSUM_BLANK = b" " * 8
_MAX_OCTAL = {8: 8 ** 7, 12: 8 ** 11}


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


class TarWriter:
    """Streams tar members into `sink` (anything with `write(bytes)`), then the end-of-archive blocks. Writes
    are as small as a header: a sink that hashes or compresses should gather them (snapshot.py's does)."""

    def __init__(self, sink):
        self._sink = sink
        self._offset = 0

    def add(self, entry: Entry, fd: int | None = None) -> None:
        """Adds `entry`; a regular file's `entry.size` bytes are read from `fd` (which stays open)."""
        self._put(_header(entry))
        if fd is not None and entry.size:
            self._copy(fd, entry.size, entry.name)

    def close(self) -> None:
        self._put(bytes(2 * BLOCK))
        remainder = self._offset % RECORD
        if remainder:
            self._put(bytes(RECORD - remainder))  # tarfile pads to whole records (tar -b20)

    def _copy(self, fd: int, size: int, name: str) -> None:
        left = size
        while left:
            data = os.read(fd, min(left, _READ_CHUNK))
            if not data:
                raise OSError(f"{name} became shorter while it was being archived")
            self._put(data)
            left -= len(data)
        if size % BLOCK:
            self._put(bytes(BLOCK - size % BLOCK))

    def _put(self, data: bytes) -> None:
        self._sink.write(data)
        self._offset += len(data)


def _header(entry: Entry) -> bytes:
    name = entry.name + "/" if entry.type == tarfile.DIRTYPE and not entry.name.endswith("/") else entry.name
    fast = _ustar_header(entry, name)
    return fast if fast is not None else _pax_header(entry, name)


def _ustar_header(entry: Entry, name: str) -> bytes | None:
    """The header when no PAX record is needed, else None."""
    if entry.pax or not (_fits(name, 100) and _fits(entry.linkname, 100)):
        return None
    numbers = ((entry.uid, 8), (entry.gid, 8), (entry.size, 12), (entry.mtime, 12))
    if any(not 0 <= value < _MAX_OCTAL[digits] for value, digits in numbers):
        return None
    device = entry.type in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    buf = bytearray(_HEADER.pack(
        name.encode("ascii"), _octal(entry.mode & 0o7777, 8), _octal(entry.uid, 8), _octal(entry.gid, 8),
        _octal(entry.size, 12), _octal(entry.mtime, 12), _CHECKSUM_BLANK, entry.type,
        entry.linkname.encode("ascii"), tarfile.POSIX_MAGIC, b"", b"",
        _octal(entry.devmajor, 8) if device else b"", _octal(entry.devminor, 8) if device else b"", b""))
    buf[148:155] = b"%06o\0" % sum(buf)  # the checksum counts its own field as spaces, as packed above
    return bytes(buf)


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


def _octal(value: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, value)
