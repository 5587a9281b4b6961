"""The few files of an image that an SBOM is made from, read straight from its layer tars, bottom layer first.

Nothing is unpacked and no layer is held in memory: each layer is decompressed as a stream and only the entries
a `wanted` predicate names (package databases, copyright files, os-release) are kept, as bytes. Whiteouts and
opaque directories are honoured as when the layers are applied: a later layer that deletes a package database
or replaces it wins. After each layer the caller sees what that layer changed, which is how the catalog tells
which layer brought in each package.
"""

from __future__ import annotations

import tarfile
from typing import IO, Any, BinaryIO, Callable, Iterator, NamedTuple, Protocol, cast

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


class LayerView:
    """The wanted files after the first `applied` layers of an image, with a count of the files below each
    directory, so that an entry that deletes or replaces a path costs a lookup unless something wanted lies
    below it. A walk (walk_layers) changes the view it is given; `copy` keeps one to continue from later."""

    def __init__(self) -> None:
        self.files: dict[str, ImageFile] = {}
        self.applied = 0
        self._below: dict[str, int] = {}

    def copy(self) -> LayerView:
        kept = LayerView()
        kept.files, kept.applied, kept._below = dict(self.files), self.applied, dict(self._below)
        return kept

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


# What a layer does to the wanted files, entry by entry in tar order (LayerRecord): what an SBOM needs of a
# layer, without its tar. Kinds: OPAQUE (parent), WHITEOUT (target), DIRECTORY (path: replaces a file there),
# OTHER (path: replaces what was there and below), SYMLINK (path, target), FILE (path, bytes),
# HARDLINK (path, linked path); only wanted paths are SYMLINK, FILE or HARDLINK.
OPAQUE, WHITEOUT, DIRECTORY, OTHER, SYMLINK, FILE, HARDLINK = "o", "w", "d", "e", "s", "f", "h"
RecordEntry = tuple[Any, ...]  # (kind, path) or (kind, path, str | bytes)
LayerRecord = list[RecordEntry]


class LayerRecords(Protocol):
    """Where the records of layers already read are kept (by diff_id and what `wanted` selects), so that a
    layer shared by many images (a base image's) is read once."""

    def get(self, diff_id: str) -> LayerRecord | None: ...

    def put(self, diff_id: str, record: LayerRecord) -> None: ...


def walk_layers(image: Image, blobs: BlobSource, wanted: Callable[[str], bool],
                records: LayerRecords | None = None, view: LayerView | None = None) -> Iterator[LayerChanges]:
    """Applies the image's layers in order to a view of the wanted files (paths are root-relative, without a
    leading slash) and yields that view after each layer. The yielded dict is the live view: read it before
    asking for the next layer. `records`: a cache of what layers did (by diff_id), read instead of the layer
    when it has the layer, filled when not. `view`: where to apply them (default: a new, empty view); a view of
    the image's first layers (a copy an earlier walk of an image with the same first layers left) is
    continued from the next layer."""
    view = view if view is not None else LayerView()
    for info, layer in list(zip(layer_infos(image), image.layers))[view.applied:]:
        record = records.get(layer.diff_id) if records is not None else None
        if record is None:
            record = read_layer(layer, info, blobs, wanted)
            if records is not None:
                records.put(layer.diff_id, record)
        changed: set[str] = set()
        for entry in record:
            _replay(entry, info.position, view, changed)
        view.applied += 1
        yield LayerChanges(info, view.files, frozenset(changed))


def read_layer(layer: Layer, info: LayerInfo, blobs: BlobSource, wanted: Callable[[str], bool]) -> LayerRecord:
    """The record of what `layer` does to the wanted files, read from its blob (checked against its diff_id)."""
    record: LayerRecord = []
    name_of_layer = f"layer {info.position + 1} ({layer.digest})"
    try:
        # Decompressed (and hashed) a few MB ahead on a thread of its own while the tar is read here: ISA-L and
        # hashlib let go of the GIL. The diff_id check makes the SBOM describe exactly the layers the config names.
        with blobs.open(layer.digest) as raw, DiffIdReader(open_decompressed(raw)) as stream:
            archive = tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|", errorlevel=2, bufsize=_TAR_BUFFER)
            try:
                for member in archive:
                    entry = _record_member(archive, member, wanted)
                    if entry is not None:
                        record.append(entry)
            finally:
                archive.close()
            stream.verify(layer.diff_id, name_of_layer)
    except FileNotFoundError:
        raise LayerError(f"the blob of {name_of_layer} is missing", subject=name_of_layer,
                         hint="pull or write the image again") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise LayerError(f"{name_of_layer} is not a readable layer tar: {exc}", subject=name_of_layer,
                         hint="the image is corrupt: pull or build it again") from None
    return record


def _record_member(archive: tarfile.TarFile, member: tarfile.TarInfo,
                   wanted: Callable[[str], bool]) -> RecordEntry | None:
    def content() -> bytes:
        source = archive.extractfile(member)
        return source.read() if source is not None else b""
    return record_entry(member, wanted, content)


class UnpackRecorder:
    """The record of a layer made while rootfs/unpack.py's apply_layer unpacks it (one decompression of the
    layer, not two): each tar member as read_layer records it, a wanted file's bytes read back from the file
    just written. `record` is complete once the unpack went through the whole tar (and the caller checked the
    diff_id)."""

    def __init__(self, wanted: Callable[[str], bool]):
        self.record: LayerRecord = []
        self._wanted = wanted

    def member(self, member: tarfile.TarInfo, written: str | None) -> None:
        def content() -> bytes:
            assert written is not None, "apply_layer writes every regular file it is given"
            with open(written, "rb") as file:
                return file.read()
        entry = record_entry(member, self._wanted, content)
        if entry is not None:
            self.record.append(entry)


def record_entry(member: tarfile.TarInfo, wanted: Callable[[str], bool],
                 content: Callable[[], bytes]) -> RecordEntry | None:
    """What one tar member does to the wanted files (None: nothing, the root directory); `content` reads a
    wanted regular file's bytes."""
    name = clean(member.name)
    if not name:
        return None
    parent, _, base = name.rpartition("/")
    if base == OPAQUE_MARKER:
        return (OPAQUE, parent)
    if base.startswith(WHITEOUT_PREFIX):
        return (WHITEOUT, f"{parent}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/"))
    if wanted(name):
        if member.issym():
            return (SYMLINK, name, member.linkname)
        if member.isreg() and member.size <= MAX_FILE_SIZE:
            return (FILE, name, content())
        if member.islnk():
            return (HARDLINK, name, clean(member.linkname))
    return (DIRECTORY if member.isdir() else OTHER, name)


def _replay(entry: RecordEntry, layer: int, view: LayerView, changed: set[str]) -> None:
    kind, name = entry[0], entry[1]
    if kind == OPAQUE:
        # Hides what the layers below had in the directory; this layer's own entries stay.
        view.delete(name, changed, keep_layer=layer, include_self=False)
        return
    if kind == WHITEOUT:
        view.delete(name, changed, keep_layer=layer, include_self=True)
        return
    # Any entry replaces what lower layers had at its path; a non-directory also replaces a directory's contents.
    view.delete(name, changed, keep_layer=layer, include_self=True, include_below=kind != DIRECTORY)
    if kind == SYMLINK:
        view.put(name, ImageFile(None, entry[2], layer))
        changed.add(name)
    elif kind == FILE:
        view.put(name, ImageFile(entry[2], None, layer))
        changed.add(name)
    elif kind == HARDLINK:
        linked = view.files.get(entry[2])
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
