"""Directories and users for builds run as someone other than root.

pytest's own temporary directories do not serve: every pytest session as root (another run on the same
machine included) resets /tmp/pytest-of-root to mode 0700, which locks other users out mid-test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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
