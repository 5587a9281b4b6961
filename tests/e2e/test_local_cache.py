"""The local cache (--cache-to type=local,dest=DIR / --cache-from type=local,src=DIR) through the command line:
the directory a GitLab `cache:` path or a Jenkins workspace keeps between jobs. Every second build gets a FRESH
--cache-dir, so whatever hits came from the directory; each RUN appends a line to a cache mount (under the cache
dir, outside the image), so the log lists the RUNs that really ran. umoci reads the directory back as the OCI
layout it claims to be."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.cache.local import read_local_cache
from dockyard.errors import OutputError
from tests.e2e.helpers import dockyard, write_context

EPOCH = "1700000000"

DOCKERFILE = """\
FROM {base} AS tools
RUN --mount=type=cache,id=runs,target=/runs echo tools >> /runs/log && echo tool > /tool

FROM {base}
COPY a.txt /app/
RUN --mount=type=cache,id=runs,target=/runs echo a >> /runs/log && cp /app/a.txt /app/a.copy
COPY b.txt /app/
RUN --mount=type=cache,id=runs,target=/runs echo b >> /runs/log && cat /app/b.txt > /app/b.copy
COPY --from=tools /tool /tool
"""


def _context(tmp_path: Path, base: str, b: str = "b\n") -> Path:
    return write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=base), "a.txt": "a\n", "b.txt": b})


def _build(tmp_path: Path, name: str, context: Path, *args: str, ok: bool = True) -> tuple[dict, list[dict], object]:
    """Build with a fresh cache dir named `name`: (metadata, progress events, the CLI result)."""
    out = tmp_path / name
    meta = out / "meta.json"
    result = dockyard("build", "--progress", "json", "--cache-dir", str(out / "cache"), "--metadata-file",
                      str(meta), "--output", f"type=oci,dest={out / 'image'}", *args, str(context),
                      env={"SOURCE_DATE_EPOCH": EPOCH})
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


def _layout(directory: Path) -> tuple[dict, dict, set[str]]:
    """index.json, the cache manifest it names under `latest`, and the blob files present."""
    index = json.loads((directory / "index.json").read_text())
    [top] = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "latest"]
    manifest = json.loads((directory / "blobs" / "sha256" / top["digest"].split(":")[1]).read_text())
    blobs = {"sha256:" + p.name for p in (directory / "blobs" / "sha256").iterdir()}
    return top, manifest, blobs


def test_mode_max_round_trip_through_a_fresh_cache_dir_runs_nothing(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "ci-cache"
    first, _, _ = _build(tmp_path, "one", context, "--cache-to", f"type=local,dest={cache},mode=max")
    assert _cached(first) == [False] * 6 and _runs(tmp_path, "one") == ["tools", "a", "b"]
    top, manifest, blobs = _layout(cache)
    assert json.loads((cache / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert manifest["config"]["mediaType"] == "application/vnd.dockyard.cache.config.v1+json"
    config = json.loads((cache / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    assert any("echo tools" in e["instruction"] for e in config["entries"])  # mode=max: the tools stage too
    assert {e["layer"] for e in config["entries"]} - {None} == set(range(len(manifest["layers"])))
    assert blobs == {top["digest"], manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])}
    # umoci reads the layout (it lists the tag) although the manifest is a cache, not an image.
    listed = subprocess.run(["umoci", "ls", "--layout", str(cache)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.split() == ["latest"], listed.stderr

    # digest= names the same manifest as the tag; a tag the directory lacks is an error that names it.
    assert read_local_cache(cache, "other", top["digest"]) == read_local_cache(cache, "latest")
    with pytest.raises(OutputError, match="has no tag 'other'"):
        read_local_cache(cache, "other")

    second, events, _ = _build(tmp_path, "two", context, "--cache-from", f"type=local,src={cache}")
    assert _cached(second) == [True] * 6 and _runs(tmp_path, "two") == []
    assert second["digest"] == first["digest"]  # the same image, from the cache's layers
    hits = {e.get("cache_source") for e in events if e["event"] == "step_finished" and e.get("cached")}
    assert hits == {f"the local cache {cache}"}


def test_mode_min_keeps_only_the_final_stages_steps(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "ci-cache"
    _build(tmp_path, "one", context, "--cache-to", f"type=local,dest={cache}")  # mode=min is the default
    _top, manifest, _blobs = _layout(cache)
    config = json.loads((cache / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    instructions = [e["instruction"] for e in config["entries"]]
    assert not any("echo tools" in i for i in instructions) and any("echo b" in i for i in instructions)
    second, _, _ = _build(tmp_path, "two", context, "--cache-from", f"type=local,src={cache}")
    assert _runs(tmp_path, "two") == ["tools"]  # the tools stage is not in a mode=min cache: it runs again
    assert _cached(second)[1:] == [True] * 5


def test_one_directory_read_and_written_as_a_ci_cache_keeps_only_the_last_build(busybox_base, tmp_path):
    """GitLab's `cache:` restores the directory before the job and saves it after: src and dest are one path.
    The second build changes b.txt: its cache replaces the first's, and the first's stale layers are deleted."""
    cache = tmp_path / "ci-cache"
    both = ["--cache-from", f"type=local,src={cache}", "--cache-to", f"type=local,dest={cache},mode=max"]
    _first, events, _ = _build(tmp_path, "one", _context(tmp_path, busybox_base), *both)
    # The first job: nothing to read is said, neither a warning nor a failure.
    said = [e.get("text") or "" for e in events]
    assert any(t.startswith(f"the local cache {cache} has nothing to import yet") for t in said)
    assert not _warnings(events)
    _top, old_manifest, _ = _layout(cache)
    shutil.rmtree(tmp_path / "ctx")
    second, _, _ = _build(tmp_path, "two", _context(tmp_path, busybox_base, b="changed\n"), *both)
    assert _runs(tmp_path, "two") == ["b"]  # everything before the COPY b.txt came from the directory
    top, manifest, blobs = _layout(cache)
    assert blobs == {top["digest"], manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])}
    assert old_manifest["layers"] != manifest["layers"]
    third, _, _ = _build(tmp_path, "three", tmp_path / "ctx", "--cache-from", f"type=local,src={cache}")
    assert _runs(tmp_path, "three") == [] and third["digest"] == second["digest"]


def test_a_broken_local_cache_is_a_warning_and_the_build_goes_on(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "ci-cache"
    _build(tmp_path, "one", context, "--cache-to", f"type=local,dest={cache},mode=max")
    _top, manifest, _ = _layout(cache)
    (cache / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).unlink()
    second, events, _ = _build(tmp_path, "two", context, "--cache-from", f"type=local,src={cache}")
    assert _runs(tmp_path, "two") == ["tools", "a", "b"]
    assert any(f"ignoring the build cache the local cache {cache}" in w and "is missing" in w
               for w in _warnings(events)), _warnings(events)


def test_dest_that_is_not_a_layout_is_refused_and_left_alone(busybox_base, tmp_path):
    context, dest = _context(tmp_path, busybox_base), tmp_path / "not-a-cache"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    _meta, _events, result = _build(tmp_path, "one", context, "--cache-to", f"type=local,dest={dest}", ok=False)
    assert result.returncode != 0 and "not an OCI layout" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
