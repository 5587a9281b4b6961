"""`dockyard cache ls` and `dockyard cache prune`: what the local cache holds, and removing it.

Pruning takes the cache lock exclusively, so it never removes an entry or a layer directory a running build is
using (builds hold the lock shared); it waits for running builds to finish. Step entries and unpacked layers
are pruned by last use; blobs (pulled and built) by age, once no remaining step entry names them: images written
to OCI layouts and registries do not need the store, a step entry whose blob is gone is a miss, and a base
layer that is gone is pulled again. --all empties everything.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .locking import cache_lock_path, file_lock
from .store import StepCache

# The SBOM's layer records (sbom/record_cache.py's CACHE_DIR; named here so the cache needs no SBOM import).
SBOM_RECORDS = Path("sbom") / "layers"


@dataclass(frozen=True)
class CacheItem:
    """A step entry or an unpacked layer directory of the local cache, as `dockyard cache ls` lists it."""

    kind: str  # "step", "layer" or "sbom" (an SBOM's record of a layer, by diff_id)
    name: str  # the step's instruction, the layer's ChainID, or the recorded layer's diff_id
    size: int  # bytes on disk (a step: its layer blob's size)
    last_used: float
    path: Path


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def list_cache(cache_root: Path) -> list[CacheItem]:
    items: list[CacheItem] = []
    for path, entry in StepCache(cache_root / "steps").entries():
        items.append(CacheItem("step", entry.instruction, entry.layer.size if entry.layer else 0,
                               path.stat().st_mtime, path))
    layers = cache_root / "layers" / "sha256"
    if layers.is_dir():
        for directory in sorted(layers.iterdir()):
            used = cache_root / "layers" / "locks" / (directory.name + ".lock")
            last = used.stat().st_mtime if used.exists() else directory.stat().st_mtime
            items.append(CacheItem("layer", "sha256:" + directory.name, _tree_size(directory), last, directory))
    records = cache_root / SBOM_RECORDS
    if records.is_dir():
        for path in sorted(records.iterdir()):
            if path.name.startswith("."):
                continue  # a record being written
            st = path.stat()
            diff_id = path.name.rsplit(".v", 1)[0].replace("-", ":", 1)
            items.append(CacheItem("sbom", diff_id, st.st_blocks * 512, st.st_mtime, path))
    return items


def prune_cache(cache_root: Path, *, older_than: float | None, everything: bool) -> tuple[int, int]:
    """Remove step entries and unpacked layers not used for `older_than` seconds (or all of them, and the blob
    store, with `everything`). Returns (items removed, bytes freed); a path that cannot be removed is a
    UsageError naming it, after everything else was removed."""
    removed = freed = 0
    refused: list[tuple[str, OSError]] = []

    def note(_function: object, path: str, exc_info: Any) -> None:
        refused.append((path, exc_info[1]))
    with file_lock(cache_lock_path(cache_root)):
        now = time.time()
        for item in list_cache(cache_root):
            if not everything and (older_than is None or now - item.last_used < older_than):
                continue
            if item.kind == "layer":
                lock = cache_root / "layers" / "locks" / (item.path.name + ".lock")
                lock.unlink(missing_ok=True)
                shutil.rmtree(item.path, onerror=note)
                # After the directory: a crash in between must not leave it without its marker (layers.py).
                if not item.path.exists():
                    (cache_root / "layers" / "unsynced" / item.path.name).unlink(missing_ok=True)
            else:
                item.path.unlink(missing_ok=True)
            removed += 1
            freed += item.size
        # Scratch files (half-unpacked layers, half-received blobs) of killed builds: with the lock held
        # exclusively no build is running, so whatever is there belongs to none.
        for scratch in (cache_root / "layers" / "tmp", cache_root / "store" / "tmp"):
            for path in sorted(scratch.iterdir()) if scratch.is_dir() else []:
                freed += _tree_size(path) if path.is_dir() and not path.is_symlink() else path.lstat().st_blocks * 512
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, onerror=note)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
        # Half-written SBOM layer records of killed builds (hidden files, renamed into place when whole).
        records = cache_root / SBOM_RECORDS
        for path in sorted(records.glob(".*.tmp")) if records.is_dir() else []:
            freed += path.lstat().st_blocks * 512
            path.unlink(missing_ok=True)
            removed += 1
        if not everything and older_than is not None:
            blobs_removed, blobs_freed = _prune_blobs(cache_root, now - older_than)
            removed, freed = removed + blobs_removed, freed + blobs_freed
        if everything:
            for sub in ("store", "layers", "digests", "sbom"):
                if (cache_root / sub).exists():
                    freed += _tree_size(cache_root / sub)
                    shutil.rmtree(cache_root / sub, onerror=note)
    if refused:
        first, exc = refused[0]
        raise UsageError(f"cache prune could not remove {len(refused)} path(s) under {cache_root}, e.g. {first}: "
                         f"{exc.strerror or exc}",
                         hint="files a build made as root (or in a user namespace) need the same user to remove "
                              "them: run `dockyard cache prune` as that user")
    return removed, freed


def _prune_blobs(cache_root: Path, cutoff: float) -> tuple[int, int]:
    """Removes blobs stored before `cutoff` that no remaining step entry names."""
    blobs = cache_root / "store" / "blobs" / "sha256"
    if not blobs.is_dir():
        return 0, 0
    named = {entry.layer.digest for _, entry in StepCache(cache_root / "steps").entries() if entry.layer}
    removed = freed = 0
    for blob in blobs.iterdir():
        try:
            st = blob.stat()
        except OSError:
            continue
        if st.st_mtime >= cutoff or "sha256:" + blob.name in named:
            continue
        blob.unlink(missing_ok=True)
        removed += 1
        freed += st.st_blocks * 512
    return removed, freed
