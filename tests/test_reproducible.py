"""Reproducible builds in the parts: the layer writer with SOURCE_DATE_EPOCH, compressed output that does not
depend on when or where it was made, the epoch's sources and precedence, and the compression options."""

from __future__ import annotations

import io
import os
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from dockyard.build_args import unused_build_args
from dockyard.builder import build_args_with_epoch
from dockyard.errors import UsageError
from dockyard.stage.history import created_time
from dockyard.image.blobs import BlobStore
from dockyard.image.compression import compressor, open_decompressed
from dockyard.image.model import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD
from dockyard.options import BuildOptions, check_compression
from dockyard.rootfs.snapshot import write_layer

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z


def _make_upper(root: Path) -> Path:
    """A step's change set: files, a directory, a symlink, a hard link, a whiteout and xattrs, all made now."""
    (root / "app" / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "c.txt"):  # created out of order: the layer must not follow creation order
        (root / "app" / name).write_text(name)
    (root / "app" / "sub" / "deep").write_text("deep")
    os.symlink("a.txt", root / "app" / "link")
    os.link(root / "app" / "a.txt", root / "app" / "hard")
    os.mknod(root / "app" / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # an overlay whiteout
    for name in ("user.zeta", "user.alpha"):
        os.setxattr(root / "app" / "c.txt", name, name.encode())
    return root


def _members(store: BlobStore, digest: str) -> list[tarfile.TarInfo]:
    with store.open(digest) as raw, tarfile.open(fileobj=open_decompressed(raw), mode="r|") as archive:
        return list(archive)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "uncompressed"])
def test_same_changes_made_at_different_times_and_places_give_the_same_layer(tmp_path, compression):
    first = _make_upper(tmp_path / "one" / "upper")
    time.sleep(1.1)
    second = _make_upper(tmp_path / "two" / "elsewhere")
    layers = [write_layer(str(upper), BlobStore(tmp_path / f"store{n}"), compression=compression,
                          source_date_epoch=EPOCH)[0] for n, upper in enumerate((first, second))]
    assert layers[0] == layers[1]
    unpinned = [write_layer(str(upper), BlobStore(tmp_path / "store-now"), compression=compression)[0]
                for upper in (first, second)]
    assert unpinned[0].diff_id != unpinned[1].diff_id  # the mtimes differ without an epoch: the test can fail


def test_pinned_layer_entries_are_sorted_clamped_and_carry_no_host_names(tmp_path):
    upper = _make_upper(tmp_path / "upper")
    old = upper / "app" / "sub" / "deep"
    os.utime(old, (EPOCH - 50, EPOCH - 50))  # older than the epoch: kept, as BuildKit's rewrite-timestamp does
    store = BlobStore(tmp_path / "store")
    layer, _ = write_layer(str(upper), store, source_date_epoch=EPOCH)
    members = _members(store, layer.digest)
    names = [m.name for m in members]
    assert names == ["app", "app/a.txt", "app/b.txt", "app/c.txt", "app/.wh.gone", "app/hard", "app/link",
                     "app/sub", "app/sub/deep"]
    assert {m.name: m.mtime for m in members}["app/sub/deep"] == EPOCH - 50
    assert all(m.mtime == EPOCH for m in members if m.name != "app/sub/deep")
    assert all(m.uname == "" and m.gname == "" for m in members)
    headers = {key for m in members for key in m.pax_headers}
    assert headers == {"SCHILY.xattr.user.alpha", "SCHILY.xattr.user.zeta"}  # no atime, ctime or mtime records
    c_txt = next(m for m in members if m.name == "app/c.txt")
    assert list(c_txt.pax_headers) == ["SCHILY.xattr.user.alpha", "SCHILY.xattr.user.zeta"]


