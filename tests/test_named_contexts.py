"""Named build contexts without building: `--build-context` values, BuildKit's name matching, the plan's
precedence (a context replaces a stage of its name; an earlier stage wins over a context in FROM; else a
context replaces an image), the OCI layout reader's choices and lint's UnknownFromStage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.context_sources import copy_visible, local_context
from dockyard.diagnostics.checks import dockerfile_findings
from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.errors import ContextError, UsageError
from dockyard.image.blobs import BlobStore
from dockyard.image.layout import write_oci_layout
from dockyard.image.layout_reader import read_oci_layout
from dockyard.image.model import HistoryEntry, Image, Platform
from dockyard.named_contexts import (DOCKER_IMAGE, GIT, LOCAL, OCI_LAYOUT, URL, NamedContexts, normalized_name,
                                     parse_build_context)
from dockyard.plan import make_plan
from dockyard.rootfs.snapshot import write_layer


@pytest.mark.parametrize("text, expected", [
    ("alpine", "alpine"),
    ("alpine:latest", "alpine"),
    ("docker.io/library/alpine:latest", "alpine"),
    ("index.docker.io/library/alpine", "alpine"),
    ("alpine:3.20", "alpine:3.20"),
    ("debian:12", "debian:12"),
    ("myorg/app", "myorg/app"),
    ("localhost:5000/base:1", "localhost:5000/base:1"),
    ("alpine:latest@sha256:" + "a" * 64, "alpine:latest@sha256:" + "a" * 64),
    ("Upper", None),
])
def test_names_are_matched_as_buildkit_normalizes_them(text, expected):
    assert normalized_name(text) == expected


def test_parse_each_source_kind(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "layout").mkdir()
    assert parse_build_context("a=dir", cwd=tmp_path).kind == LOCAL
    assert parse_build_context("a=dir", cwd=tmp_path).value == str(tmp_path / "dir")
    image = parse_build_context("alpine:latest=docker-image://alpine@sha256:" + "b" * 64)
    assert (image.name, image.kind) == ("alpine", DOCKER_IMAGE)
    tagged = parse_build_context(f"b=oci-layout://{tmp_path}/layout:v2")
    assert (tagged.kind, tagged.value, tagged.tag, tagged.digest) == (OCI_LAYOUT, str(tmp_path / "layout"), "v2", None)
    pinned = parse_build_context("b=oci-layout://layout@sha256:" + "c" * 64, cwd=tmp_path)
    assert (pinned.tag, pinned.digest) == (None, "sha256:" + "c" * 64)
    assert parse_build_context("b=oci-layout://layout", cwd=tmp_path).tag is None
    for git in ("https://host/repo.git#v1:docs", "git@github.com:o/r.git", "ssh://host/repo", "git://host/r"):
        assert parse_build_context(f"g={git}").kind == GIT
    assert parse_build_context("u=https://host/files/app.tar.gz").kind == URL


@pytest.mark.parametrize("text, error, words", [
    ("nothing", UsageError, ["NAME=VALUE"]),
    ("a=", UsageError, ["NAME=VALUE"]),
    ("context=dir", UsageError, ["cannot be replaced"]),
    ("a=s3://bucket/x", UsageError, ["'s3'"]),
    ("a=input:x", UsageError, ["'input'"]),
    ("a=docker-image://Bad", UsageError, ["docker-image://"]),
    ("a=missing", ContextError, ["--build-context a", "does not exist"]),
    ("a=file.txt", ContextError, ["not a directory"]),
    ("a=oci-layout://dir@md5:1", UsageError, ["sha256"]),
    ("a=oci-layout://missing:v1", ContextError, ["OCI layout missing"]),
])
def test_bad_values(text, error, words, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(error) as raised:
        parse_build_context(text, cwd=tmp_path)
    for word in words:
        assert word in raised.value.message


def _plan(text: str, contexts: dict[str, str], target: str | None = None):
    from dockyard.named_contexts import NamedContext

    named = NamedContexts([NamedContext(normalized_name(n), k, "") for n, k in contexts.items()])
    return make_plan(parse_dockerfile(text, "Dockerfile"), target, {}, set(), contexts=named)


def test_a_context_replaces_the_stage_of_its_name_and_its_dependencies_go():
    built = _plan("FROM scratch AS deps\nFROM golang AS build\nCOPY --from=deps / /\nRUN make\n"
                  "FROM alpine\nCOPY --from=build /app /app\n", {"build": LOCAL})
    by_name = {p.stage.name: p for p in built.stages}
    assert by_name["build"].replaced and by_name["build"].base_context == "build"
    assert "deps" not in by_name  # only the replaced stage read it
    assert built.step_count == 1 + 2  # the replaced stage is one step (its FROM); the last stage FROM + COPY


def test_from_an_earlier_stage_wins_over_a_context_of_that_name_in_from():
    """BuildKit looks FROM up as a stage before a context; a context of the stage's name replaces the stage."""
    built = _plan("FROM scratch AS base\nFROM base\n", {"base:1": LOCAL})
    assert built.stages[-1].base_stage == 0 and built.stages[-1].base_context is None


