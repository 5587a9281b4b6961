"""A build session (core/session.py) takes the build's resources when it is entered and releases every one of
them when it is left, however it is left: the work directory and its lock, the shared cache lock, the snapshot
thread; a finished step's directory is published to the layer cache before the work directory goes. Entering
a session enters a private mount namespace (namespaces isolation), so each session runs in a child process of
its own, never in the test runner."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from dockyard.cache.locking import CacheBusy, cache_lock_path, file_lock
from dockyard.workdirs import PREFIX

CHAIN = "sha256:" + "ab" * 32

SESSION = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from dockyard.cache.locking import CacheBusy, cache_lock_path, file_lock
    from dockyard.errors import DockyardError
    from dockyard.options import BuildOptions
    from dockyard.session import BuildSession

    context, cache, work, chain = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

    def cache_locked():
        try:
            with file_lock(cache_lock_path(cache), wait=False):
                return False
        except CacheBusy:
            return True

    seen = {}
    session = BuildSession(BuildOptions(context=context, cache_dir=cache, work_dir=work, environ={}))
    try:
        with session:
            seen["work_dirs_inside"] = [p.name for p in work.iterdir()]
            seen["cache_locked_inside"] = cache_locked()
            step = session.workspace.root / "finished-step"
            step.mkdir()
            (step / "made-by-the-step").write_text("kept")
            session.layer_cache.adopt(str(step), chain)  # as a stage's finished step is
            raise RuntimeError("a later step failed")
    except (RuntimeError, DockyardError) as exc:
        seen["error"] = f"{type(exc).__name__}: {exc}"
    try:
        session.snapshots.submit(print)
        seen["snapshots_open"] = True
    except RuntimeError:
        seen["snapshots_open"] = False
    except AttributeError:  # never made: the session failed before
        seen["snapshots_open"] = None
    seen["cache_locked_after"] = cache_locked()
    print(json.dumps(seen))
""")


def _session(tmp_path: Path, files: dict[str, str]) -> tuple[dict, Path, Path]:
    context, cache, work = tmp_path / "ctx", tmp_path / "cache", tmp_path / "work"
    context.mkdir()
    for name, text in files.items():
        (context / name).write_text(text)
    done = subprocess.run([sys.executable, "-c", SESSION, str(context), str(cache), str(work), CHAIN],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), cache, work


def _cache_locked(cache: Path) -> bool:
    try:
        with file_lock(cache_lock_path(cache), wait=False):
            return False
    except CacheBusy:
        return True


def test_a_failed_session_releases_everything_and_publishes_its_finished_steps(tmp_path):
    seen, cache, work = _session(tmp_path, {"Dockerfile": "FROM scratch\n"})
    assert seen["error"] == "RuntimeError: a later step failed"  # the build's own error, unchanged
    assert len(seen["work_dirs_inside"]) == 1 and seen["work_dirs_inside"][0].startswith(PREFIX)
    assert seen["cache_locked_inside"] is True
    assert seen["snapshots_open"] is False
    assert seen["cache_locked_after"] is False and not _cache_locked(cache)
    assert list(work.iterdir()) == []  # the work directory and its lock file are gone
    # The finished step's directory was moved into the layer cache before its work directory was removed.
    published = cache / "layers" / "sha256" / CHAIN.partition(":")[2]
    assert (published / "made-by-the-step").read_text() == "kept"


def test_a_session_that_fails_while_opening_releases_what_it_had_taken(tmp_path):
    """The .dockerignore is read after the work directory, the cache lock and the snapshot thread are taken."""
    seen, cache, work = _session(tmp_path, {"Dockerfile": "FROM scratch\n", ".dockerignore": "[a-\n"})
    assert seen["error"].startswith("ContextError: ") and "invalid pattern '[a-'" in seen["error"]
    assert seen.get("work_dirs_inside") is None
    assert seen["snapshots_open"] is False
    assert seen["cache_locked_after"] is False
    assert list(work.iterdir()) == []
    assert not (cache / "layers" / "sha256").exists()  # nothing was published
