"""The few files of an image that an SBOM is made from, read straight from its layer tars, bottom layer first.

Nothing is unpacked and no layer is held in memory: each layer is decompressed as a stream and only the entries
a `wanted` predicate names (package databases, copyright files, os-release) are kept, as bytes. Whiteouts and
opaque directories are honoured as when the layers are applied: a later layer that deletes a package database
or replaces it wins. After each layer the caller sees what that layer changed, which is how the catalog tells
which layer brought in each package.
"""

from __future__ import annotations

import tarfile
from typing import IO, BinaryIO, Callable, Iterator, NamedTuple, Protocol, cast

from ..errors import LayerError
from ..image.compression import open_decompressed
from ..image.model import Image, Layer
from ..rootfs.paths import clean
from ..rootfs.unpack import OPAQUE_MARKER, WHITEOUT_PREFIX, DiffIdReader

# A file bigger than this is no package database a catalog can use (dpkg's status of a full desktop is ~5 MB).
MAX_FILE_SIZE = 64 << 20
# tarfile's stream mode skips a file's data by reading it, in reads of this size (its default, 10 kB, makes a
# 70 MB layer 7,000 reads).
_TAR_BUFFER = 1 << 16


class BlobSource(Protocol):
    """Where layer blobs are read from: a BlobStore, or anything else that opens a blob by its digest."""

    def open(self, digest: str) -> BinaryIO: ...


class LayerInfo(NamedTuple):
    """A layer as an SBOM names it: its position (0 = the bottom layer), blob digest, diff_id and the instruction that
    made it (the matching non-empty history entry's created_by, '' when the history does not say)."""

    position: int
    digest: str
    diff_id: str
    created_by: str


class ImageFile(NamedTuple):
    """A wanted file as the image has it after some layer: its content (None for a symlink), the symlink's target
    (None for a file), and the layer that wrote it."""

    data: bytes | None
    link: str | None
    layer: int


class LayerChanges(NamedTuple):
    """What one layer did to the wanted files: `files` is the whole view after it, `changed` the paths it wrote
    or deleted."""

    layer: LayerInfo
    files: dict[str, ImageFile]
    changed: frozenset[str]


def layer_infos(image: Image) -> list[LayerInfo]:
    """Each layer with the created_by of its history entry (entries marked empty_layer make no layer)."""
    non_empty = [h.created_by for h in image.history if not h.empty_layer]
    # Hand-made images may have fewer history entries than layers; their layers then go unexplained.
    return [LayerInfo(i, layer.digest, layer.diff_id, non_empty[i] if i < len(non_empty) else "")
            for i, layer in enumerate(image.layers)]


class _View:
    """The wanted files after the layers applied so far, with a count of the files below each directory, so
    that an entry that deletes or replaces a path costs a lookup unless something wanted lies below it."""

    def __init__(self) -> None:
        self.files: dict[str, ImageFile] = {}
        self._below: dict[str, int] = {}

    def put(self, path: str, entry: ImageFile) -> None:
        if path not in self.files:
            for directory in _parents(path):
                self._below[directory] = self._below.get(directory, 0) + 1
        self.files[path] = entry

    def remove(self, path: str) -> None:
        del self.files[path]
        for directory in _parents(path):
            self._below[directory] -= 1
            if not self._below[directory]:
                del self._below[directory]

    def delete(self, path: str, changed: set[str], *, keep_layer: int, include_self: bool,
               include_below: bool = True) -> None:
        """Removes `path` (when include_self) and everything under it (when include_below) that layers below
        `keep_layer` wrote."""
        doomed = []
        if include_self and path in self.files and self.files[path].layer != keep_layer:
            doomed.append(path)
        if include_below and path in self._below:
            prefix = f"{path}/" if path else ""
            doomed += [p for p, f in self.files.items() if f.layer != keep_layer and p.startswith(prefix)]
        for p in doomed:
            self.remove(p)
            changed.add(p)


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path
    yield ""