def test_from_image_name_and_tag_match_contexts():
    built = _plan("FROM docker.io/library/alpine:latest AS a\nFROM debian:12 AS b\nFROM debian:11\n"
                  "COPY --from=a / /a\nCOPY --from=b / /b\n", {"alpine": DOCKER_IMAGE, "debian:12": DOCKER_IMAGE})
    assert built.stages[0].base_context == "alpine" and built.stages[1].base_context == "debian:12"
    full = _plan("FROM debian:11\n", {"debian:12": DOCKER_IMAGE})
    assert full.stages[0].base_image == "debian:11" and full.stages[0].base_context is None


def test_scratch_is_never_a_context():
    built = _plan("FROM scratch\n", {"other": LOCAL})
    assert built.stages[0].base_image == "scratch"


def test_lint_unknown_from_stage_knows_contexts():
    dockerfile = parse_dockerfile("FROM scratch\nCOPY --from=shared a /a\nRUN --mount=from=tools,target=/t x\n",
                                  "Dockerfile")
    rules = [f.rule for f in dockerfile_findings(dockerfile, {}, None, None)]
    assert rules.count("UnknownFromStage") == 2
    rules = [f.rule for f in dockerfile_findings(dockerfile, {}, None, None, frozenset({"shared", "tools"}))]
    assert "UnknownFromStage" not in rules


def test_local_context_reads_its_own_dockerignore_with_exceptions(tmp_path):
    source = tmp_path / "src"
    for name in ("keep.txt", "logs/a.log", "logs/keep.log", "node_modules/m/x.js"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    (source / ".dockerignore").write_text("logs\n!logs/keep.log\nnode_modules\n")
    os.symlink("keep.txt", source / "link")
    context = parse_build_context(f"s={source}")
    copy_visible(local_context(context), str(source), str(tmp_path / "out"))
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert found == [".dockerignore", "keep.txt", "link", "logs", "logs/keep.log"]
    assert os.readlink(tmp_path / "out" / "link") == "keep.txt"


def _layout(tmp_path: Path, store: BlobStore) -> tuple[Path, Image]:
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "f").write_text("f")
    layer, _ = write_layer(str(tmp_path / "layer"), store)
    image = Image(container_config={"Cmd": ["x"]}).with_layer(layer, HistoryEntry(created_by="test"))
    store.put_bytes(image.config_bytes())
    write_oci_layout(image, store, tmp_path / "layout", ["v1", "v2"])
    return tmp_path / "layout", image


def test_layout_reader_by_tag_digest_and_its_errors(tmp_path):
    source = BlobStore(tmp_path / "source-store")
    layout, image = _layout(tmp_path, source)
    store = BlobStore(tmp_path / "store")
    read = read_oci_layout(layout, tag="v2", digest=None, platform=Platform(), store=store, what="ctx")
    assert read.digest == image.digest and read.image.container_config == {"Cmd": ["x"]}
    assert store.has(image.layers[0].digest)
    by_digest = read_oci_layout(layout, tag=None, digest=image.digest, platform=Platform(), store=store, what="ctx")
    assert by_digest.digest == image.digest
    with pytest.raises(ContextError, match="no image tagged 'latest'") as raised:
        read_oci_layout(layout, tag=None, digest=None, platform=Platform(), store=store, what="ctx")
    assert "v1, v2" in (raised.value.hint or "")
    with pytest.raises(ContextError, match=r"no manifest sha256:0+"):
        read_oci_layout(layout, tag=None, digest="sha256:" + "0" * 64, platform=Platform(), store=store, what="ctx")
    # A corrupt layer blob is refused, and nothing under its digest enters the store.
    blob = layout / "blobs" / "sha256" / image.layers[0].digest.split(":")[1]
    blob.write_bytes(b"corrupt")
    fresh = BlobStore(tmp_path / "fresh")
    with pytest.raises(ContextError, match="does not match its digest"):
        read_oci_layout(layout, tag="v1", digest=None, platform=Platform(), store=fresh, what="ctx")
    assert not fresh.has(image.layers[0].digest)
    (layout / "index.json").write_text(json.dumps([]))
    with pytest.raises(ContextError, match="not a JSON object"):
        read_oci_layout(layout, tag="v1", digest=None, platform=Platform(), store=fresh, what="ctx")
