"""Named build contexts during a build: each one read once, when a step first needs it, as BuildKit gives it
to the Dockerfile.

* A directory (a local one with its own `.dockerignore` applied, a git checkout, an http download as the file
  `context`) becomes a private tree in the build's workspace, owned by root as BuildKit's local and git sources
  are. `COPY --from=NAME` and `RUN --mount=from=NAME` read that tree; `FROM NAME` is a scratch-like image
  (no config) whose one layer is the tree.
* An image (`docker-image://`, `oci-layout://`) is the image: its config and its layers.

Every context has a digest for the cache keys of the steps that read it: a tree by its content (never times),
an image by its manifest digest.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from typing import Callable

from .cache.keys import tree_digest
from .context import BuildContext, DockerIgnore
from .errors import ContextError, DockyardError
from .fetch import clone, download, parse_git_url
from .image.blobs import BlobStore
from .image.layout_reader import read_oci_layout
from .image.model import HistoryEntry, Image, Platform
from .named_contexts import DOCKER_IMAGE, GIT, LOCAL, OCI_LAYOUT, URL, NamedContext, NamedContexts
from .rootfs import RootFS, Workspace, ownership
from .rootfs.ownership import Ownership
from .rootfs.snapshot import Change, write_changes

DOWNLOAD_NAME = "context"  # the file an http(s) context holds (BuildKit's llb.HTTP filename)
DOWNLOAD_MODE = 0o600  # BuildKit's mode for a downloaded file


@dataclass(frozen=True)
class ContextTree:
    """A directory context as the build sees it, and its content digest."""

    directory: str
    digest: str


@dataclass(frozen=True)
class ContextImage:
    """A context used as an image (FROM, or COPY --from of an image context): the image, its root and the
    digest that stands for it in cache keys."""

    image: Image
    rootfs: RootFS
    digest: str


@dataclass(frozen=True)
class LayerSettings:
    """How a directory context's layer is written: as every layer of the build."""

    compression: str = "gzip"
    level: int | None = None
    source_date_epoch: int | None = None


class NamedContextLoader:
    """The build's named contexts, read on first use and kept for the rest of the build.

    `pull(ref, platform)` gives a registry image and its root (the builder's pull, shared with FROM);
    `new_root()` an empty root that unpacks pending layers through the layer cache."""

    def __init__(self, contexts: NamedContexts, *, store: BlobStore, workspace: Workspace,
                 pull: Callable[[str, Platform], ContextImage], new_root: Callable[[], RootFS],
                 platform: Platform = Platform(), layers: LayerSettings = LayerSettings()):  # noqa: B008 (frozen)
        self.contexts = contexts
        self.platform = platform  # the build's: what COPY --from and RUN --mount from= read
        self.store = store
        self.workspace = workspace
        self._pull = pull
        self._new_root = new_root
        self._layers = layers
        self._trees: dict[str, ContextTree] = {}
        self._images: dict[tuple[str, str], ContextImage] = {}

    def lookup(self, name: str) -> NamedContext | None:
        return self.contexts.lookup(name)

    def digest(self, context: NamedContext, platform: Platform | None = None) -> str:
        """What stands for the context in a cache key."""
        if context.is_directory:
            return f"{context.kind}:{self.tree(context).digest}"
        return f"{context.kind}:{self.image(context, platform).digest}"

    # --- directories -------------------------------------------------------------------------------------
    def tree(self, context: NamedContext) -> ContextTree:
        found = self._trees.get(context.name)
        if found is None:
            found = self._trees[context.name] = self._read_tree(context)
        return found

    def _read_tree(self, context: NamedContext) -> ContextTree:
        staging = self.workspace.new_file_dir()
        try:
            if context.kind == LOCAL:
                directory = os.path.join(staging, "tree")
                copy_visible(local_context(context), context.value, directory)
            elif context.kind == GIT:
                git = parse_git_url(context.value)
                assert git is not None  # parse_build_context said it is a git URL
                directory = clone(git, os.path.join(staging, "checkout"), keep_git_dir=False)
            elif context.kind == URL:
                directory = os.path.join(staging, "tree")
                os.mkdir(directory, 0o755)
                path = os.path.join(directory, DOWNLOAD_NAME)
                mtime = download(context.value, path)
                os.chmod(path, DOWNLOAD_MODE)
                if mtime is not None:
                    os.utime(path, (mtime, mtime))
            else:
                raise AssertionError(f"not a directory context: {context.kind}")
        except DockyardError as exc:
            # fetch's messages are written for ADD; here they are about the context.
            exc.message = f"{context.describe()}: {exc.message.removeprefix('ADD ')}"
            raise
        except OSError as exc:
            raise ContextError(f"{context.describe()}: cannot read {exc.filename or context.value}: {exc.strerror}",
                               hint="check that the directory and everything in it is readable") from None
        _own_by_root(directory)
        return ContextTree(directory, tree_digest(directory))

    # --- images ------------------------------------------------------------------------------------------
    def image(self, context: NamedContext, platform: Platform | None = None) -> ContextImage:
        """The context as an image for `platform` (default the build's): a registry or layout image, or a
        directory as one layer."""
        platform = platform or self.platform
        key = (context.name, str(platform))
        found = self._images.get(key)
        if found is None:
            found = self._images[key] = self._read_image(context, platform)
        return found

    def _read_image(self, context: NamedContext, platform: Platform) -> ContextImage:
        if context.kind == DOCKER_IMAGE and context.value == "scratch":
            return ContextImage(_empty_image(platform), self._new_root(), "scratch")
        if context.kind == DOCKER_IMAGE:
            try:
                return self._pull(context.value, platform)
            except DockyardError as exc:
                exc.message = f"{context.describe()}: {exc.message}"
                raise
        if context.kind == OCI_LAYOUT:
            read = read_oci_layout(context.value, tag=context.tag, digest=context.digest, platform=platform,
                                   store=self.store, what=context.describe())
            rootfs = self._new_root()
            for layer in read.image.layers:
                rootfs = rootfs.with_pending(layer)
            return ContextImage(read.image.with_config(), rootfs, read.digest)
        tree = self.tree(context)
        # Every entry owned by root in the layer, whether or not the host could chown the tree.
        changes = [Change(rel, ownership=Ownership(0, 0)) for rel in _tree_paths(tree.directory)]
        layer, _ = write_changes(tree.directory, changes, self.store, compression=self._layers.compression,
                                 level=self._layers.level, source_date_epoch=self._layers.source_date_epoch)
        image = _empty_image(platform).with_layer(layer, HistoryEntry(created_by=f"context {context.name}",
                                                                      comment="dockyard"))
        return ContextImage(image, self._new_root().with_pending(layer), tree.digest)


