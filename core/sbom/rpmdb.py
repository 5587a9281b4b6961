"""RPM's package database in its sqlite form (`/var/lib/rpm/rpmdb.sqlite`, `/usr/lib/sysimage/rpm/rpmdb.sqlite`:
RHEL/Fedora/CentOS Stream 9+, openSUSE), read with Python's sqlite3. Each row of its Packages table is an RPM
header blob: an index of (tag, type, offset, count) entries over a data store, big-endian. The older BerkeleyDB
(`Packages`) and ndb (`Packages.db`) formats have no reader in the standard library: they are reported, not read.
"""

from __future__ import annotations

import sqlite3
import struct
from typing import Any

from .model import RPM, Package, Parsed

SQLITE_PATHS = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
UNREADABLE_PATHS = ("var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages",
                    "usr/lib/sysimage/rpm/Packages.db")

# Header tags (rpmtag.h) and types.
_NAME, _VERSION, _RELEASE, _EPOCH, _SUMMARY = 1000, 1001, 1002, 1003, 1004
_VENDOR, _LICENSE, _URL, _ARCH, _SOURCERPM = 1011, 1014, 1020, 1022, 1044
_WANTED = frozenset({_NAME, _VERSION, _RELEASE, _EPOCH, _SUMMARY, _VENDOR, _LICENSE, _URL, _ARCH, _SOURCERPM})
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9


class HeaderError(ValueError):
    pass


def is_database(path: str) -> bool:
    return path in SQLITE_PATHS or path in UNREADABLE_PATHS


def parse_rpmdb(path: str, data: bytes) -> Parsed:
    if path in UNREADABLE_PATHS:
        return Parsed((), (f"/{path}: RPM packages not listed: this RPM database format (BerkeleyDB or ndb) has "
                           "no reader in Python's standard library; only the sqlite database (rpmdb.sqlite) is "
                           "read",))
    try:
        rows = _packages_rows(data)
    except sqlite3.Error as exc:
        return Parsed((), (f"/{path}: RPM packages not listed: the database cannot be read ({exc})",))
    packages: list[Package] = []
    warnings: list[str] = []
    for hnum, blob in rows:
        try:
            tags = parse_header(bytes(blob))
            name, version, release = tags[_NAME], tags[_VERSION], tags[_RELEASE]
        except (HeaderError, KeyError) as exc:
            warnings.append(f"/{path}: skipped the malformed package header {hnum}: "
                            f"{exc if isinstance(exc, HeaderError) else 'it lacks a name, version or release'}")
            continue
        if name == "gpg-pubkey":
            continue  # imported signing keys are recorded as pseudo-packages
        epoch = tags.get(_EPOCH)
        source = str(tags.get(_SOURCERPM) or "")
        source_name, source_version = _source_rpm(source)
        if source_name == name:
            source_name = source_version = None  # built from a source package of its own name
        packages.append(Package(
            kind=RPM, name=str(name), version=(f"{epoch}:" if epoch is not None else "") + f"{version}-{release}",
            arch=str(tags.get(_ARCH) or "") or None, source_name=source_name, source_version=source_version,
            licenses=(str(tags[_LICENSE]),) if tags.get(_LICENSE) else (), supplier=tags.get(_VENDOR) or None,
            homepage=tags.get(_URL) or None, summary=tags.get(_SUMMARY) or None, location=path))
    return Parsed(tuple(packages), tuple(warnings))


def _packages_rows(data: bytes) -> list[tuple[int, bytes]]:
    # A database left in WAL mode says so in its header (bytes 18-19 = 2), and sqlite will not open an
    # in-memory copy so marked; the file's pages are the same in the rollback-journal mode (1).
    if len(data) >= 20 and data[18:20] == b"\x02\x02":
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        return list(connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum"))
    finally:
        connection.close()


def parse_header(blob: bytes) -> dict[int, Any]:
    """The wanted tags of an RPM header blob (without the lead magic, as rpmdb stores it): strings as str,
    INT32 as int (the first value)."""
    if len(blob) < 8:
        raise HeaderError("it is shorter than a header")
    count, store_size = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * count
    if count > 100_000 or store + store_size > len(blob):
        raise HeaderError("its index does not fit the blob")
    tags: dict[int, Any] = {}
    for index in range(count):
        tag, kind, offset, items = struct.unpack_from(">IIiI", blob, 8 + 16 * index)
        if tag not in _WANTED:
            continue
        if not 0 <= offset < store_size:
            raise HeaderError(f"tag {tag} points outside the data store")
        start = store + offset
        if kind == _INT32:
            tags[tag] = struct.unpack_from(">i", blob, start)[0]
        elif kind in (_STRING, _STRING_ARRAY, _I18NSTRING):
            end = blob.find(b"\0", start, store + store_size)
            if end < 0:
                raise HeaderError(f"tag {tag}'s string is not terminated")
            tags[tag] = blob[start:end].decode("utf-8", "replace")
    return tags


def _source_rpm(source: str) -> tuple[str | None, str | None]:
    """`openssl-3.0.7-27.el9.src.rpm` -> (openssl, 3.0.7-27.el9)."""
    if not source.endswith(".src.rpm"):
        return None, None
    stem = source[:-len(".src.rpm")]
    rest, _, release = stem.rpartition("-")
    name, _, version = rest.rpartition("-")
    if not name or not version:
        return None, None
    return name, f"{version}-{release}"
