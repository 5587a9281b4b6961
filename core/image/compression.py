"""Layer compression and decompression as streams (gzip via ISA-L, zstd, or none).

Nothing here holds a whole layer: compressors are fed chunk by chunk and decompressors are file-like readers.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Protocol, cast

from .model import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes | memoryview: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes | memoryview) -> bytes | memoryview:
        return data

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self, level: int):
        import zstandard

        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


def compressor(kind: str, level: int | None = None) -> tuple[Compressor, str]:
    """A fresh compressor and the layer media type it produces."""
    if kind == "gzip":
        from isal import isal_zlib

        # wbits=31: a gzip stream whose header carries mtime 0 and no file name, so output is reproducible.
        # ISA-L levels are 0..3; map zlib's 1..9 onto them.
        isal_level = 1 if level is None else max(0, min(3, (level + 2) // 3))
        return isal_zlib.compressobj(isal_level, isal_zlib.DEFLATED, 31), OCI_LAYER_GZIP
    if kind == "zstd":
        return _Zstd(3 if level is None else level), OCI_LAYER_ZSTD
    if kind in ("none", "uncompressed"):
        return _Identity(), OCI_LAYER
    raise ValueError(f"unknown compression {kind!r} (use gzip, zstd or uncompressed)")


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap a compressed layer stream in a reader of its tar, detecting the format by its magic bytes."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, raw),
                                                                                  buffer_size=1 << 20)
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        from isal import igzip

        return igzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered
