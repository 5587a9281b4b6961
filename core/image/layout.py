"""Write an image into an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/...`).

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
from pathlib import Path
from typing import Any

from ..errors import OutputError, UsageError
from ..files import replace_file
from .blobs import BlobStore
from .model import OCI_INDEX, Descriptor, Image
from .reference import parse_reference

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
REF_NAME = "org.opencontainers.image.ref.name"


def write_oci_layout(image: Image, store: BlobStore, dest: Path, ref_names: list[str]) -> None:
    """Add `image` to the OCI layout at `dest` (created if missing), once per ref name.

    A ref name is stored as its tag part, as `oci:DIR:TAG` addresses it in skopeo and buildah: a full
    reference (`registry/repo:1.0`) contributes `1.0`; a bare word (`1.0`, `latest`) is used as it is. With no
    ref names, the image is added without one (reachable by digest only).
    """
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
        index = _read_index(dest)

        manifest = image.manifest_bytes()
        manifest_digest = image.digest
        config = image.config_bytes()
        config_digest = image.config_descriptor().digest
        for layer in image.layers:
            _copy_blob(store, layer.digest, layer.size, blobs_dir, dest)
        _write_blob_bytes(config, config_digest, blobs_dir, dest)
        _write_blob_bytes(manifest, manifest_digest, blobs_dir, dest)

        platform = {"architecture": image.platform.architecture, "os": image.platform.os}
        if image.platform.variant:
            platform["variant"] = image.platform.variant
        base = Descriptor(image.manifest_media_type, manifest_digest, len(manifest),
                          platform=tuple(platform.items())).to_json()
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        if names:
            replaced = set(names)
            entries = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) not in replaced]
            for name in names:
                entries.append({**base, "annotations": {REF_NAME: name}})
        elif not any(e.get("digest") == manifest_digest and not (e.get("annotations") or {}).get(REF_NAME)
                     for e in entries):
            entries.append(base)
        index["schemaVersion"] = 2
        index["mediaType"] = OCI_INDEX
        index["manifests"] = entries
        _atomic_write(dest / LAYOUT_FILE, json.dumps(LAYOUT_VERSION).encode(), dest)
        _atomic_write(dest / INDEX_FILE, json.dumps(index, indent=2).encode() + b"\n", dest)
    finally:
        os.close(dir_fd)  # also releases the lock


def _ref_names(ref_names: list[str]) -> list[str]:
    names: list[str] = []
    for raw in ref_names:
        if any(c in raw for c in "/:@"):
            try:
                ref = parse_reference(raw)
            except UsageError:
                raise UsageError(f"invalid OCI layout ref name {raw!r}: expected a tag or an image reference") from None
            if not ref.tag:
                raise UsageError(f"invalid OCI layout ref name {raw!r}: a digest-only reference has no tag to "
                                 "name the image by")
            name = ref.tag
        else:
            name = raw
        if not name or any(c.isspace() for c in name):
            raise UsageError(f"invalid OCI layout ref name {raw!r}")
        if name not in names:
            names.append(name)
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
