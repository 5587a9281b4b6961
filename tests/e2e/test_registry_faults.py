"""Pulls and pushes through a fault-injecting proxy in front of the real registry: dropped connections in the
middle of blobs, 500s, 429 with Retry-After, slow answers. What arrives must still be exactly right (skopeo,
reading the registry directly, is the judge), and the proxy's request log shows how dockyard recovered.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from dockyard.errors import RegistryError
from dockyard.image.blobs import BlobStore
from dockyard.image.model import Platform
from dockyard.image.reference import parse_reference
from dockyard.registry import RegistryClient, pull_image, push_image
from tests.e2e.helpers import dockyard, write_context
from tests.support.fault_proxy import FaultProxy
from tests.support.images import one_layer_image

CHUNK = 64 << 10  # the client's smallest upload chunk: a 300 KB layer goes in five PATCHes


@pytest.fixture
def proxy(registry):
    server = FaultProxy(registry.port).start()
    yield server
    server.stop()


def make_client(**kwargs) -> RegistryClient:
    # No credentials from this machine; a tiny backoff keeps the tests fast.
    return RegistryClient(environ={"HOME": "/nonexistent"}, backoff=0.01, **kwargs)


def random_image(store: BlobStore, size: int = 300_000):
    return one_layer_image(store, {"random.bin": os.urandom(size)})


def skopeo_manifest(image: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


def assert_layer_in_registry(registry, image, store: BlobStore) -> None:
    """The registry (read directly, not through the proxy) holds the manifest and the exact layer bytes."""
    layer = image.layers[0]
    assert registry.blob_data_path(layer.digest).read_bytes() == store.read_bytes(layer.digest)


def blob_path(digest: str) -> str:
    return f"/blobs/{digest}$"


# --- pull --------------------------------------------------------------------------------------------------

def test_pull_resumes_a_cut_download_and_survives_500s(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    push_image(make_client(), image, store, [parse_reference(f"{registry.host}/faults/pull:1")])
    layer = image.layers[0]
    proxy.add("status", method="GET", path="/manifests/1$", status=500)
    proxy.add("cut_response", method="GET", path=blob_path(layer.digest), after=100_000)
    proxy.add("status", method="GET", path=blob_path(layer.digest), skip=1, status=502)

    target = BlobStore(tmp_path / "pulled")
    pulled = pull_image(make_client(), parse_reference(f"{proxy.host}/faults/pull:1"), Platform(), target)

    assert pulled.digest == image.digest
    assert target.read_bytes(layer.digest) == store.read_bytes(layer.digest)
    gets = proxy.requests("GET", blob_path(layer.digest))
    assert [g.fault for g in gets] == ["cut_response", "status", None]
    assert gets[-1].range == "bytes=100000-"  # resumed where the connection broke, not from the start


def test_pull_restarts_when_the_registry_ignores_range(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    push_image(make_client(), image, store, [parse_reference(f"{registry.host}/faults/norange:1")])
    layer = image.layers[0]
    proxy.add("cut_response", method="GET", path=blob_path(layer.digest), after=50_000)
    proxy.add("strip_range", method="GET", path=blob_path(layer.digest), skip=1)

    target = BlobStore(tmp_path / "pulled")
    pull_image(make_client(), parse_reference(f"{proxy.host}/faults/norange:1"), Platform(), target)

    assert target.read_bytes(layer.digest) == store.read_bytes(layer.digest)
    assert [g.fault for g in proxy.requests("GET", blob_path(layer.digest))] == ["cut_response", "strip_range"]


def test_slow_answers_time_out_and_are_retried(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store, 1000)
    push_image(make_client(), image, store, [parse_reference(f"{registry.host}/faults/slow:1")])
    proxy.add("delay", method="GET", path="/manifests/1$", seconds=1.5)

    client = make_client(timeout=(5, 0.5))
    pulled = pull_image(client, parse_reference(f"{proxy.host}/faults/slow:1"), Platform(),
                        BlobStore(tmp_path / "pulled"))
    assert pulled.digest == image.digest
    assert [r.fault for r in proxy.requests("GET", "/manifests/1$")] == ["delay", None]


def test_corrupted_blob_on_pull_fails_naming_it_and_leaves_nothing(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store, 5000)
    push_image(make_client(), image, store, [parse_reference(f"{registry.host}/faults/corrupt:1")])
    layer = image.layers[0]
    data = bytearray(registry.blob_data_path(layer.digest).read_bytes())
    data[100] ^= 0x01
    registry.blob_data_path(layer.digest).write_bytes(bytes(data))

    target = BlobStore(tmp_path / "pulled")
    with pytest.raises(RegistryError) as err:
        pull_image(make_client(), parse_reference(f"{proxy.host}/faults/corrupt:1"), Platform(), target)
    assert layer.digest in str(err.value) and "corrupt" in str(err.value)
    assert not target.has(layer.digest)
    assert not any((target.root / "tmp").iterdir())


# --- push --------------------------------------------------------------------------------------------------

def test_chunked_upload_resumes_from_the_registrys_offset(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    assert image.layers[0].size > 4 * CHUNK
    proxy.add("status", method="PATCH", skip=1, status=500)  # the second chunk: a 500 ...
    proxy.add("cut_request", method="PATCH", skip=2, after=1000)  # ... then a connection cut mid-chunk
    ref = parse_reference(f"{proxy.host}/faults/chunked:1")

    assert push_image(make_client(upload_chunk_size=CHUNK), image, store, [ref]) == image.digest

    assert skopeo_manifest(f"{registry.host}/faults/chunked:1") == image.manifest_json()
    assert_layer_in_registry(registry, image, store)
    ranges = [p.content_range for p in proxy.requests("PATCH")]
    second = f"{CHUNK}-{2 * CHUNK - 1}"
    # After each fault: a status query, then the same chunk again from the registry's offset (not from 0).
    assert ranges[:5] == [f"0-{CHUNK - 1}", second, second, second, f"{2 * CHUNK}-{3 * CHUNK - 1}"]
    assert ranges[-1].endswith(f"-{image.layers[0].size - 1}")
    assert len(proxy.requests("GET", "/blobs/uploads/")) == 2
    assert len(proxy.requests("POST", "/blobs/uploads/")) == 2  # one session for the layer, one for the config


def test_chunked_upload_starts_over_when_the_session_breaks(registry, proxy, tmp_path):
    """The registry stored a chunk but its answer was lost: distribution then cancels the session (our state
    is stale), so the upload starts a new one and the image is still right."""
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    proxy.add("drop_response", method="PATCH")
    ref = parse_reference(f"{proxy.host}/faults/restart:1")

    assert push_image(make_client(upload_chunk_size=CHUNK), image, store, [ref]) == image.digest

    assert skopeo_manifest(f"{registry.host}/faults/restart:1") == image.manifest_json()
    assert_layer_in_registry(registry, image, store)
    assert len(proxy.requests("POST", "/blobs/uploads/")) == 3  # the layer twice, the config once


def test_monolithic_upload_cut_midway_and_429_are_retried(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    proxy.add("cut_request", method="PUT", path="/blobs/uploads/", after=10_000)
    proxy.add("status", method="PUT", path="/manifests/", status=429, headers={"Retry-After": "1"})
    ref = parse_reference(f"{proxy.host}/faults/mono:1")

    started = time.monotonic()
    assert push_image(make_client(), image, store, [ref]) == image.digest
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured over the tiny backoff

    assert skopeo_manifest(f"{registry.host}/faults/mono:1") == image.manifest_json()
    assert_layer_in_registry(registry, image, store)
    assert [r.fault for r in proxy.requests("PUT", "/manifests/1$")] == ["status", None]
    assert not proxy.requests("PATCH")  # small blobs go in one PUT


def test_lost_answer_to_the_final_put_is_not_an_error(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    layer = image.layers[0]
    proxy.add("drop_response", method="PUT", path="/blobs/uploads/", query=layer.digest.replace(":", "%3A"))
    ref = parse_reference(f"{proxy.host}/faults/lostput:1")

    assert push_image(make_client(), image, store, [ref]) == image.digest
    assert_layer_in_registry(registry, image, store)
    # The blob was found by HEAD after the lost answer: it was not uploaded twice.
    layer_puts = [r for r in proxy.requests("PUT", "/blobs/uploads/") if r.query.get("digest") == [layer.digest]]
    assert len(layer_puts) == 1


def test_final_error_after_the_last_retry(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store, 1000)
    proxy.add("status", method="PUT", path="/blobs/uploads/", status=503, times=-1)
    ref = parse_reference(f"{proxy.host}/faults/giveup:1")

    with pytest.raises(RegistryError) as err:
        push_image(make_client(retries=2, max_parallel=1), image, store, [ref])
    text = str(err.value)
    assert proxy.host in text and "faults/giveup" in text and "3 attempts" in text and "HTTP 503" in text
    assert any(blob.digest in text for blob in (image.layers[0], image.config_descriptor()))
    assert "--push-retry" in text


# --- cross-repository mounts -----------------------------------------------------------------------------

def test_push_to_two_repositories_uploads_each_blob_once(registry, proxy, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = random_image(store)
    refs = [parse_reference(f"{proxy.host}/faults/first:1"), parse_reference(f"{proxy.host}/faults/second:1")]

    push_image(make_client(), image, store, refs)

    for name in ("first", "second"):
        assert skopeo_manifest(f"{registry.host}/faults/{name}:1") == image.manifest_json()
    assert len(proxy.requests("PUT", "/blobs/uploads/")) == 2  # the layer and the config, once each
    mounts = [r for r in proxy.requests("POST", "/faults/second/blobs/uploads/") if "mount" in r.query]
    assert sorted(m.query["mount"][0] for m in mounts) == sorted([image.layers[0].digest,
                                                                   image.config_descriptor().digest])
    assert all(m.query["from"] == ["faults/first"] for m in mounts)


def test_build_mounts_base_layers_instead_of_uploading_them(registry, busybox_base, proxy, tmp_path):
    base = busybox_base.replace(registry.host, proxy.host)
    base_layers = [d["digest"] for d in skopeo_manifest(busybox_base)["layers"]]
    proxy.add("status", method="PUT", path="/blobs/uploads/", status=500)  # a fault on a new blob, too
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base}\nRUN echo hi > /hi.txt\n"})
    tag = f"{proxy.host}/faults/built:1"

    result = dockyard("build", "--progress=plain", "-t", tag, "--push", str(context))

    assert result.returncode == 0, result.stderr
    manifest = skopeo_manifest(f"{registry.host}/faults/built:1")
    assert [d["digest"] for d in manifest["layers"]][:len(base_layers)] == base_layers
    for digest in base_layers:
        assert not [r for r in proxy.requests("PUT") if r.query.get("digest") == [digest]]
        mounts = [r for r in proxy.requests("POST", "/faults/built/blobs/uploads/")
                  if r.query.get("mount") == [digest]]
        assert mounts and mounts[0].query["from"] == ["base/busybox"]
    assert [r.fault for r in proxy.requests("PUT", "/blobs/uploads/")][:2] == ["status", None]