def local_context(context: NamedContext) -> BuildContext:
    """A local named context with its own `.dockerignore` (BuildKit reads that file, and only that one, from
    the context's directory)."""
    path = os.path.join(context.value, ".dockerignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            ignore = DockerIgnore.parse(file.read())
    except FileNotFoundError:
        ignore = DockerIgnore([])
    except OSError as exc:
        raise ContextError(f"{context.describe()}: cannot read {path}: {exc.strerror}") from None
    from pathlib import Path

    return BuildContext(Path(context.value), ignore)


def copy_visible(context: BuildContext, source: str, dest: str) -> None:
    """Copy the part of `source` that `context` shows (its .dockerignore applied) to `dest`: files with their
    modes, times and xattrs, symlinks as links. Sockets, fifos and devices are left out: BuildKit's file
    transfer does not send them either."""
    os.makedirs(dest, exist_ok=True)
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        target = os.path.join(dest, entry.name)
        if entry.is_dir(follow_symlinks=False):
            if context.visible(entry.path) or context.walk_into(entry.path):
                copy_visible(context, entry.path, target)
        elif not context.visible(entry.path):
            continue
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            shutil.copy2(entry.path, target, follow_symlinks=False)
    shutil.copystat(source, dest, follow_symlinks=False)  # last: a read-only directory is filled first


def _own_by_root(directory: str) -> None:
    """Every entry owned by 0:0, as BuildKit's client sends local directories (the host's ids mean nothing in
    the image). Without root, the proot modes' ownership ledger records it instead; with neither, the files
    keep the host's owners."""
    for rel in ["", *_tree_paths(directory)]:
        path = os.path.join(directory, rel) if rel else directory
        st = os.lstat(path)
        if not (st.st_uid or st.st_gid):
            continue
        try:
            ownership.chown(path, 0, 0)
        except OSError:
            return
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
            os.chmod(path, stat.S_IMODE(st.st_mode))  # chown clears set-id bits: they are kept


def _tree_paths(directory: str, prefix: str = "") -> list[str]:
    """The paths below `directory`, relative to it, sorted, parents before their children."""
    paths = []
    for entry in sorted(os.scandir(os.path.join(directory, prefix) if prefix else directory), key=lambda e: e.name):
        rel = prefix + entry.name
        paths.append(rel)
        if entry.is_dir(follow_symlinks=False):
            paths += _tree_paths(directory, rel + "/")
    return paths


def _empty_image(platform: Platform) -> Image:
    return Image(meta={"architecture": platform.architecture, "os": platform.os,
                       **({"variant": platform.variant} if platform.variant else {})})
