"""The registry cache (--cache-to / --cache-from / --cache-repo) through the command line, against the real
registry. Every second build gets a FRESH --cache-dir, so whatever hits came from the registry; each RUN appends
a line to a cache mount (under the cache dir, outside the image), so the log lists the RUNs that really ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import dockyard, write_context
from tests.support.registry import start_tls_htpasswd_registry

EPOCH = "1700000000"

DOCKERFILE = """\
FROM {base} AS tools
RUN --mount=type=cache,id=runs,target=/runs echo tools >> /runs/log && echo tool > /tool && touch /extra

FROM {base}
COPY a.txt /app/
RUN --mount=type=cache,id=runs,target=/runs echo a >> /runs/log && cp /app/a.txt /app/a.copy
COPY b.txt /app/
RUN --mount=type=cache,id=runs,target=/runs echo b >> /runs/log && cat /app/b.txt > /app/b.copy
COPY --from=tools /tool /tool
"""


def _context(tmp_path: Path, base: str) -> Path:
    return write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=base), "a.txt": "a\n",
                                             "b.txt": "b\n"})


def _build(tmp_path: Path, name: str, context: Path, *args: str, ok: bool = True) -> tuple[dict, list[dict], object]:
    """Build with a fresh cache dir named `name`: (metadata, progress events, the CLI result)."""
    out = tmp_path / name
    meta = out / "meta.json"
    result = dockyard("build", "--progress", "json", "--cache-dir", str(out / "cache"), "--metadata-file",
                      str(meta), *args, str(context), env={"SOURCE_DATE_EPOCH": EPOCH})
    if ok:
        assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return (json.loads(meta.read_text()) if meta.exists() else {}), events, result


def _cached(meta: dict) -> list:
    return [s["cached"] for s in meta["steps"] if s["instruction"].split()[0] in ("RUN", "COPY")]


def _runs(tmp_path: Path, name: str) -> list[str]:
    logs = [p for p in (tmp_path / name / "cache" / "mounts").rglob("log") if p.is_file()]
    return logs[0].read_text().splitlines() if logs else []


def _warnings(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["event"] == "message" and e["level"] == "warning"]


def _manifest(registry, ref: str) -> dict:
    repo, _, tag = ref.partition("/")[2].rpartition(":")
    resp = requests.get(f"http://{registry.host}/v2/{repo}/manifests/{tag}",
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _entries(registry, ref: str) -> list[dict]:
    repo = ref.partition("/")[2].rpartition(":")[0]
    config = _manifest(registry, ref)["config"]["digest"]
    return requests.get(f"http://{registry.host}/v2/{repo}/blobs/{config}", timeout=10).json()["entries"]


def test_round_trip_hits_every_step_runs_nothing_and_mounts_the_layers(registry, busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), f"{registry.host}/cache/roundtrip:buildcache"
    first, _, _ = _build(tmp_path, "one", context, "-t", f"{registry.host}/app/roundtrip:1", "--push",
                         "--cache-to", f"type=registry,ref={cache},mode=max")
    assert _cached(first) == [False] * 6 and _runs(tmp_path, "one") == ["tools", "a", "b"]
    manifest = _manifest(registry, cache)
    assert manifest["config"]["mediaType"] == "application/vnd.dockyard.cache.config.v1+json"
    assert len(manifest["layers"]) == 6  # every stage's steps (mode=max)
    assert len(_entries(registry, cache)) == 6

    second, events, _ = _build(tmp_path, "two", context, "-t", f"{registry.host}/app/roundtrip-two:1", "--push",
                               "--cache-from", f"type=registry,ref={cache}")
    assert _cached(second) == [True] * 6
    assert {s["cache_source"] for s in second["steps"] if s["cached"]} == {cache}
    assert _runs(tmp_path, "two") == []  # no RUN ran
    assert second["digest"] == first["digest"]
    # The cached layers were neither downloaded nor uploaded: the push (to another repository) mounted them from
    # the cache repository.
    step_layers = {s["layer"] for s in second["steps"] if s["layer"]}
    downloaded = {e["digest"] for e in events if e["event"] == "transfer_started"}
    assert not step_layers & downloaded
    # Nor were the base image's layers (no step needed its files): the push mounted them from its repository.
    assert not {l["digest"] for l in second["layers"]} & downloaded
    mounted = {e["digest"] for e in events if e["event"] == "transfer_finished" and e["skipped"] == "mounted"}
    assert {l["digest"] for l in second["layers"]} <= mounted
    assert step_layers & mounted
    assert any(e["event"] == "step_finished" and e["cached"] and e["cache_source"] == cache for e in events)

    # One changed context file misses from the COPY that reads it on; the RUN below it unpacks the cached
    # layers under it, downloading their blobs from the cache repository.
    (context / "b.txt").write_text("changed\n")
    third, _, _ = _build(tmp_path, "three", context, "--cache-from", cache, "--output",
                         f"type=oci,dest={tmp_path / 'oci'}")
    assert _cached(third) == [True, True, True, False, False, False]
    assert _runs(tmp_path, "three") == ["b"]
    assert (tmp_path / "oci" / "index.json").is_file()


def test_mode_min_exports_only_the_final_images_steps(registry, busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), f"{registry.host}/cache/min:buildcache"
    _build(tmp_path, "one", context, "--cache-to", f"type=registry,ref={cache},mode=min")
    assert len(_manifest(registry, cache)["layers"]) == 5  # not the tools stage's RUN
    assert [e["instruction"].split()[0] for e in _entries(registry, cache)] == ["COPY", "RUN", "COPY", "RUN", "COPY"]
    second, _, _ = _build(tmp_path, "two", context, "--cache-from", f"type=registry,ref={cache}")
    assert _cached(second) == [False, True, True, True, True, True]
    assert _runs(tmp_path, "two") == ["tools"]


def test_cache_repo_alias_reads_and_writes_the_cache_tag(registry, busybox_base, tmp_path):
    context, repo = _context(tmp_path, busybox_base), f"{registry.host}/cache/kaniko"
    _build(tmp_path, "one", context, "--cache-repo", repo)
    assert len(_manifest(registry, f"{repo}:cache")["layers"]) == 6
    second, _, _ = _build(tmp_path, "two", context, "--cache-repo", repo)
    assert _cached(second) == [True] * 6 and _runs(tmp_path, "two") == []


def test_missing_or_foreign_cache_is_a_warning_and_the_build_goes_on(registry, busybox_base, tmp_path):
    context = _context(tmp_path, busybox_base)
    meta, events, _ = _build(tmp_path, "one", context, "--cache-from", f"{registry.host}/cache/none:nothing",
                             "--cache-from", f"type=registry,ref={busybox_base}")
    assert _cached(meta) == [False] * 6
    warnings = _warnings(events)
    assert any(f"cannot import the build cache {registry.host}/cache/none:nothing" in w for w in warnings)
    assert any("not a dockyard cache" in w and busybox_base in w for w in warnings)


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory):
    server = start_tls_htpasswd_registry(tmp_path_factory.mktemp("cache-htpasswd"), {"owner": "owner-Pa55word"})
    yield server
    server.stop()


def test_unauthorized_cache_from_warns_and_refused_cache_to_fails_after_the_push(registry, locked_registry,
                                                                                   busybox_base, tmp_path):
    context = _context(tmp_path, busybox_base)
    ca = ["--registry-ca", f"{locked_registry.host}={locked_registry.ca_path}"]
    cache = f"{locked_registry.host}/cache/app:buildcache"
    meta, events, _ = _build(tmp_path, "one", context, *ca, "--cache-from", cache)
    assert _cached(meta) == [False] * 6
    assert any(f"cannot import the build cache {cache}" in w for w in _warnings(events))

    image = f"{registry.host}/app/refused:1"
    _, _, result = _build(tmp_path, "two", context, *ca, "-t", image, "--push", "--cache-to",
                          f"type=registry,ref={cache}", ok=False)
    assert result.returncode == 7, result.stderr
    assert f"cannot export the build cache to {cache}" in result.stderr
    assert f"the image was pushed to {image}" in result.stderr and "Traceback" not in result.stderr
    _manifest(registry, image)  # the image itself is there
    # ignore-error=true (BuildKit's) makes the same failure a warning.
    _, events, _ = _build(tmp_path, "three", context, *ca, "--cache-to", f"type=registry,ref={cache},ignore-error=true")
    assert any(f"cannot export the build cache to {cache}" in w for w in _warnings(events))
