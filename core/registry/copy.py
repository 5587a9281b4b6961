"""Copy a manifest (an image manifest or an index, with everything it points at) from one repository to another.

What `dockyard manifest create` needs when a source image lives in another repository than the index: a
registry refuses an index whose manifests it does not hold in that repository, and a manifest whose blobs it
does not hold. So the blobs go first, then the manifests by digest, deepest first.

A blob is never held in memory: within one registry it is mounted from the source repository (no byte moves);
when the registry declines the mount, or the source is on another registry, it streams through the blob store
(downloaded, verified against its digest, uploaded from the file). A manifest the target repository already
holds is not copied again: a registry only stores a manifest once it holds everything the manifest names.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from ..errors import RegistryError
from ..events import TransferFinished
from ..image.blobs import BlobStore
from ..image.model import INDEX_TYPES, Descriptor
from ..image.reference import Reference
from .client import ALL_MANIFEST_TYPES, SCHEMA1_TYPES, RegistryClient
from .parallel import run_all

# Indexes inside indexes are legal, but a chain deeper than this is a loop or an attack, not an image.
MAX_DEPTH = 8


def same_repository(a: Reference, b: Reference) -> bool:
    return (a.registry, a.repository) == (b.registry, b.repository)


def repository_of(ref: Reference) -> Reference:
    """`ref` without its tag or digest: the repository a copy goes to."""
    return Reference(ref.registry, ref.repository)


def manifest_exists(client: RegistryClient, repo: Reference, identifier: str, *, actions: str = "pull,push") -> bool:
    """Whether the repository holds a manifest under `identifier` (a digest or a tag): HEAD, where 404 is no and
    any other failure an error. `actions`: the token scope to ask for (a copy asks for push right after)."""
    ref = repo.with_digest(identifier) if identifier.startswith("sha256:") else repo.with_tag(identifier)
    what = f"check manifest {ref}"
    resp = client.send_request("HEAD", client.url_for(ref, f"manifests/{identifier}"), ref, actions, what=what,
                               headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)})
    with resp:
        if resp.status_code == 404:
            return False
        client.check(resp, ref, "pull", what=what)
        return True


def copy_manifest(client: RegistryClient, source: Reference, target: Reference, digest: str, store: BlobStore,
                  *, depth: int = 0) -> bool:
    """Make the manifest `digest` of `source`'s repository exist, with everything it names, in `target`'s
    repository; False when there was nothing to do (the same repository, or the target holds it already)."""
    if same_repository(source, target) or manifest_exists(client, target, digest):
        return False
    if depth > MAX_DEPTH:
        raise RegistryError(f"{source.name}@{digest} nests indexes more than {MAX_DEPTH} deep; not copied")
    body, media_type, _ = client.get_manifest(source.with_digest(digest))
    if media_type in SCHEMA1_TYPES:
        raise RegistryError(f"{source.name}@{digest} is a Docker schema 1 manifest, which cannot be copied into an "
                            "index", hint="re-push the image with a current tool (schema 2 or OCI)")
    doc = json_object(body, f"the manifest {source.name}@{digest}")
    if media_type in INDEX_TYPES:
        for child in _children(doc, "manifests", source, digest):
            copy_manifest(client, source, target, child.digest, store, depth=depth + 1)
    else:
        blobs = _children(doc, "layers", source, digest)
        if isinstance(doc.get("config"), dict):
            blobs.insert(0, _descriptor(doc["config"], source, digest))
        _copy_blobs(client, source, target, blobs, store)
    client.put_manifest(repository_of(target), digest, body, media_type)
    return True


def copy_blob(client: RegistryClient, source: Reference, target: Reference, blob: Descriptor,
              store: BlobStore) -> None:
    """One blob into `target`'s repository: mounted from `source`'s on the same registry, else streamed through
    the blob store. Foreign layers (`urls`) are not in any registry: the manifest points elsewhere for them."""
    target_repo = repository_of(target)
    if source.registry == target.registry:
        # upload_blob checks the target first, then mounts from the repository remembered here (and downloads
        # the blob only if the registry declines the mount).
        client.remember_source(repository_of(source), blob.digest)
    elif client.blob_exists(target_repo, blob.digest):
        client.remember_source(target_repo, blob.digest)
        client.events.emit(TransferFinished(digest=blob.digest, skipped="exists"))
        return
    else:
        client.fetch_blob(repository_of(source), blob.digest, store, blob.size)
    client.upload_blob(target_repo, blob.digest, blob.size, store)


def _copy_blobs(client: RegistryClient, source: Reference, target: Reference, blobs: list[Descriptor],
                store: BlobStore) -> None:
    """The blobs of one manifest, up to the client's parallel transfers at a time; the first failure stops the
    ones not started and is raised."""
    unique = list({blob.digest: blob for blob in blobs}.values())  # an image may repeat a layer
    run_all([partial(copy_blob, client, source, target, blob, store) for blob in unique], client.max_parallel,
            "copy")


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """A registry document (a manifest, an index, a config) as a JSON object; a RegistryError naming `what` when
    it is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return doc


def _children(doc: dict[str, Any], key: str, source: Reference, digest: str) -> list[Descriptor]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise RegistryError(f"the manifest {source.name}@{digest} is malformed: {key!r} is not a list")
    return [_descriptor(entry, source, digest) for entry in entries
            if not (key == "layers" and isinstance(entry, dict) and entry.get("urls"))]


def _descriptor(entry: Any, source: Reference, digest: str) -> Descriptor:
    try:
        return Descriptor.from_json(entry)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RegistryError(f"the manifest {source.name}@{digest} has a malformed descriptor") from None
