"""The local layer cache through the command line: a second identical build takes every step from the cache
and runs no RUN (each RUN appends a line to a cache mount, which lives outside the image, so the file counts
the RUNs that really ran); what a step reads decides whether it hits; --no-cache; concurrent builds sharing one
cache directory; and the cached build's image equals the uncached one."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from tests.e2e.helpers import dockyard, write_context

EPOCH = "1700000000"

DOCKERFILE = """\
FROM {base}
ARG USED=one
WORKDIR /app
COPY a.txt b.txt /app/
RUN --mount=type=cache,id=runs,target=/runs echo "a $USED" >> /runs/log && cp /app/a.txt /app/a.copy
COPY c.txt /app/
RUN --mount=type=secret,id=token,required=false --mount=type=cache,id=runs,target=/runs \\
    echo b >> /runs/log && cat /app/c.txt > /app/c.copy
ARG LATE=x
ENV MODE=release
"""


def _context(tmp_path: Path, base: str) -> Path:
    return write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=base), "a.txt": "a\n",
                                             "b.txt": "b\n", "c.txt": "c\n"})


def _build(context: Path, cache: Path, out: Path, *args: str, env: dict | None = None) -> dict:
    meta = out / "meta.json"
    result = dockyard("build", "-q", "--cache-dir", str(cache), "--metadata-file", str(meta),
                      "--output", f"type=oci,dest={out / 'oci'}", *args, str(context),
                      env={"SOURCE_DATE_EPOCH": EPOCH, **(env or {})})
    assert result.returncode == 0, result.stderr
    return json.loads(meta.read_text())


def _cached(meta: dict) -> list:
    """`cached` of each RUN/COPY step, in order."""
    return [s["cached"] for s in meta["steps"] if s["instruction"].split()[0] in ("RUN", "COPY")]


def _runs(cache: Path) -> list[str]:
    logs = [p for p in (cache / "mounts").rglob("log") if p.is_file()]
    return logs[0].read_text().splitlines() if logs else []


def test_second_identical_build_hits_every_step_and_runs_nothing(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "cache"
    first = _build(context, cache, tmp_path / "one")
    assert _cached(first) == [False] * 4
    assert first["cache"] == {"hits": 0, "misses": 4}
    assert _runs(cache) == ["a one", "b"]
    second = _build(context, cache, tmp_path / "two")
    assert _cached(second) == [True] * 4
    assert _runs(cache) == ["a one", "b"]  # no RUN ran again
    assert second["digest"] == first["digest"]  # with SOURCE_DATE_EPOCH: the cached image is the same image
    assert (cache / "layers" / "sha256").is_dir() and any((cache / "layers" / "sha256").iterdir())


def test_when_every_step_is_cached_nothing_is_unpacked(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "cache"
    _build(context, cache, tmp_path / "one")
    import shutil

    shutil.rmtree(cache / "layers")
    again = _build(context, cache, tmp_path / "two")
    assert _cached(again) == [True] * 4
    assert not (cache / "layers" / "sha256").exists()  # neither the base's layers nor the steps' were unpacked
    # A change at the last step unpacks the root below it (from the blobs) and runs only that step.
    (context / "c.txt").write_text("changed\n")
    assert _cached(_build(context, cache, tmp_path / "three")) == [True, True, False, False]
    assert _runs(cache) == ["a one", "b", "b"]


def test_what_a_step_reads_decides_a_hit(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "cache"
    base = _build(context, cache, tmp_path / "base")
    # Times only: still every step cached.
    os.utime(context / "a.txt", (1, 1))
    os.utime(context / "c.txt", None)
    assert _cached(_build(context, cache, tmp_path / "touch")) == [True] * 4
    # A changed file misses exactly from the COPY that reads it on.
    (context / "c.txt").write_text("changed\n")
    assert _cached(_build(context, cache, tmp_path / "edit")) == [True, True, False, False]
    (context / "c.txt").write_text("c\n")
    # A build arg the first RUN sees misses from there; one declared after every RUN (LATE) hits.
    assert _cached(_build(context, cache, tmp_path / "used", "--build-arg", "USED=two")) == [True, False, False, False]
    late = _build(context, cache, tmp_path / "late", "--build-arg", "LATE=y")
    assert _cached(late) == [True] * 4
    # A secret's value is not in the key, its id is.
    secret = tmp_path / "secret"
    secret.write_text("one")
    assert _cached(_build(context, cache, tmp_path / "s1", "--secret", f"id=token,src={secret}")) == [True] * 4
    secret.write_text("two")
    assert _cached(_build(context, cache, tmp_path / "s2", "--secret", f"id=token,src={secret}")) == [True] * 4
    renamed = context / "Dockerfile"
    renamed.write_text(DOCKERFILE.format(base=busybox_base).replace("id=token", "id=other"))
    assert _cached(_build(context, cache, tmp_path / "s3")) == [True, True, True, False]
    # --no-cache runs everything again, and records it.
    assert _cached(_build(context, cache, tmp_path / "nocache", "--no-cache")) == [False] * 4
    assert base["cache"]["misses"] == 4


def test_concurrent_builds_share_one_cache(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "cache"
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            results[n] = _build(context, cache, tmp_path / f"b{n}")
        except BaseException as exc:  # reported below, with the thread's assertion text
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r["digest"] for r in results.values()}) == 1
    assert not list((cache / "layers" / "tmp").iterdir()) if (cache / "layers" / "tmp").exists() else True
    assert _cached(_build(context, cache, tmp_path / "after")) == [True] * 4
    listing = dockyard("cache", "ls", "--cache-dir", str(cache))
    assert listing.returncode == 0, listing.stderr
    assert "RUN" in listing.stdout and "COPY" in listing.stdout


def test_cache_prune(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "cache"
    _build(context, cache, tmp_path / "one")
    kept = dockyard("cache", "prune", "--cache-dir", str(cache), "--older-than", "1h")
    assert kept.returncode == 0, kept.stderr
    assert _cached(_build(context, cache, tmp_path / "two")) == [True] * 4
    pruned = dockyard("cache", "prune", "--cache-dir", str(cache), "--all")
    assert pruned.returncode == 0, pruned.stderr
    assert not list((cache / "steps").glob("*.json"))
    assert _cached(_build(context, cache, tmp_path / "three")) == [False] * 4
    bad = dockyard("cache", "prune", "--cache-dir", str(cache), "--older-than", "soon")
    assert bad.returncode == 2 and "duration" in bad.stderr


def test_copy_from_a_stage_is_keyed_by_that_stage(busybox_base, tmp_path):
    dockerfile = f"""\
