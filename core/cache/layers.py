"""Unpacked layers shared by every build: CACHE_ROOT/layers/sha256/<ChainID hex>.

A layer is unpacked onto the layers below it (an overlay whose upper directory becomes the layer's directory),
so what ends up in the directory depends on those layers too (a whiteout is only made for a file that exists
below): the directory is therefore keyed by the OCI ChainID of the layer and everything under it, which for a
bottom layer is its diff_id. Directories are unpacked into a temporary directory and renamed into place, under
a per-entry lock, so a reader never sees a half-unpacked layer and two builds never unpack the same one twice.
Once in place a directory is never changed: builds use it only as a lower layer, and steps write to their own
upper directories.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..image.blobs import BlobStore
from ..image.compression import open_decompressed
from ..image.model import Layer
from .locking import file_lock


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """The OCI ChainID: the diff_id for a bottom layer, else sha256 of "PARENT_CHAIN DIFF_ID"."""
    if parent_chain is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


class LayerCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.dirs = self.root / "sha256"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"

    def path(self, chain: str) -> Path:
        return self.dirs / chain.partition(":")[2]

    def unpacked(self, layer: Layer, chain: str, lowers: list[str], store: BlobStore, mountpoint: str) -> str:
        """The directory of `layer` unpacked over `lowers` (top first; ChainID `chain`), unpacking it now if no
        build has yet. `mountpoint` is an empty directory to mount the layers on while unpacking."""
        final = self.path(chain)
        if final.is_dir():
            self._mark_used(final.name)
            return str(final)
        from ..rootfs.overlay import overlay_mount
        from ..rootfs.unpack import DiffIdReader, apply_layer

        with file_lock(self.locks / (final.name + ".lock")):
            if final.is_dir():  # another build unpacked it while we waited
                return str(final)
            for directory in (self.dirs, self.tmp):
                directory.mkdir(parents=True, exist_ok=True)
            # The upper and work directories must be on one filesystem: both live in the cache's tmp.
            scratch = Path(tempfile.mkdtemp(prefix="unpack-", dir=self.tmp))
            try:
                upper, work = scratch / "layer", scratch / "work"
                upper.mkdir(mode=0o755)
                work.mkdir()
                name = f"layer {layer.digest}"
                with overlay_mount(lowers, mountpoint, str(upper), str(work)) as merged, \
                        store.open(layer.digest) as raw:
                    content = DiffIdReader(open_decompressed(raw))
                    apply_layer(content, merged, layer_name=name)
                    content.verify(layer.diff_id, name)
                os.rename(upper, final)
                self._mark_used(final.name)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return str(final)

    def _mark_used(self, name: str) -> None:
        """Record the last use for `cache prune --older-than`, as the mtime of a file beside the directory (the
        directory's own times are part of the root filesystem the steps see)."""
        used = self.locks / (name + ".lock")
        try:
            used.parent.mkdir(parents=True, exist_ok=True)
            used.touch()
        except OSError:
            pass

    def adopt(self, directory: str, chain: str) -> str:
        """Move a finished step's upper directory into the cache as the unpacked form of its layer, when it is
        on the cache's filesystem (a rename); else leave it where it is. Returns where the directory is now."""
        final = self.path(chain)
        if final.is_dir():
            return directory
        try:
            self.dirs.mkdir(parents=True, exist_ok=True)
            os.rename(directory, final)
        except OSError:
            return directory  # another filesystem, or another build put it there first
        self._mark_used(final.name)
        return str(final)