def test_gzip_output_has_a_header_without_time_or_name():
    comp, media_type = compressor("gzip", 9)
    blob = comp.compress(b"x" * 1000) + comp.flush()
    assert media_type == OCI_LAYER_GZIP
    flags, mtime = blob[3], int.from_bytes(blob[4:8], "little")
    assert (flags, mtime) == (0, 0)  # no FNAME/FCOMMENT fields, no modification time
    assert zlib.decompress(blob, 31) == b"x" * 1000


def test_compressors_name_their_media_types_and_round_trip():
    for kind, level, media_type in (("zstd", 19, OCI_LAYER_ZSTD), ("uncompressed", None, OCI_LAYER),
                                    ("gzip", 0, OCI_LAYER_GZIP)):
        comp, found = compressor(kind, level)
        blob = comp.compress(b"layer bytes " * 100) + comp.flush()
        assert found == media_type
        assert open_decompressed(io.BytesIO(blob)).read() == b"layer bytes " * 100


def _options(tmp_path, build_args=(), environ=None, reproducible=False) -> BuildOptions:
    return BuildOptions(context=tmp_path, build_args=tuple(build_args), environ=environ or {},
                        reproducible=reproducible)


def test_the_epoch_comes_from_the_build_arg_then_the_environment_then_reproducible(tmp_path):
    assert _options(tmp_path).source_date_epoch is None
    assert _options(tmp_path, reproducible=True).source_date_epoch == 0
    assert _options(tmp_path, environ={"SOURCE_DATE_EPOCH": "5"}, reproducible=True).source_date_epoch == 5
    both = _options(tmp_path, [("SOURCE_DATE_EPOCH", "7")], {"SOURCE_DATE_EPOCH": "5"})
    assert both.source_date_epoch == 7
    assert _options(tmp_path, environ={"SOURCE_DATE_EPOCH": ""}).source_date_epoch is None  # empty is unset


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
def test_a_bad_epoch_is_a_usage_error_naming_its_source(tmp_path, value):
    with pytest.raises(UsageError, match="from --build-arg SOURCE_DATE_EPOCH"):
        _ = _options(tmp_path, [("SOURCE_DATE_EPOCH", value)]).source_date_epoch
    with pytest.raises(UsageError, match="from the environment"):
        _ = _options(tmp_path, environ={"SOURCE_DATE_EPOCH": value}).source_date_epoch


def test_the_environment_epoch_becomes_a_build_arg_nobody_is_warned_about(tmp_path):
    from_env = _options(tmp_path, [("A", "1")], {"SOURCE_DATE_EPOCH": "5"})
    assert build_args_with_epoch(from_env) == {"A": "1", "SOURCE_DATE_EPOCH": "5"}
    given = _options(tmp_path, [("SOURCE_DATE_EPOCH", "7")], {"SOURCE_DATE_EPOCH": "5"})
    assert build_args_with_epoch(given) == {"SOURCE_DATE_EPOCH": "7"}
    assert unused_build_args({"SOURCE_DATE_EPOCH": "5", "A": "1"}, set()) == ["A"]


def test_created_times_are_written_as_buildkit_writes_the_epoch():
    assert created_time(EPOCH) == "2023-11-14T22:13:20Z"
    assert created_time(0) == "1970-01-01T00:00:00Z"
    assert created_time().endswith("Z") and not created_time().startswith("1970")


@pytest.mark.parametrize("kind, level, message", [
    ("gzip", 10, "use 0 to 9"), ("zstd", 0, "use 1 to 22"), ("zstd", 23, "use 1 to 22"),
    ("uncompressed", 3, "uncompressed layers have no level"), ("lz4", None, "use gzip, zstd or uncompressed")])
def test_compression_options_out_of_range_are_usage_errors(kind, level, message):
    with pytest.raises(UsageError, match=message):
        check_compression(kind, level)


def test_compression_options_in_range_are_accepted():
    for kind, level in (("gzip", 0), ("gzip", 9), ("zstd", 22), ("uncompressed", None), ("zstd", None)):
        check_compression(kind, level)
