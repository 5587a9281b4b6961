"""Write an image (or an image index and its images) into an OCI image layout directory (`oci-layout`,
`index.json`, `blobs/sha256/...`).

The result is what `skopeo copy ... oci:DIR:TAG` and buildah write, and what `skopeo`, `umoci`, `crane` and
containerd's importer read. An existing layout is added to, never replaced: other images in it stay, and an
entry whose ref name we write again is replaced, as `skopeo copy` does. Blobs are copied under temporary names
and renamed into place, and index.json is written last (also by rename), so a reader or an interrupted write
never leaves an index that names a missing or partial blob.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import OutputError, UsageError
from ..files import replace_file
from .blobs import BlobStore
from .index import ImageIndex, platform_json
from .model import OCI_INDEX, Descriptor, Image
from .reference import parse_reference

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
REF_NAME = "org.opencontainers.image.ref.name"
# containerd's (and BuildKit's oci exporter's) annotation for the full name of an image in a layout.
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


def write_oci_layout(images: Image | Sequence[Image], store: BlobStore, dest: Path, ref_names: list[str], *,
                     index: ImageIndex | None = None, annotations: tuple[tuple[str, str], ...] = ()) -> None:
    """Add an image (or, with `index`, the image index listing `images`) to the OCI layout at `dest` (created
    if missing), once per ref name.

    A ref name is stored as its tag part, as `oci:DIR:TAG` addresses it in skopeo and buildah; a full
    reference (`registry/repo:1.0`) contributes `1.0` and is kept whole in `io.containerd.image.name`, as
    BuildKit's oci exporter writes it; a bare word (`1.0`, `latest`) is used as it is. With no ref names,
    the image is added without one (reachable by digest only). `annotations` go on index.json's entry (the
    descriptor of the manifest, or of the index).
    """
    images = [images] if isinstance(images, Image) else list(images)
    if index is None and len(images) != 1:
        raise ValueError("several images are written with their index")
    dest = Path(dest)
    names = _ref_names(ref_names)
    _prepare(dest)
    blobs_dir = dest / "blobs" / "sha256"
    try:
        blobs_dir.mkdir(parents=True, exist_ok=True)
        # Serialize writers of the same layout (two outputs of one build, or two builds): index.json is a
        # read-modify-write. The lock is on the directory itself, so no lock file is left in the layout.
        dir_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise OutputError(f"cannot write the OCI layout {dest}: {exc.strerror}") from None
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        layout_index = _read_index(dest)

        for image in images:
            for layer in image.layers:
                _copy_blob(store, layer.digest, layer.size, blobs_dir, dest)
            _write_blob_bytes(image.config_bytes(), image.config_descriptor().digest, blobs_dir, dest)
            _write_blob_bytes(image.manifest_bytes(), image.digest, blobs_dir, dest)
        if index is not None:
            # Written after everything it lists, so the index never names a missing blob.
            _write_blob_bytes(index.to_bytes(), index.digest, blobs_dir, dest)
            top = index.descriptor(annotations).to_json()
        else:
            image = images[0]
            manifest = image.manifest_bytes()
            top = Descriptor(image.manifest_media_type, image.digest, len(manifest), annotations=annotations,
                             platform=platform_json(image.platform)).to_json()
        entries = [e for e in layout_index.get("manifests") or [] if isinstance(e, dict)]
        if names:
            replaced = {name for name, _full in names}
            entries = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) not in replaced]
            for name, full in names:
                named = dict(top.get("annotations") or {})
                if full:
                    named[CONTAINERD_IMAGE_NAME] = full
                named[REF_NAME] = name
                entries.append({**top, "annotations": named})
        elif not any(e.get("digest") == top["digest"] and not (e.get("annotations") or {}).get(REF_NAME)
                     for e in entries):
            entries.append(top)
        layout_index["schemaVersion"] = 2
        layout_index["mediaType"] = OCI_INDEX
        layout_index["manifests"] = entries
        _atomic_write(dest / LAYOUT_FILE, json.dumps(LAYOUT_VERSION).encode(), dest)
        _atomic_write(dest / INDEX_FILE, json.dumps(layout_index, indent=2).encode() + b"\n", dest)
    finally:
        os.close(dir_fd)  # also releases the lock


def _ref_names(ref_names: list[str]) -> list[tuple[str, str | None]]:
    """Each ref name's tag part, and the full reference it came from (None: it was a bare tag)."""
    names: list[tuple[str, str | None]] = []
    for raw in ref_names:
        full = None
        if any(c in raw for c in "/:@"):
            try:
                ref = parse_reference(raw)
            except UsageError:
                raise UsageError(f"invalid OCI layout ref name {raw!r}: expected a tag or an image reference") from None
            if not ref.tag:
                raise UsageError(f"invalid OCI layout ref name {raw!r}: a digest-only reference has no tag to "
                                 "name the image by")
            name, full = ref.tag, str(ref)
        else:
            name = raw
        if not name or any(c.isspace() for c in name):
            raise UsageError(f"invalid OCI layout ref name {raw!r}")
        if name not in [n for n, _f in names]:
            names.append((name, full))
    return names


def _prepare(dest: Path) -> None:
    """Refuse a destination that is something other than a layout or an empty/new directory."""
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"cannot write an OCI layout to {dest}: it exists and is not a directory",
                          hint="choose a new or empty directory, or an existing OCI layout")
    if dest.is_dir() and not (dest / LAYOUT_FILE).exists() and any(dest.iterdir()):
        raise OutputError(f"cannot write an OCI layout to {dest}: the directory is not empty and is not an OCI "
                          "layout (it has no oci-layout file)",
                          hint="choose a new or empty directory; dockyard adds to existing OCI layouts only")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the OCI layout directory {dest}: {exc.strerror}") from None


def _read_index(dest: Path) -> dict[str, Any]:
    path = dest / INDEX_FILE
    if not path.exists():
        return {}
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot add to the OCI layout {dest}: its index.json is unreadable ({exc})",
                          hint="repair or remove the layout") from None
    if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
        raise OutputError(f"cannot add to the OCI layout {dest}: its index.json is not an image index",
                          hint="repair or remove the layout")
    return index


def _copy_blob(store: BlobStore, digest: str, size: int, blobs_dir: Path, dest: Path) -> None:
    target = blobs_dir / digest.split(":", 1)[1]
    if target.exists() and target.stat().st_size == size:
        return  # content-addressed: a blob of the right name and size is already there
    if not store.has(digest):
        raise OutputError(f"cannot write the OCI layout {dest}: blob {digest} is not in the blob store "
                          f"{store.root}")
    fd, tmp = tempfile.mkstemp(dir=blobs_dir, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out, store.open(digest) as src:
            # Chunked copy: constant memory whatever the layer size.
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; layouts are usually shared with other tools and users
        os.replace(tmp, target)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"cannot write blob {digest} to the OCI layout {dest}: {exc.strerror}",
                          hint="is the disk full?") from None


def _write_blob_bytes(data: bytes, digest: str, blobs_dir: Path, dest: Path) -> None:
    target = blobs_dir / digest.split(":", 1)[1]
    if target.exists() and target.stat().st_size == len(data):
        return
    _atomic_write(target, data, dest)


def _atomic_write(path: Path, data: bytes, dest: Path) -> None:
    try:
        replace_file(path, data, 0o644)  # layouts are usually shared with other tools and users
    except OSError as exc:
        raise OutputError(f"cannot write {path.name} in the OCI layout {dest}: {exc.strerror}") from None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
