"""Advisory file locks (flock) for the cache: per-entry locks so that two builds never unpack or write the same
entry at once, and the cache-wide lock that keeps `cache prune` from deleting what a running build uses."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import DockyardError


class CacheBusy(DockyardError):
    exit_code = 1


def cache_lock_path(cache_root: Path) -> Path:
    """The cache-wide lock: shared by builds, exclusive for pruning."""
    return Path(cache_root) / "lock"


@contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[None]:
    """Hold a flock on `path` (created if missing) for the block. Without `wait`, raise CacheBusy at once
    when another process holds a conflicting lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            raise CacheBusy(f"the cache at {path.parent} is in use by a running build",
                            hint="wait for the build to finish, then run the command again") from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
