"""The diff_id reader of unpacking (rootfs/unpack.py) reads and hashes the layer stream on a thread of its own:
the reader must still see exactly the stream, a wrong digest or a broken stream must still fail the layer, and
leaving early must leave no thread behind."""

import hashlib
import io
import os
import threading

import pytest

from dockyard.errors import LayerError
from dockyard.rootfs.unpack import DiffIdReader

DATA = os.urandom(5 * DiffIdReader.FILL + 12345)
DIFF_ID = "sha256:" + hashlib.sha256(DATA).hexdigest()


def test_reads_of_any_size_see_the_stream_and_its_digest():
    with DiffIdReader(io.BytesIO(DATA)) as reader:
        parts, size = [], 1
        while part := reader.read(size):
            parts.append(part)
            size = size * 7 % 300_001 + 1
        assert b"".join(parts) == DATA
        reader.verify(DIFF_ID, "layer")
    with DiffIdReader(io.BytesIO(DATA)) as reader:
        assert reader.read(10) + reader.read() == DATA
        reader.verify(DIFF_ID, "layer")


def test_a_wrong_digest_fails_and_is_named():
    with DiffIdReader(io.BytesIO(DATA)) as reader:
        reader.read(100)
        with pytest.raises(LayerError, match=r"not the diff_id sha256:0+ the image claims"):
            reader.verify("sha256:" + "0" * 64, "layer x")


class _Broken(io.BytesIO):
    def read(self, size=-1):
        if self.tell() > DiffIdReader.FILL:
            raise OSError(5, "Input/output error")
        return super().read(size)


def test_a_broken_stream_fails_the_reader():
    with DiffIdReader(_Broken(DATA)) as reader:
        with pytest.raises(OSError, match="Input/output error"):
            while reader.read(4096):
                pass


def test_leaving_early_stops_the_thread():
    before = threading.active_count()
    with DiffIdReader(io.BytesIO(DATA * 4)) as reader:
        reader.read(10)  # the thread is now blocked on its full queue
    assert threading.active_count() == before
