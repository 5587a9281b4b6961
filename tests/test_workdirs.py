"""Work directories (core/workdirs.py): a sweep removes those whose build process is gone, never one whose build
lives (also in another pid namespace), never follows a mount or a link out of a directory, and opens up
directories a build made unwritable. Lock holders are real processes; mounts are real mounts, made in a
private mount namespace (`unshare --mount`) so that nothing reaches the machine's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from dockyard import workdirs
from tests.support.processes import wait_for as _wait_for
from tests.support.users import open_directory

ROOT = Path(__file__).resolve().parents[1]


def _leftover(parent: Path, files: dict[str, bytes] | None = None) -> Path:
    """A work directory as a killed build leaves it: locked by a process that is gone."""
    holder = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from core import workdirs
        print(workdirs.create(Path({str(parent)!r})).path)
        """)], capture_output=True, text=True, check=True)
    path = Path(holder.stdout.strip())
    for name, content in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    return path


def test_a_live_work_dir_is_kept_and_a_dead_one_removed(tmp_path):
    live = workdirs.create(tmp_path)
    dead = _leftover(tmp_path, {"l/1/usr/bin/tool": b"x" * 100_000, "w/2/x": b""})
    os.symlink("/etc", dead / "l" / "etc-link")  # removed as a link, not followed
    leftovers = workdirs.sweep(tmp_path)
    assert [(l.path, l.kept) for l in leftovers] == [(dead, None)]
    assert leftovers[0].freed >= 100_000
    assert not dead.exists() and Path("/etc/passwd").exists()
    assert (live.path / workdirs.LOCK_NAME).exists()
    live.remove()
    assert not live.path.exists()
    assert workdirs.sweep(tmp_path) == []


def test_a_directory_without_a_lock_file_is_never_touched(tmp_path):
    """Being made this instant, or left by an older version: nothing says its build is gone."""
    other = tmp_path / "dockyard-older"
    (other / "l").mkdir(parents=True)
    assert workdirs.sweep(tmp_path) == []
    assert (other / "l").is_dir()


def test_links_and_other_users_directories_are_not_swept(tmp_path):
    """In a shared /var/tmp, another user's directory could be swapped for a link while it is removed."""
    if os.geteuid() != 0:
        pytest.skip("making another user's directory needs root")
    (tmp_path / "elsewhere").mkdir()
    elsewhere = _leftover(tmp_path / "elsewhere", {"l/1/f": b"keep"})
    parent = tmp_path / "work"
    parent.mkdir()
    os.symlink(elsewhere, parent / "dockyard-link")
    theirs = _leftover(parent, {"l/1/f": b"theirs"})
    subprocess.run(["chown", "-R", "1000:1000", str(theirs)], check=True)
    assert workdirs.sweep(parent) == []
    assert (elsewhere / "l/1/f").read_bytes() == b"keep" and (theirs / "l/1/f").read_bytes() == b"theirs"


def test_a_build_in_another_pid_namespace_keeps_its_directory(tmp_path):
    """Another container sharing /var/tmp: its pids mean nothing here, its lock does."""
    path = _leftover(tmp_path, {"l/1/f": b"data"})
    ready = tmp_path / "ready"
    holder = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "flock", str(path / workdirs.LOCK_NAME),
                               "sh", "-c", f"touch {ready}; exec sleep 600"])
    try:
        assert _wait_for(ready.exists), "the lock holder never started"
        assert workdirs.sweep(tmp_path) == []
        assert (path / "l" / "1" / "f").exists()
    finally:
        holder.kill()  # and, through --kill-child, the namespace's processes
        holder.wait()
    swept: list = []
    assert _wait_for(lambda: swept.extend(workdirs.sweep(tmp_path)) or swept), "the lock was never released"
    assert [l.path for l in swept] == [path]
    assert not path.exists()


def test_directories_a_build_made_unwritable_are_removed_by_their_owner():
    """A non-root build's tree (proot mode) after `RUN chmod 500 /dir`: its owner (uid 1000 here, not root, whom
    no mode stops) opens it up to remove it."""
    if os.geteuid() != 0:
        pytest.skip("making the leftover of another user needs root")
    with open_directory("dockyard-sweep-") as parent:
        os.chmod(parent, 0o1777)  # as /var/tmp
        path = _leftover(parent, {"trees/1/dir/sub/f": b"x"})
        subprocess.run(["chown", "-R", "1000:1000", str(path)], check=True)
        for directory in (path / "trees/1/dir/sub", path / "trees/1/dir"):
            os.chmod(directory, 0o500)
        script = (f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; "
                  "from core import workdirs; os.setgroups([]); os.setgid(1000); os.setuid(1000); "
                  f"print([l.kept for l in workdirs.sweep(Path({str(parent)!r}))])")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert (done.returncode, done.stdout.strip()) == (0, "[None]"), done.stderr
        assert not path.exists()


_SWEEP_WITH_MOUNTS = """
import os, subprocess, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from core import workdirs  # imported before any change of user
parent, outside, user = Path({parent!r}), Path({outside!r}), {user!r}
dead = Path(sys.argv[1])
(dead / "m" / "1").mkdir(parents=True)
(dead / "m" / "2").mkdir(parents=True)
if user is not None:
    subprocess.run(["chown", "-R", f"{{user}}:{{user}}", str(dead)], check=True)
subprocess.run(["mount", "--bind", str(outside), str(dead / "m" / "1")], check=True)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(dead / "m" / "2")], check=True)
if user is not None:
    os.setgroups([]); os.setgid(user); os.setuid(user)
for leftover in workdirs.sweep(parent):
    print(leftover.path, leftover.kept)
"""


def _sweep_with_mounts(user: int | None) -> Iterator[tuple[Path, Path, str]]:
    """A leftover with a bind mount of a directory outside it and a tmpfs, swept in a mount namespace of its own
    (by root, or by `user`, who may not unmount); (the leftover, the file outside, what the sweep said)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    with open_directory("dockyard-sweep-") as base:
        outside = base / "outside"
        outside.mkdir()
        precious = outside / "precious"
        precious.write_text("keep me")
        parent = base / "work"
        parent.mkdir(mode=0o777)
        os.chmod(parent, 0o777)
        dead = _leftover(parent)
        script = _SWEEP_WITH_MOUNTS.format(root=str(ROOT), parent=str(parent), outside=str(outside), user=user)
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script,
                               str(dead)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        yield dead, precious, done.stdout


def test_mounts_left_in_a_directory_are_detached_not_followed():
    for dead, precious, said in _sweep_with_mounts(user=None):
        assert said.strip() == f"{dead} None"
        assert not dead.exists()
        assert precious.read_text() == "keep me"


def test_a_mount_that_cannot_be_detached_keeps_the_directory():
    """A sweep by a user who may not unmount: it says so, and never removes through the mount."""
    for dead, precious, said in _sweep_with_mounts(user=1000):
        assert said.startswith(f"{dead} {dead}/m/") and "is still mounted" in said
        assert precious.read_text() == "keep me"
