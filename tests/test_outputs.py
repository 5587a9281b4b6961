"""Image outputs (OCI layout directory, docker-load tarball), checked by independent readers: skopeo and umoci."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dataclasses import replace

from tests.support.images import one_layer_image
from dockyard.errors import OutputError, RegistryError, UsageError
from dockyard.events import Events
from dockyard.image.archive import write_docker_archive
from dockyard.image.blobs import BlobStore
from dockyard.image.layout import CONTAINERD_IMAGE_NAME, REF_NAME, write_oci_layout
from dockyard.image.model import (DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
                                  OCI_INDEX, Image)
from dockyard.options import Annotation, BuildOptions, OutputSpec, annotation_specs, parse_annotations
from dockyard.outputs import CachedLayers, OutputWriter, Written, check_outputs, finalize
from dockyard.registry import RegistryClient
from dockyard.result import BuildResult


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


# --- OutputWriter: one image, several images, an index ------------------------------------------------------
# Images made natively (one_layer_image with another architecture in the config): the writer writes whatever
# platforms it is given; building a foreign RUN is not needed to check the outputs.

REGISTRY_TOOL = ("--tls-verify=false",)


def writer_for(options: BuildOptions, store: BlobStore) -> OutputWriter:
    client = RegistryClient(environ={"HOME": "/nonexistent"}, backoff=0.01)
    return OutputWriter(options, Events(), client=lambda: client, store=store,
                        cached_layers=CachedLayers(lambda: client, store))


def two_platforms(store: BlobStore, options: BuildOptions) -> list[Image]:
    return [finalize(one_layer_image(store, {"arch": b"amd64"}), options),
            finalize(one_layer_image(store, {"arch": b"arm64"}, arch="arm64"), options)]


def registry_json(*args: str) -> dict:
    return json.loads(run("skopeo", "inspect", *REGISTRY_TOOL, *args))


def options_for(tmp_path: Path, **kwargs) -> BuildOptions:
    return BuildOptions(context=tmp_path, environ={"HOME": "/nonexistent"}, **kwargs)


def test_one_image_is_written_as_its_manifest_as_before(registry, store, tmp_path):
    ref = f"{registry.host}/outputs/single:1"
    options = options_for(tmp_path, tags=(ref,), push=True,
                          outputs=(OutputSpec.parse(f"type=oci,dest={tmp_path / 'l'}"),))
    image = finalize(one_layer_image(store, {"f": b"single"}), options)
    written = writer_for(options, store).write([image], (ref,), frozenset())
    assert written == Written(image.digest, [ref], None, (image,))
    assert registry_json("--raw", f"docker://{ref}") == image.manifest_json()
    entry = json.loads((tmp_path / "l/index.json").read_text())["manifests"][0]
    assert entry["digest"] == image.digest and entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["annotations"] == {REF_NAME: "1", CONTAINERD_IMAGE_NAME: ref}


def test_two_platforms_push_one_index_that_skopeo_reads_per_platform(registry, store, tmp_path):
    ref = f"{registry.host}/outputs/multi:1"
    options = options_for(tmp_path, tags=(ref, f"{registry.host}/outputs/other:2"), push=True,
                          annotations=parse_annotations([
                              "index:org.opencontainers.image.vendor=acme",
                              "manifest-descriptor:com.example.entry=yes",
                              "manifest[linux/arm64]:com.example.arm=only-arm",
                              "org.opencontainers.image.title=both"]))
    images = two_platforms(store, options)
    written = writer_for(options, store).write(images, options.tags, frozenset())

    assert written.index is not None and written.digest == written.index.digest
    assert written.pushed == list(options.tags)
    raw = registry_json("--raw", f"docker://{ref}")
    assert raw == written.index.to_json()
    assert raw["mediaType"] == OCI_INDEX and raw["annotations"] == {"org.opencontainers.image.vendor": "acme"}
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    assert {m["annotations"]["com.example.entry"] for m in raw["manifests"]} == {"yes"}
    for image, arch in zip(images, ("amd64", "arm64")):
        # skopeo's Digest is the index's; the layers say which platform's image it chose.
        info = registry_json("--override-arch", arch, f"docker://{ref}")
        assert (info["Layers"], info["Architecture"]) == ([image.layers[0].digest], arch)
        manifest = registry_json("--raw", f"docker://{registry.host}/outputs/other@{image.digest}")
        assert manifest["annotations"]["org.opencontainers.image.title"] == "both"
        assert ("com.example.arm" in manifest["annotations"]) == (arch == "arm64")
    assert registry_json("--raw", f"docker://{registry.host}/outputs/other:2") == raw

    # A full copy of one platform out of the index: skopeo fetches every blob and checks it.
    run("skopeo", "copy", *("--src-tls-verify=false",), "--override-arch", "arm64", f"docker://{ref}",
        f"oci:{tmp_path / 'arm'}:a")
    assert skopeo_inspect(f"oci:{tmp_path / 'arm'}:a")["Architecture"] == "arm64"

    result = BuildResult(digest=written.digest, image=written.images[0], tags=options.tags, steps=(),
                         pushed=tuple(written.pushed), images=written.images, index=written.index)
    metadata = result.metadata()
    assert metadata["containerimage.digest"] == written.index.digest
    assert metadata["containerimage.descriptor"] == {"mediaType": OCI_INDEX, "digest": written.index.digest,
                                                     "size": written.index.size}
    assert [(p["platform"], p["digest"]) for p in metadata["platforms"]] == [
        ("linux/amd64", images[0].digest), ("linux/arm64", images[1].digest)]
    writer_for(replace(options, digest_file=tmp_path / "digest"), store).write_result_files(result)
    assert (tmp_path / "digest").read_text() == written.index.digest + "\n"


def test_docker_media_types_push_a_manifest_list(registry, store, tmp_path):
    ref = f"{registry.host}/outputs/dockerlist:1"
    options = options_for(tmp_path, tags=(ref,), outputs=(OutputSpec.parse("type=registry,oci-mediatypes=false"),))
    images = two_platforms(store, options)
    written = writer_for(options, store).write(images, options.tags, frozenset())

    raw = registry_json("--raw", f"docker://{ref}")
    assert raw["mediaType"] == DOCKER_MANIFEST_LIST and written.digest == written.index.digest
    assert {m["mediaType"] for m in raw["manifests"]} == {DOCKER_MANIFEST}
    arm_entry = next(m for m in raw["manifests"] if m["platform"]["architecture"] == "arm64")
    assert arm_entry["digest"] == written.images[1].digest and "annotations" not in arm_entry
    arm = registry_json("--raw", f"docker://{registry.host}/outputs/dockerlist@{arm_entry['digest']}")
    assert arm["mediaType"] == DOCKER_MANIFEST and arm["config"]["mediaType"] == DOCKER_CONFIG
    assert {layer["mediaType"] for layer in arm["layers"]} == {DOCKER_LAYER_GZIP}
    assert "annotations" not in arm
    assert registry_json("--override-arch", "arm64", f"docker://{ref}")["Architecture"] == "arm64"
    # The same layer bytes as the OCI images: only the documents differ.
    assert [layer["digest"] for layer in arm["layers"]] == [layer.digest for layer in images[1].layers]


def test_push_by_digest_pushes_no_tag(registry, store, tmp_path):
    repo = f"{registry.host}/outputs/bydigest"
    options = options_for(tmp_path, outputs=(OutputSpec.parse(
        f"type=image,name={repo}:ignored,push-by-digest=true,push=true"),))
    check_outputs(options, ["linux/amd64"])  # name= alone is where the push goes: no --tag needed
    image = finalize(one_layer_image(store), options)
    written = writer_for(options, store).write([image], (), frozenset())

    assert written.pushed == [f"{repo}@{image.digest}"] and written.digest == image.digest
    assert registry_json("--raw", f"docker://{repo}@{image.digest}") == image.manifest_json()
    tags = subprocess.run(["skopeo", "list-tags", *REGISTRY_TOOL, f"docker://{repo}"], capture_output=True,
                          text=True, timeout=60)
    assert tags.returncode != 0 or json.loads(tags.stdout)["Tags"] in (None, []), tags.stdout


def test_oci_layout_of_an_index(store, tmp_path):
    dest = tmp_path / "layout"
    options = options_for(tmp_path, tags=("registry.example.com/team/app:v1",),
                          outputs=(OutputSpec.parse(f"type=oci,dest={dest}"),),
                          annotations=parse_annotations(["index-descriptor:com.example.where=layout"]))
    images = two_platforms(store, options)
    written = writer_for(options, store).write(images, options.tags, frozenset())

    layout = json.loads((dest / "index.json").read_text())
    assert layout["manifests"] == [{"mediaType": OCI_INDEX, "digest": written.index.digest,
                                    "size": written.index.size,
                                    "annotations": {"com.example.where": "layout", REF_NAME: "v1",
                                                    CONTAINERD_IMAGE_NAME: "registry.example.com/team/app:v1"}}]
    blobs = {p.name for p in (dest / "blobs/sha256").iterdir()}
    for image in images:
        wanted = [image.digest, image.config_descriptor().digest] + [layer.digest for layer in image.layers]
        assert {d.split(":")[1] for d in wanted} <= blobs
    assert written.index.digest.split(":")[1] in blobs
    assert skopeo_inspect(f"oci:{dest}:v1", raw=True) == written.index.to_json()
    for image, arch in zip(images, ("amd64", "arm64")):
        info = json.loads(run("skopeo", "inspect", "--override-arch", arch, f"oci:{dest}:v1"))
        assert (info["Layers"], info["Architecture"]) == ([image.layers[0].digest], arch)
    run("skopeo", "copy", "--override-arch", "arm64", f"oci:{dest}:v1", f"oci:{tmp_path / 'arm'}:a")
    if os.geteuid() == 0:
        run("umoci", "unpack", "--image", f"{tmp_path / 'arm'}:a", str(tmp_path / "bundle"))
        assert (tmp_path / "bundle/rootfs/arch").read_bytes() == b"arm64"


def test_oci_layout_in_docker_media_types(store, tmp_path):
    dest = tmp_path / "layout"
    options = options_for(tmp_path, tags=("app:v1",),
                          outputs=(OutputSpec.parse(f"type=oci,dest={dest},oci-mediatypes=false"),))
    written = writer_for(options, store).write(two_platforms(store, options), options.tags, frozenset())
    [entry] = json.loads((dest / "index.json").read_text())["manifests"]
    assert entry["mediaType"] == DOCKER_MANIFEST_LIST and entry["digest"] == written.digest
    # Read by hand: skopeo's oci: transport only follows index.json entries of OCI media types (buildx's oci
    # exporter writes the same Docker-typed entry with oci-mediatypes=false).
    blobs = dest / "blobs/sha256"
    listing = json.loads((blobs / written.digest.split(":")[1]).read_bytes())
    assert listing == written.index.to_json() and listing["mediaType"] == DOCKER_MANIFEST_LIST
    for entry, image in zip(listing["manifests"], written.images):
        manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_bytes())
        assert manifest["mediaType"] == DOCKER_MANIFEST and manifest["config"]["mediaType"] == DOCKER_CONFIG
        config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
        assert config["architecture"] == entry["platform"]["architecture"] == image.platform.architecture
        assert all((blobs / layer["digest"].split(":")[1]).exists() for layer in manifest["layers"])


def test_index_annotation_makes_one_platform_an_index(registry, store, tmp_path):
    ref = f"{registry.host}/outputs/oneindex:1"
    options = options_for(tmp_path, tags=(ref,), push=True, annotations=parse_annotations(["index:k=v"]))
    image = finalize(one_layer_image(store), options)
    written = writer_for(options, store).write([image], options.tags, frozenset())
    raw = registry_json("--raw", f"docker://{ref}")
    assert raw["mediaType"] == OCI_INDEX and raw["annotations"] == {"k": "v"}
    assert [m["digest"] for m in raw["manifests"]] == [image.digest] and written.digest == written.index.digest


def test_outputs_that_cannot_hold_the_build_are_refused_before_it(tmp_path):
    tarball = OutputSpec.parse(f"type=docker,dest={tmp_path / 'x.tar'}")
    with pytest.raises(UsageError, match=r"holds the image of one platform.*linux/amd64, linux/arm64"):
        check_outputs(options_for(tmp_path, outputs=(tarball,)), ["linux/amd64", "linux/arm64"])
    check_outputs(options_for(tmp_path, outputs=(tarball,)), ["linux/arm64"])  # one platform: fine
    with pytest.raises(UsageError, match="index annotations"):
        check_outputs(options_for(tmp_path, outputs=(tarball,), annotations=parse_annotations(["index:k=v"])))

    docker_push = OutputSpec.parse("type=registry,oci-mediatypes=false")
    with pytest.raises(UsageError, match=r"Docker manifest list .* cannot carry annotations"):
        check_outputs(options_for(tmp_path, tags=("r/a:1",), outputs=(docker_push,),
                                  annotations=parse_annotations(["index:k=v"])), ["linux/amd64", "linux/arm64"])
    with pytest.raises(UsageError, match=r"Docker manifest .* cannot carry annotations"):
        check_outputs(options_for(tmp_path, tags=("r/a:1",), outputs=(docker_push,), annotations=(("k", "v"),)))
    with pytest.raises(UsageError, match="zstd"):
        check_outputs(options_for(tmp_path, tags=("r/a:1",), outputs=(docker_push,), compression="zstd"))
    with pytest.raises(UsageError, match="disagree on push-by-digest"):
        check_outputs(options_for(tmp_path, tags=("r/a:1",), outputs=(
            docker_push, OutputSpec.parse("type=registry,oci-mediatypes=false,push-by-digest=true"))))
    with pytest.raises(UsageError, match="--push needs at least one --tag"):
        check_outputs(options_for(tmp_path, push=True))


def test_a_failed_push_leaves_no_tag_on_a_partial_index(registry, store, tmp_path):
    from tests.support.fault_proxy import FaultProxy

    proxy = FaultProxy(registry.port).start()
    try:
        for failing in ("arm64 manifest", "index"):
            ref = f"{proxy.host}/outputs/partial-{failing.split()[0]}:1"
            options = options_for(tmp_path, tags=(ref,), push=True)
            images = two_platforms(store, options)
            path = f"/manifests/{images[1].digest}$" if failing != "index" else "/manifests/1$"
            proxy.add("status", method="PUT", path=path, status=500, times=-1)
            with pytest.raises(RegistryError):
                writer_for(options, store).write(images, options.tags, frozenset())
            # The tag is put last: not even tried while a manifest the index lists is missing.
            assert bool(proxy.requests("PUT", "/manifests/1$")) == (failing == "index")
            proxy.reset()
            missing = subprocess.run(["skopeo", "inspect", "--raw", *REGISTRY_TOOL, f"docker://{ref}"],
                                     capture_output=True, text=True, timeout=60)
            assert missing.returncode != 0 and "manifest unknown" in missing.stderr.lower(), missing.stderr
    finally:
        proxy.stop()


# --- the flags: --annotation levels and --output attributes, as buildx parses them ---------------------------

def test_annotation_levels_as_buildx_parses_them():
    parsed = parse_annotations(["k=v=w", "index,manifest:both=1", "manifest[linux/arm64/v8]:arm=2",
                                "manifest-descriptor:d=3", "index-descriptor:i=4", "k=again", ""])
    assert parsed == (Annotation("k", "again"), Annotation("both", "1", "index"), Annotation("both", "1"),
                      Annotation("arm", "2", "manifest", "linux/arm64/v8"), Annotation("d", "3", "manifest-descriptor"),
                      Annotation("i", "4", "index-descriptor"))
    assert annotation_specs((("plain", "pair"),)) == (Annotation("plain", "pair"),)  # the Python API's form


@pytest.mark.parametrize("text, message", [
    ("novalue", "expected \\[TYPE:\\]KEY=VALUE"),
    ("index:=v", "expected \\[TYPE:\\]KEY=VALUE"),
    ("layer:k=v", "unknown annotation type 'layer'"),
    ("org.example:k=v", "unknown annotation type"),  # the type ends at the first colon, as in buildx
    ("index[linux/amd64]:k=v", "takes no platform"),
    ("manifest[linux/a/b/c]:k=v", "invalid platform"),
])
def test_bad_annotations_are_refused(text, message):
    with pytest.raises(UsageError, match=message):
        parse_annotations([text])


def test_platform_qualified_annotations_reach_their_platform_only(store, tmp_path):
    options = options_for(tmp_path, annotations=parse_annotations(
        ["k=all", "manifest[linux/arm64]:k=arm", "manifest[linux/arm/v7]:v7=yes"]))
    amd, arm = two_platforms(store, options)
    v7 = finalize(one_layer_image(store, arch="arm").with_meta(variant="v7"), options)
    assert dict(amd.annotations) == {"k": "all"}
    assert dict(arm.annotations) == {"k": "arm"}
    assert dict(v7.annotations) == {"k": "all", "v7": "yes"}


def test_output_attributes():
    spec = OutputSpec.parse('type=image,"name=r.example/a,r.example/b:2",push-by-digest=true,push=true')
    assert (spec.type, spec.names, spec.push_by_digest, spec.oci_media_types) == (
        "registry", ("r.example/a", "r.example/b:2"), True, True)
    assert not OutputSpec.parse("type=oci,dest=out,oci-mediatypes=false").oci_media_types
    options = BuildOptions(context=Path("."), outputs=(spec,))
    assert options.wants_push and options.push_targets == ("r.example/a", "r.example/b:2")
    # The --tag's name every image output, as in buildx.
    assert replace(options, tags=("r.example/t:1",)).push_targets == ("r.example/t:1",)
    for text, message in [("type=registry,push-by-digest=maybe", "push-by-digest must be true or false"),
                          ("type=image,name=r.example/a", "type=image without push=true"),
                          ("type=registry,name=bad@@ref", "name 'bad@@ref'")]:
        with pytest.raises(UsageError, match=message):
            OutputSpec.parse(text)