FROM {busybox_base} AS builder
COPY tool.txt /out/tool.txt
RUN --mount=type=cache,id=runs,target=/runs echo builder >> /runs/log
FROM {busybox_base}
COPY other.txt /other.txt
COPY --from=builder /out/ /tools/
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile, "tool.txt": "1\n", "other.txt": "o\n"})
    cache = tmp_path / "cache"
    assert _cached(_build(context, cache, tmp_path / "one")) == [False] * 4
    assert _cached(_build(context, cache, tmp_path / "two")) == [True] * 4
    (context / "tool.txt").write_text("2\n")
    assert _cached(_build(context, cache, tmp_path / "three")) == [False, False, True, False]
    assert _runs(cache) == ["builder", "builder"]


def test_an_unusable_cache_dir_is_a_usage_error(busybox_base, tmp_path):
    context = _context(tmp_path, busybox_base)
    (tmp_path / "file").write_text("not a directory")
    result = dockyard("build", "-q", "--cache-dir", str(tmp_path / "file" / "cache"), str(context))
    assert result.returncode == 2
    assert "cache directory" in result.stderr and "--cache-dir" in result.stderr and "Traceback" not in result.stderr


def test_a_base_layer_whose_content_does_not_match_its_diff_id_is_refused(registry, tmp_path):
    """The unpacked form of a layer is shared by every later build, so it must hold what the config's diff_id
    says: a base image (or registry cache) naming the wrong diff_id fails the build and leaves nothing behind."""
    from dataclasses import replace

    from tests.support.images import _config, _Layout, _skopeo_push, busybox_layer

    layer = busybox_layer()
    forged = replace(layer, diff_id="sha256:" + "0" * 64)
    layout = _Layout(tmp_path / "forged-oci")
    layout.tag(layout.image([forged], _config("amd64", None, [{"created_by": "forged"}])), "1")
    ref = f"{registry.host}/base/forged:1"
    _skopeo_push(layout.root, "1", ref, all_images=False, workdir=tmp_path)
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {ref}\nRUN true\n"})
    cache = tmp_path / "cache"
    result = dockyard("build", "--cache-dir", str(cache), "--output", f"type=oci,dest={tmp_path / 'oci'}",
                      str(context))
    assert result.returncode == 6, result.stderr
    assert f"not the diff_id sha256:{'0' * 64}" in result.stderr and "Traceback" not in result.stderr
    assert layer.diff_id in result.stderr
    unpacked = cache / "layers" / "sha256"
    assert not unpacked.exists() or not list(unpacked.iterdir())
    assert not list((cache / "layers" / "tmp").iterdir())


def test_prune_removes_old_blobs_no_entry_names(busybox_base, tmp_path):
    context, cache = _context(tmp_path, busybox_base), tmp_path / "cache"
    _build(context, cache, tmp_path / "one")
    blobs = cache / "store" / "blobs" / "sha256"
    two_days_ago = time.time() - 2 * 86400
    for blob in blobs.iterdir():
        os.utime(blob, (two_days_ago, two_days_ago))
    named = {json.loads(p.read_text())["layer"]["digest"].split(":")[1] for p in (cache / "steps").glob("*.json")}
    assert named and named < {b.name for b in blobs.iterdir()}
    assert dockyard("cache", "prune", "--cache-dir", str(cache), "--older-than", "1d").returncode == 0
    assert {b.name for b in blobs.iterdir()} == named  # the base's and the config blobs went; the steps' stayed
    assert _cached(_build(context, cache, tmp_path / "two")) == [True] * 4  # the base is pulled again
