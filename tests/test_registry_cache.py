"""The registry cache's option parsing and format: --cache-from/--cache-to/--cache-repo values, the config
round trip, a corrupt or hostile cache config (read from the real registry) ignored with a warning, and
concurrent exports to one ref."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dockyard.cache.external import import_caches
from dockyard.cache.remote import CACHE_CONFIG, cache_documents, export_cache, read_cache
from dockyard.cache.store import new_entry
from dockyard.errors import UsageError
from dockyard.events import Events
from dockyard.image.blobs import BlobStore
from dockyard.image.model import Descriptor, HistoryEntry, Layer
from dockyard.image.reference import parse_reference
from dockyard.options import RegistryCache
from dockyard.registry.client import RegistryClient

KEY = "sha256:" + "1" * 64
DIFF = "sha256:" + "2" * 64


def test_cache_flags_parse_buildkit_syntax():
    assert RegistryCache.parse("type=registry,ref=reg:5000/app:cache,mode=max", "--cache-to") == \
        RegistryCache("reg:5000/app:cache", "max")
    assert RegistryCache.parse("reg:5000/app:cache", "--cache-from") == RegistryCache("reg:5000/app:cache")
    assert RegistryCache.parse("type=registry,ref=reg/app:c,ignore-error=true", "--cache-to").ignore_error
    assert RegistryCache.from_cache_repo("reg:5000/team/cache") == RegistryCache("reg:5000/team/cache:cache", "max")


@pytest.mark.parametrize("text, flag, words", [
    ("type=s3,bucket=b", "--cache-to", "type=s3 is not supported"),
    ("type=local", "--cache-to", "needs dest=DIRECTORY"),
    ("type=local,src=/tmp/c", "--cache-to", "unexpected 'src=/tmp/c'"),
    ("type=local,dest=/tmp/c,mode=max", "--cache-from", "unexpected 'dest=/tmp/c'"),
    ("type=gha,version=3", "--cache-from", "version must be 1 or 2"),
    ("type=gha,ref=reg/app:c", "--cache-to", "unexpected 'ref=reg/app:c'"),
    ("type=registry", "--cache-to", "needs ref="),
    ("type=registry,ref=reg/app:c,mode=all", "--cache-to", "mode must be min or max"),
    ("type=registry,ref=reg/app:c,mode=max", "--cache-from", "unexpected 'mode=max'"),
    ("type=registry,ref=reg/app@sha256:" + "0" * 64, "--cache-to", "under a tag"),
    ("type=registry,ref=Bad Ref", "--cache-from", "invalid --cache-from"),
])
def test_bad_cache_flags_are_usage_errors(text, flag, words):
    with pytest.raises(UsageError) as info:
        RegistryCache.parse(text, flag)
    assert words in info.value.render()


def test_cache_repo_takes_no_tag():
    with pytest.raises(UsageError, match="without tag"):
        RegistryCache.from_cache_repo("reg/app:mytag")


def test_config_lists_entries_and_shares_repeated_layers():
    layer = Layer(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:" + "3" * 64, 10), DIFF)
    entries = [new_entry(KEY, layer, HistoryEntry(created_by="RUN x"), {"Env": ["A=1"]}, "RUN x"),
               new_entry("sha256:" + "4" * 64, layer, None, {}, "COPY --from=a / /"),
               new_entry("sha256:" + "5" * 64, None, None, {}, "WORKDIR (directories)")]
    config, layers = cache_documents(entries)
    doc = json.loads(config)
    assert layers == [layer.descriptor]
    assert [e["layer"] for e in doc["entries"]] == [0, 0, None]
    assert doc["entries"][0]["diffID"] == DIFF and doc["entries"][0]["config"] == {"Env": ["A=1"]}


def _push_cache(registry, repo: str, config: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    base = f"http://{registry.host}/v2/{repo}"
    start = requests.post(f"{base}/blobs/uploads/", timeout=10)
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    url = location if location.startswith("http") else f"http://{registry.host}{location}"
    assert requests.put(f"{url}{sep}digest={digest}", data=config, timeout=10).status_code == 201
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": CACHE_CONFIG, "digest": digest, "size": len(config)}, "layers": []}
    resp = requests.put(f"{base}/manifests/bad", data=json.dumps(manifest),
                        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
    assert resp.status_code == 201, resp.text
    return f"{registry.host}/{repo}:bad"


@pytest.mark.parametrize("config", [
    b"not json",
    json.dumps({"format": "dockyard-registry-cache/1", "keyFormat": "dockyard-step-cache/1",
                "entries": [{"key": "sha256:../../../etc/x", "created": 0, "layer": None, "config": {}}]}).encode(),
    json.dumps({"format": "dockyard-registry-cache/1", "keyFormat": "dockyard-step-cache/1",
                "entries": [{"key": KEY, "created": 0, "layer": 3, "diffID": DIFF, "config": {}}]}).encode(),
    json.dumps({"format": "other/9", "entries": []}).encode(),
])
def test_corrupt_or_hostile_cache_is_ignored_with_a_warning(registry, tmp_path, config):
    ref = _push_cache(registry, "cache/corrupt", config)
    seen = []
    cache = import_caches(RegistryClient, [RegistryCache.parse(ref, "--cache-from")], BlobStore(tmp_path / "store"),
                          Events(seen.append), None)
    assert cache.lookup(KEY) is None
    warnings = [e.text for e in seen if getattr(e, "level", "") == "warning"]
    assert len(warnings) == 1 and f"ignoring the build cache {ref}" in warnings[0]


def test_concurrent_exports_to_one_ref_leave_one_writers_complete_cache(registry, tmp_path):
    store = BlobStore(tmp_path / "store")
    client = RegistryClient()
    ref = parse_reference(f"{registry.host}/cache/race:buildcache")
    writers = []
    for n in range(2):
        blob = f"layer {n}".encode() * 1000
        layer = Layer(Descriptor("application/vnd.oci.image.layer.v1.tar", store.put_bytes(blob), len(blob)), DIFF)
        writers.append([new_entry(f"sha256:{n}" + "0" * 63, layer, None, {}, f"RUN {n}")])
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(export_cache, client, store, ref, writers[i % 2]) for i in range(8)]:
            future.result()
    keys = [e.key for e in read_cache(client, ref, BlobStore(tmp_path / "fresh"))]
    assert keys in ([e.key for e in writers[0]], [e.key for e in writers[1]])
