"""Attestations as values: buildx's flag syntax, in-toto statements and their subjects, the attestation manifest
BuildKit writes (docs/attestations/attestation-storage.md and exporter/containerimage/writer.go in
moby/buildkit), the SLSA provenance predicates (v0.2 and v1, min and max), the context's git commit, and the
SBOM's per-layer record cache and its pruning."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from dockyard.attest.manifest import attestation_descriptor, attestation_image
from dockyard.attest.provenance import BaseImage, BuildRecord, Download, GitSource, provenance
from dockyard.attest.records import git_source
from dockyard.attest.spec import AttestationSpec, parse_attestations
from dockyard.attest.statement import image_purl, statement, statement_bytes, subjects
from dockyard.errors import UsageError
from dockyard.image.blobs import BlobStore
from dockyard.image.index import ImageIndex
from dockyard.image.model import Platform

AMD64 = Platform("linux", "amd64")
WHEN = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_buildx_flags():
    assert parse_attestations(sbom="true") == (AttestationSpec("sbom"),)
    assert parse_attestations(sbom="false") == ()
    assert parse_attestations(provenance="mode=max,builder-id=https://ci/run/1") == (
        AttestationSpec("provenance", (("builder-id", "https://ci/run/1"), ("mode", "max"))),)
    # --attest and the shorthands: one per type, the shorthand last (as buildx appends it), sbom first.
    specs = parse_attestations(provenance="false", attest=["type=provenance,mode=max", "type=sbom"])
    assert specs == (AttestationSpec("sbom"),)
    specs = parse_attestations(attest=["type=provenance,mode=max,version=v1"])
    assert (specs[0].mode, specs[0].version) == ("max", "v1")
    assert parse_attestations() == ()


@pytest.mark.parametrize("bad", ["type=vex", "type=provenance,mode=full", "type=provenance,version=v0.3",
                                 "type=sbom,mode=max", "provenance", "type=sbom,disabled=maybe"])
def test_bad_attest_flags_are_usage_errors(bad):
    with pytest.raises(UsageError) as raised:
        parse_attestations(attest=[bad])
    assert "--attest" in raised.value.message


def test_subjects_are_buildkit_purls():
    assert image_purl("alpine") == "pkg:docker/alpine@latest"
    assert image_purl("docker.io/library/alpine:3.20", AMD64) == "pkg:docker/alpine@3.20?platform=linux%2Famd64"
    assert image_purl("localhost:5000/team/app:1", Platform("linux", "arm64", "v8")) == \
        "pkg:docker/localhost:5000/team/app@1?platform=linux%2Farm64%2Fv8"
    digest = "sha256:" + "a" * 64
    assert subjects([], AMD64, digest) == [{"name": "_", "digest": {"sha256": "a" * 64}}]
    assert subjects(["r/app:1", "r/app:1"], AMD64, digest) == [
        {"name": "pkg:docker/r/app@1?platform=linux%2Famd64", "digest": {"sha256": "a" * 64}}]


def test_attestation_manifest_is_what_buildkit_writes(tmp_path):
    store = BlobStore(tmp_path / "store")
    body = statement_bytes(statement("https://spdx.dev/Document", {"spdxVersion": "SPDX-2.3"},
                                     subjects([], AMD64, "sha256:" + "b" * 64)))
    image = attestation_image([("https://spdx.dev/Document", body)], store)
    manifest = json.loads(image.manifest_bytes())
    layer = manifest["layers"][0]
    assert layer["mediaType"] == "application/vnd.in-toto+json"
    assert layer["annotations"] == {"in-toto.io/predicate-type": "https://spdx.dev/Document"}
    assert store.open(layer["digest"]).read() == body
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(store.open(manifest["config"]["digest"]).read())
    assert config == {"architecture": "unknown", "os": "unknown", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    entry = attestation_descriptor(image, "sha256:" + "b" * 64).to_json()
    assert entry["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert entry["annotations"] == {"vnd.docker.reference.digest": "sha256:" + "b" * 64,
                                    "vnd.docker.reference.type": "attestation-manifest"}
    # The index model knows it for what it is: no platform of its own, keyed by its subject.
    index = ImageIndex((attestation_descriptor(image, "sha256:" + "b" * 64),))
    assert index.platforms == ()


def record(**changes) -> BuildRecord:
    values = dict(platform=AMD64, builder_platform="linux/amd64", dockerfile_name="docker/Dockerfile",
                  dockerfile=b"FROM base\n", target="app", build_args=(("VERSION", "1.0"),),
                  labels=(("team", "x"),), secret_ids=("token",), ssh_ids=(),
                  bases=(BaseImage("registry.example/base:1", AMD64, "sha256:" + "c" * 64),),
                  git=GitSource("https://git.example/app.git", "d" * 40),
                  downloads=(Download("https://example.com/a.tgz", "sha256:" + "e" * 64),),
                  started=WHEN, finished=WHEN, reproducible=True, builder_id="https://ci.example/run/9")
    values.update(changes)
    return BuildRecord(**values)


def test_provenance_v02_min_and_max():
    kind, minimal = provenance(record(), mode="min")
    assert kind == "https://slsa.dev/provenance/v0.2"
    assert minimal["builder"] == {"id": "https://ci.example/run/9"}
    assert minimal["materials"] == [
        {"uri": "pkg:docker/registry.example/base@1?platform=linux%2Famd64", "digest": {"sha256": "c" * 64}},
        {"uri": "https://git.example/app.git", "digest": {"sha1": "d" * 40}},
        {"uri": "https://example.com/a.tgz", "digest": {"sha256": "e" * 64}}]
    invocation = minimal["invocation"]
    assert invocation["configSource"]["entryPoint"] == "docker/Dockerfile"
    assert invocation["configSource"]["uri"] == "https://git.example/app.git"
    assert invocation["parameters"]["args"] == {"platform": "linux/amd64", "target": "app"}
    assert "secrets" not in invocation["parameters"]
    assert minimal["metadata"]["buildStartedOn"] == "2024-01-01T00:00:00Z"
    assert minimal["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["vcs"] == {
        "revision": "d" * 40, "source": "https://git.example/app.git"}
    _, maximal = provenance(record(), mode="max")
    assert maximal["invocation"]["parameters"]["args"]["build-arg:VERSION"] == "1.0"
    assert maximal["invocation"]["parameters"]["args"]["label:team"] == "x"
    assert maximal["invocation"]["parameters"]["secrets"] == [{"id": "token"}]
    # Reproducible: the same inputs give the same predicate, invocation id included.
    assert provenance(record(), mode="max") == provenance(record(), mode="max")
    assert provenance(record(reproducible=False), mode="min")[1]["metadata"]["buildInvocationID"] != \
        provenance(record(reproducible=False), mode="min")[1]["metadata"]["buildInvocationID"]


def test_provenance_v1_layout():
    kind, predicate = provenance(record(), mode="max", version="v1")
    assert kind == "https://slsa.dev/provenance/v1"
    definition = predicate["buildDefinition"]
    assert definition["externalParameters"]["configSource"]["path"] == "docker/Dockerfile"
    assert definition["externalParameters"]["request"]["args"]["build-arg:VERSION"] == "1.0"
    assert definition["resolvedDependencies"][0]["digest"] == {"sha256": "c" * 64}
    assert predicate["runDetails"]["builder"]["id"] == "https://ci.example/run/9"
    assert predicate["runDetails"]["metadata"]["startedOn"] == "2024-01-01T00:00:00Z"


def test_git_source_of_a_checkout(tmp_path):
    assert git_source(tmp_path) is None
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e",
           "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "x"], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True, env=env,
                          capture_output=True, text=True).stdout.strip()
    found = git_source(tmp_path)
    assert found is not None and found.commit == head and found.url == tmp_path.resolve().as_uri()
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "https://user:pw@git.example/a.git"],
                   check=True, env=env)
    assert git_source(tmp_path).url == "https://git.example/a.git"


def test_sbom_layer_records_are_kept_by_diff_id_and_pruned(tmp_path):
    """A catalog made from the cached records is the one made from the layers; with the records cached the
    layer blobs are not read at all (they are removed here to show it); cache prune removes them."""
    import os
    import time

    from dockyard.cache.admin import list_cache, prune_cache
    from dockyard.sbom.catalog import catalog
    from dockyard.sbom.record_cache import LayerRecordCache, records_dir
    from dockyard.sbom.source import open_image
    from tests.support.sbom_images import debian_image_layers, write_layout

    write_layout(tmp_path / "layout", debian_image_layers())
    cache_root = tmp_path / "cache"
    records = LayerRecordCache(records_dir(cache_root))
    with open_image(f"oci:{tmp_path / 'layout'}:1", platform=AMD64, environ={}) as opened:
        plain = catalog(opened.image, opened.blobs, name="x", digest=opened.digest)
        first = catalog(opened.image, opened.blobs, name="x", digest=opened.digest, records=records)
        for layer in opened.image.layers:
            os.unlink(tmp_path / "layout" / "blobs" / "sha256" / layer.digest.split(":")[1])
        second = catalog(opened.image, opened.blobs, name="x", digest=opened.digest, records=records)
        diff_ids = {layer.diff_id for layer in opened.image.layers}
    assert plain == first == second and len(plain.packages) > 5
    listed = {item.name for item in list_cache(cache_root) if item.kind == "sbom"}
    assert listed == diff_ids
    old = time.time() - 3600
    for item in list_cache(cache_root):
        os.utime(item.path, (old, old))
    removed, _ = prune_cache(cache_root, older_than=60, everything=False)
    assert removed == len(diff_ids) and not [i for i in list_cache(cache_root) if i.kind == "sbom"]


def test_bare_sbom_and_provenance_flags_leave_the_context_alone():
    from dockyard.cli import attestation_flag_values, make_parser, options_from_args

    argv = attestation_flag_values(["--sbom", "ctx", "--provenance", "mode=max,version=v1", "-t", "r/a:1"])
    assert argv == ["--sbom=true", "ctx", "--provenance=mode=max,version=v1", "-t", "r/a:1"]
    assert attestation_flag_values(["--provenance", "false", "--sbom"]) == ["--provenance=false", "--sbom=true"]
    args = make_parser().parse_args(["build", *argv])
    options = options_from_args(args, {})
    assert str(options.context) == "ctx"
    assert [(s.type, s.mode, s.version) for s in options.attestations] == [("sbom", "min", "v0.2"),
                                                                           ("provenance", "max", "v1")]


def test_sbom_output_files_are_named_per_platform():
    from pathlib import Path

    from dockyard.attest.spec import SbomOutput

    cyclonedx = SbomOutput.parse("cyclonedx=out/sbom.cdx.json")
    assert cyclonedx.format == "cyclonedx-json"
    assert cyclonedx.path_for("linux/amd64", several=False) == Path("out/sbom.cdx.json")
    assert cyclonedx.path_for("linux/arm/v7", several=True) == Path("out/sbom.linux-arm-v7.cdx.json")
    assert SbomOutput.parse("spdx-json=x/{platform}.json").path_for("linux/arm64", several=False) == Path(
        "x/linux-arm64.json")
    for bad in ("sbom.json", "syft-json=a.json", "spdx-json="):
        with pytest.raises(UsageError):
            SbomOutput.parse(bad)
