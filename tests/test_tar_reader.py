"""The layer tar reader (image/tarreader.py) gives the members tarfile gives, for every header form image builders
write, and refuses what it cannot read with TarFormatError."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from dockyard.image.tarreader import TarFormatError, TarReader
from tests.support import images

FIELDS = ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname", "uname", "gname", "devmajor",
          "devminor", "pax_headers")


def _archive(fmt: int, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _members(fmt: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    long_dir = "usr/share/" + "a-rather-long-directory-name/" * 5
    xattrs = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.note": "café"}
    return [
        (_info("etc", tarfile.DIRTYPE, mode=0o755, mtime=1_700_000_000), None),
        (_info("etc/hostname", mode=0o644, size=5, uid=1000, gid=1000, uname="app", gname="app"), b"host\n"),
        (_info(long_dir + "file.txt", size=3, mode=0o600), b"abc"),  # ustar prefix, or a long name
        (_info(long_dir, tarfile.DIRTYPE, mode=0o700), None),
        (_info("bin/ping", mode=0o4755, size=4, pax_headers=xattrs if fmt == tarfile.PAX_FORMAT else {}), b"ELF!"),
        (_info("lib", tarfile.SYMTYPE, linkname="usr/lib"), None),
        (_info("etc/hosts-link", tarfile.LNKTYPE, linkname="etc/hostname"), None),
        (_info("etc/" + "l" * 120, tarfile.SYMTYPE, linkname="/" + "t" * 150), None),  # long name and link
        (_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
        (_info("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660), None),
        (_info("run/fifo", tarfile.FIFOTYPE, mode=0o644), None),
        (_info("big-ids", size=0, uid=(8 ** 7) + 5 if fmt != tarfile.USTAR_FORMAT else 7, gid=3), b""),
        (_info("empty", size=0, mtime=0), b""),
        (_info("data/zeros", size=70_000), bytes(70_000)),  # data across reads
        (_info("naïve-ü.txt", size=1), b"x"),
    ]


def _fields(member: tarfile.TarInfo) -> dict:
    return {field: getattr(member, field) for field in FIELDS}


def _read_both(data: bytes) -> tuple[list, list]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        expected = []
        for member in archive:
            source = archive.extractfile(member) if member.isreg() else None
            expected.append((_fields(member), source.read() if source is not None else None))
    reader = TarReader(io.BytesIO(data))
    got = [(_fields(member), reader.read_data() if member.isreg() else None) for member in reader]
    return expected, got


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT],
                         ids=["pax", "gnu", "ustar"])
def test_members_are_those_tarfile_reads(fmt: int) -> None:
    members = _members(fmt)
    if fmt == tarfile.USTAR_FORMAT:  # ustar cannot hold long link names or unicode beyond its fields
        members = [m for m in members if len(m[0].linkname) < 100 and len(m[0].name) < 100]
    expected, got = _read_both(_archive(fmt, members))
    assert len(got) == len(members)
    assert got == expected


def test_global_pax_headers_apply_to_every_later_member() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "made by a test", "mtime": "1234.5"}) as archive:
        archive.addfile(_info("a", size=1), io.BytesIO(b"a"))
        archive.addfile(_info("b", size=1, pax_headers={"path": "renamed-b"}), io.BytesIO(b"b"))
    expected, got = _read_both(buf.getvalue())
    assert got == expected
    assert [entry[0]["name"] for entry in got] == ["a", "renamed-b"]


def test_the_layers_the_suite_makes_read_the_same() -> None:
    for layer in (images.fidelity_specials_layer(), images.fidelity_changes_layer(), images.busybox_layer()):
        expected, got = _read_both(gzip.decompress(layer.blob))
        assert got == expected


def test_a_v7_directory_is_a_directory() -> None:
    header = bytearray(_archive(tarfile.USTAR_FORMAT, [(_info("olddir/", tarfile.AREGTYPE), b"")])[:512])
    expected, got = _read_both(bytes(header) + bytes(1024))
    assert got == expected and got[0][0]["type"] == tarfile.DIRTYPE and got[0][0]["name"] == "olddir"


def test_a_bad_checksum_is_refused() -> None:
    data = bytearray(_archive(tarfile.PAX_FORMAT, [(_info("a", size=1), b"a")]))
    data[0] = ord("b")  # the name changes, the checksum does not
    with pytest.raises(TarFormatError, match="checksum"):
        list(TarReader(io.BytesIO(bytes(data))))


def test_a_truncated_member_is_refused() -> None:
    data = _archive(tarfile.PAX_FORMAT, [(_info("a", size=5000), bytes(5000))])[:2048]
    reader = TarReader(io.BytesIO(data))
    with pytest.raises(TarFormatError, match="unexpected end"):
        for _ in reader:
            pass


def test_gnu_sparse_files_are_refused() -> None:
    data = _archive(tarfile.PAX_FORMAT, [(_info("s", size=1, pax_headers={"GNU.sparse.size": "1"}), b"x")])
    with pytest.raises(TarFormatError, match="sparse"):
        list(TarReader(io.BytesIO(data)))


def test_data_is_written_to_a_descriptor(tmp_path) -> None:
    payload = bytes(range(256)) * 5000  # more than a chunk of the reader
    data = _archive(tarfile.PAX_FORMAT, [(_info("big", size=len(payload)), payload), (_info("small", size=2), b"ok")])
    reader = TarReader(io.BytesIO(data))
    written = []
    for member in reader:
        path = tmp_path / member.name
        with open(path, "wb") as out:
            reader.write_data(out.fileno())
        written.append(path.read_bytes())
    assert written == [payload, b"ok"]


def test_an_empty_stream_is_not_a_tar() -> None:
    with pytest.raises(TarFormatError, match="empty"):
        list(TarReader(io.BytesIO(b"")))
    assert list(TarReader(io.BytesIO(bytes(1024)))) == []  # an archive without members
    unterminated = _archive(tarfile.PAX_FORMAT, [(_info("a", size=1), b"a")])[:1024]  # no end-of-archive blocks
    assert [member.name for member in TarReader(io.BytesIO(unterminated))] == ["a"]


def test_a_pax_header_gives_the_size_of_a_file_too_big_for_its_header() -> None:
    # Writers put sizes of 8 GiB and more in the PAX header only, with 0 in the ustar field: made small here.
    data = bytearray(_archive(tarfile.PAX_FORMAT, [(_info("huge", size=3, pax_headers={"size": "3"}), b"abc")]))
    header = 1024  # the PAX header's own header and its one block of records come first
    data[header + 124:header + 136] = b"00000000000\0"
    data[header + 148:header + 156] = b" " * 8
    data[header + 148:header + 156] = b"%06o\0 " % sum(data[header:header + 512])
    expected, got = _read_both(bytes(data))
    assert got == expected
    assert got[0][0]["size"] == 3 and got[0][1] == b"abc"
