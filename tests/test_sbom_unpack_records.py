"""The SBOM's record of a layer made while the layer is unpacked for a step (one decompression of the layer)
is the record read from its blob, so a catalog made from either is the same."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from dockyard.image.compression import open_decompressed
from dockyard.image.model import Platform
from dockyard.rootfs.unpack import DiffIdReader, apply_layer
from dockyard.sbom.catalog import wanted
from dockyard.sbom.layers import UnpackRecorder, layer_infos, read_layer
from dockyard.sbom.source import open_image
from tests.support.sbom_images import alpine_layers, debian_image_layers, distroless_layers, write_layout

AMD64 = Platform("linux", "amd64")


@pytest.mark.parametrize("layers", [debian_image_layers, distroless_layers, alpine_layers])
def test_a_layer_recorded_while_unpacked_is_the_layer_read_from_its_blob(tmp_path: Path, layers) -> None:
    write_layout(tmp_path / "layout", layers())
    root = tmp_path / "root"
    root.mkdir()
    kinds: set[str] = set()
    with open_image(f"oci:{tmp_path / 'layout'}:1", platform=AMD64, environ={}) as opened:
        for info, layer in zip(layer_infos(opened.image), opened.image.layers):
            recorder = UnpackRecorder(wanted)
            with opened.blobs.open(layer.digest) as raw, DiffIdReader(open_decompressed(raw)) as stream:
                apply_layer(stream, str(root), observe=recorder.member)  # type: ignore[arg-type]
                stream.verify(layer.diff_id, "layer")
            read = read_layer(layer, info, opened.blobs, wanted)
            assert recorder.record == read
            kinds |= {entry[0] for entry in read}
    assert "f" in kinds  # wanted files were read back (not only directories and other entries)


def test_a_wanted_file_is_read_back_as_written(tmp_path: Path) -> None:
    written = tmp_path / "status"
    written.write_bytes(b"Package: a\n")
    member = tarfile.TarInfo("var/lib/dpkg/status")
    member.size = written.stat().st_size
    recorder = UnpackRecorder(wanted)
    recorder.member(member, str(written))
    recorder.member(tarfile.TarInfo("etc/hostname"), str(tmp_path / "unused"))
    assert recorder.record == [("f", "var/lib/dpkg/status", b"Package: a\n"), ("e", "etc/hostname")]
