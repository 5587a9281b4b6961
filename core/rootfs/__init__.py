"""Root filesystems as stacks of overlay layer directories.

A `RootFS` is an immutable tuple of layer directories (bottom first). A step gets a fresh upper directory,
mounted over the stack; when the step is done, the upper directory is both the step's layer (snapshot.py)
and the top of the next RootFS. Nothing ever walks or copies the whole root.
"""

from __future__ import annotations

import itertools
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from ..image.model import Layer, chain_id
from .overlay import overlay_mount, umount

if TYPE_CHECKING:  # the proot modes' roots: imported by the builder in those modes only
    from .trees import DirectoryRoots


class Workspace:
    """One build's scratch directories: layer dirs, overlay work dirs and mount points. Removed at the end.
    With `trees` (the modes without overlayfs), roots are plain directories instead of overlay mounts."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.trees: DirectoryRoots | None = None
        for sub in ("l", "w", "m", "empty", "f"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._ids = itertools.count(1)
        self.scaffold = self._make_scaffold()

    def _next(self, kind: str) -> str:
        path = self.root / kind / str(next(self._ids))
        path.mkdir(mode=0o755)
        return str(path)

    def new_layer_dir(self) -> str:
        return self._next("l")

    def new_work_dir(self) -> str:
        return self._next("w")

    def new_mountpoint(self) -> str:
        return self._next("m")

    def new_file_dir(self) -> str:
        """A private directory for files bound into a RUN (resolv.conf copies, ...)."""
        return self._next("f")

    @property
    def empty_dir(self) -> str:
        return str(self.root / "empty")

    def _make_scaffold(self) -> str:
        """The bottom-most lower layer of every RUN mount: mount points the sandbox needs, for images that
        lack them. Being the *bottom* layer, it never shadows anything the image has, and being a lower
        layer, nothing in it ever reaches a step's upper directory (so never a layer)."""
        scaffold = self.root / "scaffold"
        for d in ("proc", "sys", "dev", "etc", "tmp"):
            (scaffold / d).mkdir(parents=True, exist_ok=True)
        os.chmod(scaffold / "tmp", 0o1777)
        for f in ("etc/resolv.conf", "etc/hosts", "etc/hostname"):
            (scaffold / f).touch()
        return str(scaffold)

    def unmount(self) -> None:
        """Detaches whatever is still mounted on the workspace's mount points."""
        for mp in sorted((self.root / "m").iterdir(), reverse=True) if (self.root / "m").exists() else []:
            if os.path.ismount(mp):
                try:
                    umount(str(mp))
                except OSError:
                    pass

    def cleanup(self) -> None:
        self.unmount()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class PendingLayer:
    """A layer of a root that is known by its blob but not unpacked yet; `chain` is its ChainID."""

    layer: Layer
    chain: str


# Unpacks one pending layer over the directories below it (top first) and returns its directory.
Unpacker = Callable[[PendingLayer, list[str]], str]


@dataclass(frozen=True)
class RootFS:
    """A root filesystem: layer directories (bottom first), then layers not unpacked yet. Pending layers are
    unpacked (through `unpacker`, i.e. the layer cache) only when something mounts the root, so a build whose
    steps are all cached never unpacks anything."""

    layers: tuple[str, ...] = ()  # layer directories, bottom first
    pending: tuple[PendingLayer, ...] = ()  # above `layers`, bottom first
    chain: str | None = None  # the ChainID of the whole root, when every layer has a known diff_id
    unpacker: Unpacker | None = field(default=None, compare=False, repr=False)
    # Told of the pending layers before they unpack, bottom first: their blobs still in a registry are
    # downloaded meanwhile, each while the layers below it unpack.
    prefetch: Callable[[tuple[PendingLayer, ...]], None] | None = field(default=None, compare=False, repr=False)

    def next_chain(self, diff_id: str | None) -> str | None:
        """The ChainID this root would have with a layer of `diff_id` on top (None: not known)."""
        if diff_id is None or (self.chain is None and (self.layers or self.pending)):
            return None
        return chain_id(self.chain, diff_id)

    def with_layer(self, directory: str, diff_id: str | None = None) -> RootFS:
        root = self.resolved()
        return replace(root, layers=root.layers + (directory,), chain=root.next_chain(diff_id))

    def with_pending(self, layer: Layer) -> RootFS:
        """The root with `layer` on top, to be unpacked when needed (needs a known ChainID below)."""
        if self.chain is None and (self.layers or self.pending):
            raise ValueError("a pending layer needs the ChainID of the layers below it")
        chain = chain_id(self.chain, layer.diff_id)
        return replace(self, pending=self.pending + (PendingLayer(layer, chain),), chain=chain)

    def resolved(self) -> RootFS:
        """This root with every pending layer unpacked."""
        if not self.pending:
            return self
        layers = list(self.layers)
        if self.prefetch is not None:
            self.prefetch(self.pending)
        for pending in self.pending:
            assert self.unpacker is not None, "a root with pending layers needs an unpacker"
            layers.append(self.unpacker(pending, list(reversed(layers))))
        return replace(self, layers=tuple(layers), pending=())

    def lowers(self, workspace: Workspace, *, scaffold: bool = False) -> list[str]:
        """Lower directories for a mount, top first (overlay's order)."""
        stack = list(reversed(self.resolved().layers))
        if scaffold:
            stack.append(workspace.scaffold)
        return stack or [workspace.empty_dir]


@dataclass
class Step:
    """A mounted step: `merged` is the root to work in; `upper` collects the changes."""

    merged: str
    upper: str


@contextmanager
def mounted_step(rootfs: RootFS, workspace: Workspace, *, upper: str | None = None,
                 scaffold: bool = False) -> Iterator[Step]:
    """Mount rootfs with a (new or given) upper directory for the duration of the block. A directory root
    is changed in place: its scan at commit finds the changes, so `upper` is the root itself."""
    if workspace.trees is not None:
        tree = workspace.trees.writable(rootfs)
        yield Step(merged=tree, upper=tree)
        return
    upper = upper or workspace.new_layer_dir()
    target = workspace.new_mountpoint()
    with overlay_mount(rootfs.lowers(workspace, scaffold=scaffold), target, upper, workspace.new_work_dir(),
                       volatile=True):
        yield Step(merged=target, upper=upper)


@contextmanager
def mounted_readonly(rootfs: RootFS, workspace: Workspace) -> Iterator[str]:
    """A read-only view of rootfs (for COPY --from and for reading /etc/passwd)."""
    if workspace.trees is not None:
        yield workspace.trees.readable(rootfs)
        return
    target = workspace.new_mountpoint()
    with overlay_mount(rootfs.lowers(workspace), target):
        yield target
