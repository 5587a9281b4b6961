"""Roots as plain directories, for the modes without overlayfs (no mount, or no root: see isolation/detect.py).

A stage's root is one directory holding the whole filesystem: built by applying the root's layer blobs in
order, changed in place by each step, and snapshotted by scanning (scan.py) against the index the previous
snapshot left. After a step's layer is written the directory is filed under the new ChainID, so the stage's
next step finds it as it is. A step takes its stage's directory for itself; a root wanted again afterwards
(a later stage `FROM` an earlier one, `COPY --from`) is rebuilt from the blobs, never shared while changing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..image.blobs import BlobStore
from ..image.compression import open_decompressed
from ..image.model import Layer, chain_id
from .ownership import Ownership, OwnershipLedger, recording
from .scan import RACY_NS, Index, ScanStats, scan
from .snapshot import write_changes
from .unpack import apply_layer

SCRATCH = "scratch"  # the key of the empty root (FROM scratch)


@dataclass
class Tree:
    """A directory root, with the index its last scan left."""

    path: str
    index: Index


class _PendingLayer(Protocol):
    @property
    def layer(self) -> Layer: ...


class _Root(Protocol):
    """What DirectoryRoots reads of a root: rootfs/__init__.py's RootFS, which that package (importing this
    module) defines."""

    @property
    def layers(self) -> tuple[str, ...]: ...

    @property
    def pending(self) -> tuple[_PendingLayer, ...]: ...

    @property
    def chain(self) -> str | None: ...


class DirectoryRoots:
    """`fetch` makes layers' blobs present in `store` before they are unpacked (those of registry cache hits
    are only downloaded when a root is needed)."""

    def __init__(self, directory: Path, store: BlobStore, fetch: Callable[[list[Layer]], None] | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.fetch = fetch
        self.ledger = OwnershipLedger()
        self._clean: dict[str, Tree] = {}  # by ChainID: directories no step is changing
        self._taken: dict[str, Tree] = {}  # by ChainID: a step is changing them
        self._ids = itertools.count(1)
        self.last_scan: ScanStats | None = None

    def readable(self, rootfs: _Root) -> str:
        key = rootfs.chain or SCRATCH
        tree = self._taken.get(key) or self._clean.get(key)
        if tree is None:
            tree = self._clean[key] = self._materialize(rootfs)
        return tree.path

    def writable(self, rootfs: _Root) -> str:
        key = rootfs.chain or SCRATCH
        if key not in self._taken:
            clean = self._clean.pop(key, None)
            self._taken[key] = clean or self._materialize(rootfs)
        return self._taken[key].path

    def commit(self, rootfs: _Root, *, compression: str, level: int | None, source_date_epoch: int | None,
               new_owner: Ownership | None = None) -> Layer:
        """The layer of what changed in `rootfs`'s directory since its last snapshot; the directory is then
        the root with that layer on top."""
        key = rootfs.chain or SCRATCH
        tree = self._taken.pop(key, None) or self._clean.pop(key, None) or self._materialize(rootfs)
        result = scan(tree.path, tree.index, ledger=self.ledger, new_owner=new_owner)
        self.ledger.end_step()
        self.last_scan = result.stats
        now = int(time.time())
        layer, _ = write_changes(tree.path, result.changes, self.store, compression=compression, level=level,
                                 source_date_epoch=source_date_epoch,
                                 deleted_mtime=min(now, source_date_epoch) if source_date_epoch else now)
        tree.index = result.index
        self._clean[chain_id(rootfs.chain, layer.diff_id)] = tree
        return layer

    def _materialize(self, rootfs: _Root) -> Tree:
        if rootfs.layers:
            raise ValueError("a directory root is made from layer blobs, not layer directories")
        path = str(self.directory / str(next(self._ids)))
        os.mkdir(path, 0o755)
        try:
            if self.fetch is not None:
                self.fetch([pending.layer for pending in rootfs.pending])
            with recording(self.ledger):
                for pending in rootfs.pending:
                    with self.store.open(pending.layer.digest) as raw:
                        apply_layer(open_decompressed(raw), path, layer_name=f"layer {pending.layer.digest}")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        # Let the clock move past the racy window, so that the first index needs no content hashes.
        time.sleep(RACY_NS / 1e9)
        return Tree(path, scan(path, None, ledger=self.ledger).index)
