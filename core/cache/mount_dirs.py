"""The directories of RUN --mount=type=cache: one per cache id under the cache-mount root, kept between
builds, shared between concurrent steps as the mount's `sharing` says (file locks: shared, locked, private)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def cache_directory(root: Path, cache_id: str, sharing: str, initialize: Callable[[str], None]) -> Iterator[str]:
    """The data directory of cache `cache_id`, held with a file lock for the step and initialized (under an
    exclusive lock) on first use. shared: a shared lock, many steps at once; locked: an exclusive one, waiting
    for the others; private: an exclusive one without waiting, using another instance while the first is busy."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = root / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
    instance = 0
    while True:
        directory = Path(f"{base}-{instance}" if instance else base)
        directory.mkdir(mode=0o700, exist_ok=True)
        lock = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # shared: a shared lock from the start, so steps of stages running at the same time use it together
            # (waiting for an exclusive one would wait for every step holding it shared).
            fcntl.flock(lock, fcntl.LOCK_SH if sharing == "shared" else
                        fcntl.LOCK_EX | (fcntl.LOCK_NB if sharing == "private" else 0))
            break
        except BlockingIOError:
            os.close(lock)
            instance += 1
    try:
        data = str(directory / "data")
        if not (directory / ".ready").exists():
            _initialize_once(directory, data, sharing, initialize)
        yield data
    finally:
        os.close(lock)


def _initialize_once(directory: Path, data: str, sharing: str, initialize: Callable[[str], None]) -> None:
    """Makes the cache's data directory unless another step has. The locked and private sharings hold the
    cache's lock exclusively already. Shared steps take a lock of their own for it: turning their shared lock
    exclusive would wait for every step holding it shared, and such a step may be waiting for this one (two
    stages meeting in one cache); another step holding that lock makes the directory, then this one sees it."""
    init_lock = os.open(directory / ".init-lock", os.O_RDWR | os.O_CREAT, 0o600) if sharing == "shared" else None
    try:
        if init_lock is not None:
            fcntl.flock(init_lock, fcntl.LOCK_EX)
        if not (directory / ".ready").exists():
            shutil.rmtree(data, ignore_errors=True)  # a half-made one from an interrupted build
            initialize(data)
            (directory / ".ready").touch()
    finally:
        if init_lock is not None:
            os.close(init_lock)
