"""Image outputs (OCI layout directory, docker-load tarball), checked by independent readers: skopeo and umoci."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.images import one_layer_image
from dockyard.errors import OutputError, UsageError
from dockyard.image.archive import write_docker_archive
from dockyard.image.blobs import BlobStore
from dockyard.image.layout import REF_NAME, write_oci_layout


make_image = one_layer_image



def run(*cmd: str, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr}"
    return result.stdout


def skopeo_inspect(transport_ref: str, raw: bool = False) -> dict:
    return json.loads(run("skopeo", "inspect", *(["--raw"] if raw else []), transport_ref))


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "store")


# --- OCI layout --------------------------------------------------------------------------------------------

def test_oci_layout_read_by_skopeo_and_umoci(store, tmp_path):
    image = make_image(store, {"hello.txt": b"hello from dockyard\n"})
    dest = tmp_path / "layout"
    write_oci_layout(image, store, dest, ["v1"])

    assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    info = skopeo_inspect(f"oci:{dest}:v1")
    assert info["Digest"] == image.digest
    assert info["Layers"] == [image.layers[0].digest]
    assert skopeo_inspect(f"oci:{dest}:v1", raw=True) == image.manifest_json()
    assert not [p for p in (dest / "blobs/sha256").iterdir() if p.name.startswith(".")], "temp files left"

    if os.geteuid() != 0:
        pytest.skip("umoci unpack needs root")
    run("umoci", "unpack", "--image", f"{dest}:v1", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/hello.txt").read_bytes() == b"hello from dockyard\n"


def test_oci_layout_adds_tags_and_replaces_same_name(store, tmp_path):
    dest = tmp_path / "layout"
    first = make_image(store, {"f": b"first"})
    second = make_image(store, {"f": b"second"}, arch="arm64")
    third = make_image(store, {"f": b"third"})

    write_oci_layout(first, store, dest, ["v1"])
    # A full reference contributes its tag, as `oci:DIR:TAG` addresses it.
    write_oci_layout(second, store, dest, ["registry.example.com/team/app:v2"])
    assert skopeo_inspect(f"oci:{dest}:v1")["Digest"] == first.digest
    assert skopeo_inspect(f"oci:{dest}:v2")["Digest"] == second.digest
    assert skopeo_inspect(f"oci:{dest}:v2")["Architecture"] == "arm64"

    # The same ref name again replaces that entry only; writing twice adds no duplicates.
    write_oci_layout(third, store, dest, ["v1"])
    write_oci_layout(third, store, dest, ["v1"])
    index = json.loads((dest / "index.json").read_text())
    names = [m["annotations"][REF_NAME] for m in index["manifests"]]
    assert sorted(names) == ["v1", "v2"]
    assert skopeo_inspect(f"oci:{dest}:v1")["Digest"] == third.digest
    assert skopeo_inspect(f"oci:{dest}:v2")["Digest"] == second.digest
    # The replaced image's blobs stay (another tool may still point at them); the layout stays valid.
    run("skopeo", "copy", f"oci:{dest}:v2", f"oci:{tmp_path / 'copy'}:v2")


def test_oci_layout_without_ref_name(store, tmp_path):
    image = make_image(store, {"f": b"x"})
    dest = tmp_path / "layout"
    write_oci_layout(image, store, dest, [])
    write_oci_layout(image, store, dest, [])
    index = json.loads((dest / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    assert skopeo_inspect(f"oci:{dest}")["Digest"] == image.digest  # the only image, addressed without a tag


def test_oci_layout_refuses_foreign_destinations(store, tmp_path):
    image = make_image(store, {"f": b"x"})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("not a layout")
    with pytest.raises(OutputError) as err:
        write_oci_layout(image, store, busy, ["v1"])
    assert str(busy) in str(err.value) and err.value.hint
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError):
        write_oci_layout(image, store, a_file, ["v1"])

    empty = tmp_path / "empty"
    empty.mkdir()
    write_oci_layout(image, store, empty, ["v1"])  # an empty directory is fine
    assert skopeo_inspect(f"oci:{empty}:v1")["Digest"] == image.digest


# --- docker archive ----------------------------------------------------------------------------------------

def test_docker_archive_read_by_skopeo(store, tmp_path):
    image = make_image(store, {"hello.txt": b"hello tarball\n", "etc/conf": b"k=v\n"})
    dest = tmp_path / "out" / "image.tar"
    write_docker_archive(image, store, dest, ["myapp:1.0", "127.0.0.1:5000/team/app:latest"])

    with tarfile.open(dest) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    hexes = [image.layers[0].digest, image.config_descriptor().digest, image.digest]
    assert {f"blobs/sha256/{d.split(':')[1]}" for d in hexes} <= set(names)
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert manifest == [{"Config": f"blobs/sha256/{image.config_descriptor().digest.split(':')[1]}",
                         "RepoTags": ["myapp:1.0", "127.0.0.1:5000/team/app:latest"],
                         "Layers": [f"blobs/sha256/{image.layers[0].digest.split(':')[1]}"]}]
    assert {m["digest"] for m in index["manifests"]} == {image.digest}
    assert not [p for p in dest.parent.iterdir() if p.name != "image.tar"], "temp file left beside dest"

    info = skopeo_inspect(f"docker-archive:{dest}")
    # docker-archive names layers by their uncompressed digest (diff_id).
    assert info["Layers"] == [image.layers[0].diff_id]
    assert info["Architecture"] == "amd64"
    assert skopeo_inspect(f"docker-archive:{dest}:myapp:1.0")["Layers"] == [image.layers[0].diff_id]
    # The OCI half of the tarball is the image itself, digest for digest.
    assert skopeo_inspect(f"oci-archive:{dest}:1.0")["Digest"] == image.digest

    # A full copy out of the archive: skopeo reads every layer and checks it against the config's diff_ids.
    run("skopeo", "copy", f"docker-archive:{dest}", f"oci:{tmp_path / 'copied'}:t")
    copied = skopeo_inspect(f"oci:{tmp_path / 'copied'}:t", raw=True)
    assert len(copied["layers"]) == 1
    if os.geteuid() == 0:
        run("umoci", "unpack", "--image", f"{tmp_path / 'copied'}:t", str(tmp_path / "bundle"))
        assert (tmp_path / "bundle/rootfs/hello.txt").read_bytes() == b"hello tarball\n"


def test_docker_archive_overwrites_and_validates(store, tmp_path):
    image = make_image(store, {"f": b"x"})
    dest = tmp_path / "image.tar"
    dest.write_bytes(b"old junk")
    write_docker_archive(image, store, dest, ["app:v1"])
    assert skopeo_inspect(f"docker-archive:{dest}")["Layers"] == [image.layers[0].diff_id]

    with pytest.raises(OutputError):
        write_docker_archive(image, store, tmp_path, ["app:v1"])  # a directory
    with pytest.raises(UsageError):
        write_docker_archive(image, store, tmp_path / "x.tar", ["app@sha256:" + "0" * 64])
    assert not (tmp_path / "x.tar").exists()
