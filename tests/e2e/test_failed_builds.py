"""A build whose step fails leaves nothing behind (no work directory, no cache lock held) and keeps the steps
it finished before the failure in the cache, so the next build does not run them again."""

from __future__ import annotations

import json
from pathlib import Path

from dockyard.cache.locking import cache_lock_path, file_lock
from dockyard.errors import StepFailed

from tests.e2e.helpers import dockyard, write_context


def test_a_failed_step_leaves_no_work_dir_and_keeps_the_finished_steps_cached(busybox_base, tmp_path):
    cache, work = tmp_path / "cache", tmp_path / "work"
    first = "RUN echo made > /made.txt\n"
    failing = write_context(tmp_path / "failing", {
        "Dockerfile": f"FROM {busybox_base}\n{first}RUN echo failing; exit 3\n"})
    failed = dockyard("build", "--cache-dir", str(cache), "--work-dir", str(work), str(failing))
    assert failed.returncode == StepFailed.exit_code, failed.stderr
    assert "Dockerfile:3" in failed.stderr  # the failing RUN's line
    assert list(work.iterdir()) == []
    with file_lock(cache_lock_path(cache), wait=False):  # raises CacheBusy while a build holds it
        pass

    passing = write_context(tmp_path / "passing", {"Dockerfile": f"FROM {busybox_base}\n{first}"})
    meta = tmp_path / "meta.json"
    done = dockyard("build", "--cache-dir", str(cache), "--work-dir", str(work), "--metadata-file", str(meta),
                    "--output", f"type=oci,dest={tmp_path / 'oci'}", str(passing))
    assert done.returncode == 0, done.stderr
    steps = json.loads(meta.read_text())["steps"]
    assert [(s["instruction"], s["cached"]) for s in steps if s["instruction"].startswith("RUN")] == \
        [(first.strip(), True)]
    assert list(Path(work).iterdir()) == []
