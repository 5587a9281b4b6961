"""The SBOM's per-layer cache: what each layer does to the files a catalog reads (layers.LayerRecord), kept by
diff_id under the cache directory (CACHE_ROOT/sbom/layers), so that the layers of a base image are read once
per machine rather than on every build with --sbom. `dockyard cache prune` removes records not used for the
given time (a record's mtime is its last use), `--all` every record.

A record is stored zlib-compressed (encode/decode below), written whole under a temporary name and
renamed into place, so a reader sees a whole record or none; one that cannot be read is read from the layer
again."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from .layers import FILE, HARDLINK, SYMLINK, LayerRecord

# Bumped when what a catalog reads (catalog.wanted) or the record format changes: older records go unused.
RECORD_VERSION = "2"
CACHE_DIR = Path("sbom") / "layers"


def records_dir(cache_root: Path) -> Path:
    return cache_root / CACHE_DIR


class LayerRecordCache:
    """LayerRecords kept in `directory`, one file per diff_id. Failures to write are ignored: the cache is an
    optimization, never a reason for an SBOM to fail."""

    def __init__(self, directory: Path, *, keep: bool = False):
        """`keep`: the records read or made are also kept in memory, for the later catalogs of one build (a
        build's SBOM work reads each base layer's record once, not once per catalog)."""
        self.directory = Path(directory)
        self._kept: dict[str, LayerRecord] | None = {} if keep else None

    def _path(self, diff_id: str) -> Path:
        algorithm, _, hex_digest = diff_id.partition(":")
        return self.directory / f"{algorithm}-{hex_digest}.v{RECORD_VERSION}"

    def get(self, diff_id: str) -> LayerRecord | None:
        if self._kept is not None and diff_id in self._kept:
            return self._kept[diff_id]
        path = self._path(diff_id)
        try:
            record = decode(zlib.decompress(path.read_bytes()))
            os.utime(path)  # its last use, for `dockyard cache prune --older-than`
        except (OSError, ValueError, zlib.error, struct.error, UnicodeDecodeError, IndexError):
            return None
        if self._kept is not None:
            self._kept[diff_id] = record
        return record

    def put(self, diff_id: str, record: LayerRecord) -> None:
        if self._kept is not None:
            self._kept[diff_id] = record
        path = self._path(diff_id)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(zlib.compress(encode(record), 1))
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)


# The stored form: per entry its kind (one ASCII byte), its path, and (for the kinds that have one) its payload,
# each as a 4-byte big-endian length and the bytes (paths and link targets UTF-8 with surrogateescape, as tar
# names are read). Plain bytes: no JSON or base64 to pay for on every build.
_LENGTH = struct.Struct(">I")
_WITH_PAYLOAD = frozenset({SYMLINK, FILE, HARDLINK})


def encode(record: LayerRecord) -> bytes:
    parts: list[bytes] = []
    for entry in record:
        fields = [entry[0].encode("ascii"), entry[1].encode("utf-8", "surrogateescape")]
        if entry[0] in _WITH_PAYLOAD:
            payload = entry[2]
            fields.append(payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogateescape"))
        for field in fields:
            parts.append(_LENGTH.pack(len(field)))
            parts.append(field)
    return b"".join(parts)


def decode(data: bytes) -> LayerRecord:
    record: LayerRecord = []
    view = memoryview(data)
    offset = 0

    def take() -> bytes:
        nonlocal offset
        (length,) = _LENGTH.unpack_from(view, offset)
        start = offset + _LENGTH.size
        offset = start + length
        if offset > len(view):
            raise ValueError("a truncated record")
        return bytes(view[start:offset])

    while offset < len(view):
        kind = take().decode("ascii")
        path = take().decode("utf-8", "surrogateescape")
        if kind == FILE:
            record.append((kind, path, take()))
        elif kind in _WITH_PAYLOAD:
            record.append((kind, path, take().decode("utf-8", "surrogateescape")))
        else:
            record.append((kind, path))
    return record
