"""The snapshot sink (rootfs/snapshot.py) compresses and writes the blob on threads of its own: the bytes must be
those of a single thread whatever sizes the writes come in, and a failure of the blob must stop the layer."""

import gzip
import hashlib
import io
import os
import threading

import pytest

from dockyard.image.compression import compressor
from dockyard.rootfs.snapshot import _TarSink

# Compressible and incompressible stretches, longer than several batches, ending in a partial chunk.
DATA = (os.urandom(3 << 20) + bytes(2 << 20) + b"text " * 300_000)[:-12345]


def _sink_output(sizes: list[int], kind: str = "gzip") -> tuple[bytes, str]:
    comp, _ = compressor(kind)
    blob = io.BytesIO()
    with _TarSink(blob, comp) as sink:
        offset = 0
        for size in sizes:
            sink.write(DATA[offset:offset + size])
            offset += size
        sink.write(DATA[offset:])
        diff_id = sink.finish()
    return blob.getvalue(), diff_id


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_output_does_not_depend_on_how_writes_are_split(kind):
    whole, diff_id = _sink_output([], kind)
    assert diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert _sink_output([512] * 5000 + [1 << 20] * 3 + [7], kind) == (whole, diff_id)
    assert _sink_output([(1 << 16) * 16 + 1, 3, 100_000], kind) == (whole, diff_id)
    if kind == "gzip":
        assert gzip.decompress(whole) == DATA


class _FullDisk(io.BytesIO):
    def write(self, data):
        if self.tell() + len(data) > 1 << 20:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_a_failing_blob_stops_the_layer_and_no_thread_is_left():
    before = threading.active_count()
    comp, _ = compressor("uncompressed")
    with pytest.raises(OSError, match="No space left"):
        with _TarSink(_FullDisk(), comp) as sink:
            for start in range(0, len(DATA), 1 << 20):
                sink.write(DATA[start:start + (1 << 20)])
            sink.finish()
    assert threading.active_count() == before


def test_an_error_while_archiving_stops_the_threads():
    before = threading.active_count()
    comp, _ = compressor("gzip")
    with pytest.raises(RuntimeError):
        with _TarSink(io.BytesIO(), comp) as sink:
            sink.write(DATA)
            raise RuntimeError("a file vanished")
    assert threading.active_count() == before
