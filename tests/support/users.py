"""Directories and users for builds run as someone other than root. Users are made with shadow's useradd
(Debian's passwd package) and removed with userdel, which also drops their /etc/subuid and /etc/subgid lines.

pytest's own temporary directories do not serve: every pytest session as root (another run on the same
machine included) resets /tmp/pytest-of-root to mode 0700, which locks other users out mid-test.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def open_directory(prefix: str) -> Iterator[Path]:
    """A fresh directory under /tmp that any user can read and enter; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owned_directory(parent: Path, name: str, uid: int, gid: int) -> Path:
    path = parent / name
    path.mkdir()
    os.chown(path, uid, gid)
    return path


def _ranges_of(name: str, path: str) -> list[tuple[int, int]]:
    with open(path) as f:
        return [(int(start), int(count)) for owner, start, count in
                (line.strip().split(":") for line in f if line.count(":") == 2) if owner == name]


def _free_range_start(count: int) -> int:
    """A start above every range /etc/subuid and /etc/subgid hand out, so ours overlaps none."""
    ends = [100000]
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            ends += [int(start) + int(n) for _, start, n in (line.strip().split(":") for line in f
                                                              if line.count(":") == 2)]
    return max(ends) + count


@contextmanager
def user_with_subordinate_ids(count: int = 65536) -> Iterator[tuple[int, int]]:
    """A new user (no home) owning `count` subordinate uids and gids; (uid, gid). Removed afterwards, with
    its /etc/subuid and /etc/subgid lines."""
    name = f"dyk{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    try:
        if not (_ranges_of(name, "/etc/subuid") and _ranges_of(name, "/etc/subgid")):
            start = _free_range_start(count)
            ids = f"{start}-{start + count - 1}"
            subprocess.run(["usermod", "--add-subuids", ids, "--add-subgids", ids, name], check=True,
                           capture_output=True)
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)
