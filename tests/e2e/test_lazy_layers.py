"""Layers pulled only when something needs their bytes: a base image's layer blobs stay in its registry while no
step unpacks the root, and each output then gets them its own way (a push to the same registry mounts them, an
OCI layout or a push to another registry downloads them first). Every build gets a fresh cache directory, as on
a fresh CI runner, so its steps' hits come from the registry cache; real registries on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import dockyard, write_context
from tests.support.registry import RegistryServer

DOCKERFILE = "FROM {base}\nRUN echo built > /built\n"


@pytest.fixture(scope="module")
def other_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("other-registry"))
    yield server
    server.stop()


def _build(tmp_path: Path, name: str, context: Path, *args: str) -> tuple[dict, list[dict]]:
    """Build with a fresh cache dir named `name`: (metadata, progress events)."""
    out = tmp_path / name
    result = dockyard("build", "--progress", "json", "--cache-dir", str(out / "cache"), "--metadata-file",
                      str(out / "meta.json"), *args, str(context))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return json.loads((out / "meta.json").read_text()), events


def _transfers(events: list[dict], event: str, skipped: str | None = None) -> set[str]:
    return {e["digest"] for e in events if e["event"] == event and (skipped is None or e["skipped"] == skipped)}


@pytest.fixture(scope="module")
def cached(registry, busybox_base, tmp_path_factory) -> tuple[Path, str, dict]:
    """A context whose build exported its cache to the registry: (context, cache ref, the first build's
    metadata)."""
    tmp_path = tmp_path_factory.mktemp("lazy")
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=busybox_base)})
    cache = f"{registry.host}/cache/lazy:buildcache"
    meta, _ = _build(tmp_path, "first", context, "--cache-to", f"type=registry,ref={cache}")
    return context, cache, meta


def test_an_all_cached_build_pushed_to_the_bases_registry_downloads_no_layer(registry, cached, tmp_path):
    context, cache, _ = cached
    meta, events = _build(tmp_path, "same", context, "--cache-from", cache, "-t", f"{registry.host}/app/lazy:1",
                          "--push")
    assert all(s["cached"] for s in meta["steps"] if s["instruction"].startswith("RUN"))
    layers = [layer["digest"] for layer in meta["layers"]]
    assert not set(layers) & _transfers(events, "transfer_started")  # neither pulled nor pushed: mounted
    assert set(layers) <= _transfers(events, "transfer_finished", "mounted")
    for digest in layers:  # and the pushed repository has every one
        resp = requests.head(f"http://{registry.host}/v2/app/lazy/blobs/{digest}", timeout=10)
        assert resp.status_code == 200, digest


def test_an_oci_layout_of_an_all_cached_build_gets_every_layer(cached, tmp_path):
    context, cache, first = cached
    dest = tmp_path / "oci"
    meta, events = _build(tmp_path, "layout", context, "--cache-from", cache, "--output", f"type=oci,dest={dest}")
    assert all(s["cached"] for s in meta["steps"] if s["instruction"].startswith("RUN"))
    layers = [layer["digest"] for layer in meta["layers"]]
    assert layers == [layer["digest"] for layer in first["layers"]]
    assert set(layers) <= _transfers(events, "transfer_started")  # downloaded: the layout holds the bytes
    for digest in layers:
        assert (dest / "blobs" / "sha256" / digest.partition(":")[2]).stat().st_size > 0


def test_a_push_to_another_registry_downloads_and_uploads_the_base_layers(other_registry, cached, tmp_path):
    context, cache, _ = cached
    meta, events = _build(tmp_path, "other", context, "--cache-from", cache, "-t",
                          f"{other_registry.host}/app/lazy:1", "--push")
    for layer in meta["layers"]:
        resp = requests.head(f"http://{other_registry.host}/v2/app/lazy/blobs/{layer['digest']}", timeout=10)
        assert resp.status_code == 200, layer
    assert not _transfers(events, "transfer_finished", "mounted")  # nothing to mount from on that registry


def test_a_layer_the_mirror_lacks_is_downloaded_from_the_next_candidate(registry, busybox_base, tmp_path):
    """The mirror served the base's manifest, and the layers are fetched later: a mirror that then fails for a
    layer is skipped as the pull would have skipped it, with the same warning."""
    from tests.support.images import push_busybox_base

    mirror = RegistryServer.start(tmp_path / "mirror")
    try:
        mirrored = push_busybox_base(mirror.host, tmp_path / "mirror-base")
        assert mirrored.partition("/")[2] == busybox_base.partition("/")[2]  # the same repository and tag
        repository = mirrored.partition("/")[2].rpartition(":")[0]
        manifest = requests.get(f"http://{mirror.host}/v2/{repository}/manifests/{mirrored.rpartition(':')[2]}",
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                   "application/vnd.docker.distribution.manifest.v2+json"},
                                timeout=10).json()
        for layer in manifest["layers"]:
            deleted = requests.delete(f"http://{mirror.host}/v2/{repository}/blobs/{layer['digest']}", timeout=10)
            assert deleted.status_code == 202, deleted.text
        context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo m > /m\n"})
        result = dockyard("build", "--progress", "plain", "--image-download-retry", "0", "--cache-dir",
                          str(tmp_path / "cache"), "--registry-map", f"{registry.host}={mirror.host}",
                          "--output", f"type=oci,dest={tmp_path / 'oci'}", str(context))
        assert result.returncode == 0, result.stderr
        for layer in manifest["layers"]:
            assert f"cannot download layer {layer['digest']} from {mirror.host}" in result.stderr
            assert f"trying {registry.host}" in result.stderr
    finally:
        mirror.stop()