def walk_layers(image: Image, blobs: BlobSource, wanted: Callable[[str], bool]) -> Iterator[LayerChanges]:
    """Applies the image's layers in order to a view of the wanted files (paths are root-relative, without a
    leading slash) and yields that view after each layer. The yielded dict is the live view: read it before
    asking for the next layer."""
    view = _View()
    for info, layer in zip(layer_infos(image), image.layers):
        changed = _apply(layer, info, blobs, wanted, view)
        yield LayerChanges(info, view.files, frozenset(changed))


def _apply(layer: Layer, info: LayerInfo, blobs: BlobSource, wanted: Callable[[str], bool], view: _View) -> set[str]:
    changed: set[str] = set()
    name_of_layer = f"layer {info.position + 1} ({layer.digest})"
    try:
        # Decompressed (and hashed) a few MB ahead on a thread of its own while the tar is read here: ISA-L and
        # hashlib let go of the GIL. The diff_id check makes the SBOM describe exactly the layers the config names.
        with blobs.open(layer.digest) as raw, DiffIdReader(open_decompressed(raw)) as stream:
            archive = tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|", errorlevel=2, bufsize=_TAR_BUFFER)
            try:
                for member in archive:
                    _apply_member(archive, member, info.position, wanted, view, changed)
            finally:
                archive.close()
            stream.verify(layer.diff_id, name_of_layer)
    except FileNotFoundError:
        raise LayerError(f"the blob of {name_of_layer} is missing", subject=name_of_layer,
                         hint="pull or write the image again") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise LayerError(f"{name_of_layer} is not a readable layer tar: {exc}", subject=name_of_layer,
                         hint="the image is corrupt: pull or build it again") from None
    return changed


def _apply_member(archive: tarfile.TarFile, member: tarfile.TarInfo, layer: int, wanted: Callable[[str], bool],
                  view: _View, changed: set[str]) -> None:
    name = clean(member.name)
    if not name:
        return
    parent, _, base = name.rpartition("/")
    if base == OPAQUE_MARKER:
        # Hides what the layers below had in the directory; this layer's own entries stay.
        view.delete(parent, changed, keep_layer=layer, include_self=False)
        return
    if base.startswith(WHITEOUT_PREFIX):
        target = f"{parent}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/")
        view.delete(target, changed, keep_layer=layer, include_self=True)
        return
    # Any entry replaces what lower layers had at its path; a non-directory also replaces a directory's contents.
    view.delete(name, changed, keep_layer=layer, include_self=True, include_below=not member.isdir())
    if not wanted(name):
        return
    if member.issym():
        view.put(name, ImageFile(None, member.linkname, layer))
        changed.add(name)
    elif member.isreg() and member.size <= MAX_FILE_SIZE:
        source = archive.extractfile(member)
        view.put(name, ImageFile(source.read() if source is not None else b"", None, layer))
        changed.add(name)
    elif member.islnk():
        linked = view.files.get(clean(member.linkname))
        if linked is not None:
            view.put(name, ImageFile(linked.data, linked.link, layer))
            changed.add(name)


def resolve(files: dict[str, ImageFile], path: str) -> tuple[str, ImageFile] | None:
    """The file at `path` after following symlinks among the wanted files, the file's own (/etc/os-release ->
    ../usr/lib/os-release) and its directories' (/usr/share/doc/PKG -> OTHER); None when it is missing or a
    link leads outside what was kept."""
    for _ in range(16):
        entry = files.get(path)
        if entry is not None and entry.link is None:
            return path, entry
        link_path = path if entry is not None else _linked_parent(files, path)
        if link_path is None:
            return None
        link = files[link_path].link or ""
        parent = link_path.rpartition("/")[0]
        target = clean(link if link.startswith("/") else f"{parent}/{link}")
        path = target + path[len(link_path):]
    return None


def _linked_parent(files: dict[str, ImageFile], path: str) -> str | None:
    for directory in _parents(path):
        entry = files.get(directory)
        if entry is not None and entry.link is not None:
            return directory
    return None
