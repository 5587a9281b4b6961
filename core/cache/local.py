"""The local cache (--cache-from type=local,src=DIR / --cache-to type=local,dest=DIR): the registry cache's
manifest, config and layer blobs kept in an OCI image layout directory instead of a registry.

The directory is what BuildKit's local cache is (`oci-layout`, `index.json`, `blobs/sha256/...`), the cache
manifest named in index.json by `org.opencontainers.image.ref.name` = the tag (default `latest`), so a GitLab
`cache:` path or a Jenkins workspace directory carries it between jobs. An export copies the blobs in first
(temporary name, then rename) and replaces index.json last, so a job that is stopped half-way leaves the
previous cache readable; then it deletes the blobs no manifest of the index names any more, so the directory
holds one build's cache, not every build's (BuildKit's grows until it is deleted). Reading it downloads
nothing: a layer blob is copied into the blob store only when a step needs it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..files import replace_file
from ..image.blobs import BlobStore
from ..image.layout import INDEX_FILE, LAYOUT_FILE, LAYOUT_VERSION, REF_NAME
from ..image.model import OCI_MANIFEST, Descriptor
from .remote import CACHE_CONFIG, CorruptCache, cache_documents, cache_manifest, entries_of_manifest
from .store import StepEntry

_HEX = re.compile(r"[0-9a-f]{64}")
_COPY_CHUNK = 1 << 20


class LocalBlobs:
    """The layer blobs of a local cache directory: copied into the blob store when a step needs one."""

    def __init__(self, directory: Path):
        self.directory = directory

    def fetch(self, digest: str, store: BlobStore, size: int) -> None:
        path = blob_path(self.directory, digest)
        try:
            with open(path, "rb") as src, store.writer(expected_digest=digest) as out:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
                out.commit()
        except FileNotFoundError:
            raise OutputError(f"the local cache {self.directory} lost blob {digest} since it was read",
                              hint="was the directory changed while the build ran? build again") from None
        except OSError as exc:
            raise OutputError(f"cannot read blob {digest} of the local cache {self.directory}: {exc.strerror}",
                              subject=str(path)) from None


def blob_path(directory: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or not _HEX.fullmatch(hex_digest):
        raise CorruptCache(f"it names a blob {digest!r} that is not a sha256 digest")
    return directory / "blobs" / "sha256" / hex_digest


def read_local_cache(directory: Path, tag: str, digest: str = "") -> list[StepEntry] | None:
    """The entries of the cache under `tag` (or manifest `digest`) in the layout at `directory`; None when there
    is no layout there yet (the first CI job). A missing tag is OutputError; a layout whose contents are not a
    dockyard cache, CorruptCache."""
    index_path = directory / INDEX_FILE
    try:
        index = json.loads(index_path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read {index_path}: {exc.strerror}") from None
    except ValueError:
        raise CorruptCache(f"its {INDEX_FILE} is not JSON") from None
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise CorruptCache(f"its {INDEX_FILE} is not an image index")
    chosen = None
    for item in manifests:
        if not isinstance(item, dict):
            continue
        name = (item.get("annotations") or {}).get(REF_NAME)
        if (digest and item.get("digest") == digest) or (not digest and name == tag):
            chosen = item
    if chosen is None:
        wanted = digest or f"tag {tag!r}"
        suffix = f",tag={tag}" if tag != "latest" else ""
        raise OutputError(f"the local cache {directory} has no {wanted}",
                          hint=f"write it with --cache-to type=local,dest=DIR{suffix}")
    manifest_digest = str(chosen.get("digest"))

    def read_blob(descriptor: Descriptor) -> bytes:
        try:
            return blob_path(directory, descriptor.digest).read_bytes()
        except OSError:
            raise CorruptCache(f"its blob {descriptor.digest} is missing") from None

    try:
        body = blob_path(directory, manifest_digest).read_bytes()
    except OSError:
        raise CorruptCache(f"its manifest {manifest_digest} is missing") from None
    return entries_of_manifest(body, read_blob)


def write_local_cache(directory: Path, tag: str, store: BlobStore, entries: list[StepEntry]) -> str:
    """Write `entries` as the cache under `tag` in the layout at `directory` (created if missing); other tags'
    caches in it stay. Returns the manifest's digest. Every layer blob must be in `store`."""
    config_bytes, layers = cache_documents(entries)
    config = Descriptor(CACHE_CONFIG, store.put_bytes(config_bytes), len(config_bytes))
    manifest = cache_manifest(config, layers)
    manifest_digest = store.put_bytes(manifest)
    blobs_dir = directory / "blobs" / "sha256"
    try:
        if directory.exists() and not (directory / LAYOUT_FILE).exists() and any(directory.iterdir()):
            raise OutputError(f"cannot write the local cache to {directory}: the directory is not empty and is "
                              "not an OCI layout (it has no oci-layout file)",
                              hint="give dest= a new or empty directory, or one an earlier --cache-to wrote")
        blobs_dir.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise OutputError(f"cannot write the local cache to {directory}: {exc.strerror}",
                          subject=str(directory)) from None
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)  # two builds writing one directory take turns
        for descriptor in [*layers, config, Descriptor(OCI_MANIFEST, manifest_digest, len(manifest))]:
            _copy_in(store, descriptor, blobs_dir, directory)
        index = _read_index(directory)
        kept = [m for m in index if (m.get("annotations") or {}).get(REF_NAME) != tag]
        top = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
               "annotations": {REF_NAME: tag}}
        document = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [*kept, top]}
        replace_file(directory / LAYOUT_FILE, json.dumps(LAYOUT_VERSION).encode(), 0o644)
        replace_file(directory / INDEX_FILE, json.dumps(document, indent=2).encode() + b"\n", 0o644)
        _remove_unreferenced(directory, [*kept, top])
    except OSError as exc:
        raise OutputError(f"cannot write the local cache to {directory}: {exc.strerror}",
                          hint="is the disk full?", subject=str(directory)) from None
    finally:
        os.close(dir_fd)  # also releases the lock
    return manifest_digest


