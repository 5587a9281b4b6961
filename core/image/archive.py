"""Write an image as a `docker load` tarball (what `docker save` writes since docker 25).

The tarball carries both formats docker has used, so old and new loaders accept it:

* the legacy `manifest.json`: `[{"Config": "blobs/sha256/C", "RepoTags": ["name:tag"], "Layers": [...]}]`,
  read by `docker load` (all versions) and `skopeo ... docker-archive:FILE`;
* an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`), read by docker 25+ with the containerd
  image store and by other OCI tools.

Layers go in as stored (usually gzip): docker load and skopeo decompress them while loading and check them
against the config's diff_ids, and keeping them compressed keeps the archive's OCI manifest identical to the
pushed one (same digest). The tar is written entry by entry from the blob files (never a whole layer in
memory) into a temporary file beside `dest`, renamed over `dest` only when complete.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from ..errors import OutputError, UsageError
from .blobs import BlobStore
from .layout import CONTAINERD_IMAGE_NAME, LAYOUT_VERSION, REF_NAME
from .model import OCI_INDEX, Image
from .reference import DOCKER_HUB, Reference, parse_reference


def write_docker_archive(image: Image, store: BlobStore, dest: Path, repo_tags: list[str]) -> None:
    """Write `image` to `dest` as a tarball `docker load` accepts, tagged with each of `repo_tags`."""
    dest = Path(dest)
    refs = [_tag_reference(t) for t in repo_tags]
    if dest.is_dir():
        raise OutputError(f"cannot write the image tarball {dest}: it is a directory",
                          hint="give a file name, e.g. dest=image.tar")
    for layer in image.layers:
        if not store.has(layer.digest):
            raise OutputError(f"cannot write the image tarball {dest}: layer {layer.digest} is not in the blob "
                              f"store {store.root}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write the image tarball {dest}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _write_entries(tar, image, store, refs)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the tarball is meant to be handed on
        os.replace(tmp, dest)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"cannot write the image tarball {dest}: {exc.strerror or exc}",
                          hint="is the disk full?") from None
    except BaseException:
        _unlink(tmp)
        raise


def _write_entries(tar: tarfile.TarFile, image: Image, store: BlobStore, refs: list[Reference]) -> None:
    _add_dir(tar, "blobs")
    _add_dir(tar, "blobs/sha256")
    written: set[str] = set()
    for layer in image.layers:
        if layer.digest in written:
            continue  # an image may repeat a layer; the tar needs it once
        written.add(layer.digest)
        info = _file_info(_blob_path(layer.digest), store.size(layer.digest))
        with store.open(layer.digest) as f:
            tar.addfile(info, f)  # copies exactly info.size bytes, in chunks
    config = image.config_bytes()
    config_digest = image.config_descriptor().digest
    manifest = image.manifest_bytes()
    manifest_digest = image.digest
    for digest, data in ((config_digest, config), (manifest_digest, manifest)):
        if digest not in written:
            written.add(digest)
            _add_bytes(tar, _blob_path(digest), data)

    index_entries = []
    no_ref: list[Reference | None] = [None]  # the image, without a name
    for ref in refs or no_ref:
        entry = {"mediaType": image.manifest_media_type, "digest": manifest_digest, "size": len(manifest)}
        if ref is not None:
            entry["annotations"] = {CONTAINERD_IMAGE_NAME: str(ref), REF_NAME: ref.tag}
        index_entries.append(entry)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
    legacy = [{
        "Config": _blob_path(config_digest),
        # docker writes null for an untagged image; loaders then keep it by ID only.
        "RepoTags": [familiar_name(r) for r in refs] or None,
        "Layers": [_blob_path(layer.digest) for layer in image.layers],
    }]
    _add_bytes(tar, "oci-layout", json.dumps(LAYOUT_VERSION).encode())
    _add_bytes(tar, "index.json", json.dumps(index).encode())
    _add_bytes(tar, "manifest.json", json.dumps(legacy).encode())


def familiar_name(ref: Reference) -> str:
    """`docker.io/library/busybox:latest` → `busybox:latest`, as docker writes RepoTags."""
    if ref.registry == DOCKER_HUB:
        repo = ref.repository[len("library/"):] if ref.repository.startswith("library/") else ref.repository
        name = repo
    else:
        name = ref.name
    return f"{name}:{ref.tag}"


def _tag_reference(text: str) -> Reference:
    try:
        ref = parse_reference(text)
    except UsageError as exc:
        raise UsageError(f"invalid tag for the image tarball: {exc.message}") from None
    if not ref.tag or ref.digest:
        raise UsageError(f"invalid tag for the image tarball: {text!r} (docker archives name images by "
                         "name:tag, not by digest)")
    return ref


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _file_info(name: str, size: int) -> tarfile.TarInfo:
    # Fixed owner, mode and time: the same image gives the same tarball.
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = _file_info(name, 0)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_file_info(name, len(data)), io.BytesIO(data))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
