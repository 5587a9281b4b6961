"""The fast tar writer must produce exactly the bytes `tarfile` (PAX format) produces, on both of its paths."""

import io
import os
import tarfile

import pytest

from dockyard.image.tarwriter import Entry, TarWriter

ENTRIES = [
    Entry("etc", tarfile.DIRTYPE, mode=0o755, mtime=1_700_000_000),
    Entry("etc/passwd", tarfile.REGTYPE, mode=0o644, size=5, mtime=1_700_000_001),
    Entry("usr/bin/sudo", tarfile.REGTYPE, mode=0o4755, uid=0, gid=0, size=0),
    Entry("home/user", tarfile.DIRTYPE, mode=0o1777, uid=1000, gid=1000),
    Entry("lib/link", tarfile.SYMTYPE, mode=0o777, linkname="../usr/lib/x86_64-linux-gnu/libc.so.6"),
    Entry("lib/hard", tarfile.LNKTYPE, mode=0o644, linkname="etc/passwd"),
    Entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
    Entry("dev/sda", tarfile.BLKTYPE, mode=0o660, gid=6, devmajor=8, devminor=0),
    Entry("run/fifo", tarfile.FIFOTYPE, mode=0o600),
    Entry(".wh.gone", tarfile.REGTYPE),
    # Each of these needs a PAX record: a long name, a long link target, non-ASCII, big ids, xattrs.
    Entry("d/" + "n" * 120, tarfile.REGTYPE, mode=0o644, size=3),
    Entry("long/link", tarfile.SYMTYPE, linkname="t" * 150),
    Entry("caf\u00e9/men\u00fc.txt", tarfile.REGTYPE, size=2),
    Entry("big/ids", tarfile.REGTYPE, uid=3_000_000, gid=4_000_000),
    Entry("bin/ping", tarfile.REGTYPE, mode=0o755, size=4,
          pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}),
    Entry("exactly/" + "x" * 92, tarfile.REGTYPE),  # 100 bytes: still ustar
    Entry("dir/" + "y" * 96, tarfile.DIRTYPE),  # 100 bytes before tarfile adds the slash: PAX
]


def _contents(entry: Entry) -> bytes:
    return bytes((i * 7 + len(entry.name)) % 256 for i in range(entry.size))


def _with_tarfile(entries) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.uid, info.gid = entry.type, entry.mode, entry.uid, entry.gid
            info.size, info.mtime, info.linkname = entry.size, entry.mtime, entry.linkname
            info.uname = info.gname = ""
            info.devmajor, info.devminor = entry.devmajor, entry.devminor
            info.pax_headers = dict(entry.pax)
            archive.addfile(info, io.BytesIO(_contents(entry)) if entry.size else None)
    return out.getvalue()


def _with_tarwriter(entries, tmp_path) -> bytes:
    out = io.BytesIO()
    writer = TarWriter(out)
    for index, entry in enumerate(entries):
        if entry.size:
            path = tmp_path / f"data{index}"
            path.write_bytes(_contents(entry))
            fd = os.open(path, os.O_RDONLY)
            try:
                writer.add(entry, fd)
            finally:
                os.close(fd)
        else:
            writer.add(entry)
    writer.close()
    return out.getvalue()


def test_same_bytes_as_tarfile(tmp_path):
    assert _with_tarwriter(ENTRIES, tmp_path) == _with_tarfile(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name[:20])
def test_each_entry_alone(entry, tmp_path):
    assert _with_tarwriter([entry], tmp_path) == _with_tarfile([entry])


def test_records_are_padded_and_readable(tmp_path):
    data = _with_tarwriter(ENTRIES, tmp_path)
    assert len(data) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        assert names == [e.name for e in ENTRIES]
        assert archive.extractfile("bin/ping").read() == _contents(ENTRIES[14])
        assert archive.getmember("bin/ping").pax_headers["SCHILY.xattr.security.capability"] == "\x01\x00\x00\x02"


def test_a_file_that_shrinks_is_an_error(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="became shorter"):
            TarWriter(io.BytesIO()).add(Entry("short", tarfile.REGTYPE, size=10), fd)
    finally:
        os.close(fd)