def _read_index(directory: Path) -> list[dict[str, Any]]:
    try:
        index = json.loads((directory / INDEX_FILE).read_bytes())
    except FileNotFoundError:
        return []
    except ValueError:
        return []  # an unreadable index names nothing worth keeping: the new one replaces it
    manifests = index.get("manifests") if isinstance(index, dict) else None
    return [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []


def _copy_in(store: BlobStore, descriptor: Descriptor, blobs_dir: Path, directory: Path) -> None:
    target = blobs_dir / descriptor.digest.split(":", 1)[1]
    if target.exists() and target.stat().st_size == descriptor.size:
        return  # content-addressed: the blob is already there
    if not store.has(descriptor.digest):
        raise OutputError(f"cannot write the local cache to {directory}: blob {descriptor.digest} is not in the "
                          f"blob store {store.root}")
    with store.open(descriptor.digest) as src:
        replace_file(target, src)


def _remove_unreferenced(directory: Path, manifests: list[dict[str, Any]]) -> None:
    """Delete the blobs (and leftover temporary files) that no manifest of the index names, when every manifest
    is a dockyard cache: a layout that also holds something else (an image, BuildKit's cache) is left as it is."""
    keep: set[str] = set()
    for item in manifests:
        digest = str(item.get("digest", ""))
        try:
            document = json.loads(blob_path(directory, digest).read_bytes())
            config = document["config"]
            if config["mediaType"] != CACHE_CONFIG:
                return
            named = [config, *(document.get("layers") or [])]
            keep.add(digest.partition(":")[2])
            keep.update(str(d["digest"]).partition(":")[2] for d in named)
        except (OSError, ValueError, CorruptCache, KeyError, TypeError, AttributeError):
            return
    for path in (directory / "blobs" / "sha256").iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)
