"""Push an image: upload the blobs each target repository lacks, then put the manifest under every tag.

A blob is uploaded once per registry at most: the client mounts it into further repositories (and from the
repository a base image was pulled from) instead of sending it again.

The manifest is serialized once, so every tag (in any repository or registry) names the same digest. Blobs go
first and manifests last because a registry refuses a manifest whose blobs it doesn't have.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from ..errors import RegistryError, UsageError
from ..events import ImagePushed
from ..image.blobs import BlobStore
from ..image.model import Image
from ..image.reference import Reference
from .client import RegistryClient


def push_image(client: RegistryClient, image: Image, store: BlobStore, refs: list[Reference]) -> str:
    """Push `image` to every reference in `refs`; returns the manifest digest."""
    if not refs:
        raise UsageError("nothing to push: no image reference given", hint="tag the image with -t NAME:TAG")
    manifest = image.manifest_bytes()
    digest = image.digest
    for ref in refs:
        if ref.digest and ref.digest != digest:
            raise UsageError(f"cannot push to {ref}: the image's digest is {digest}")

    config = image.config_bytes()
    config_desc = image.config_descriptor()
    if not store.has(config_desc.digest):
        store.put_bytes(config)
    # Blobs live per repository: a blob in registry/a is not visible to registry/b without a mount. Each blob
    # goes to the repositories one after another, so that the second one mounts what the first received.
    repositories: dict[tuple[str, str], Reference] = {}
    for ref in refs:
        repositories.setdefault((ref.registry, ref.repository), Reference(ref.registry, ref.repository))

    blobs: dict[str, int] = {}
    for layer in image.layers:
        # A layer of a registry cache hit is not in the store but mountable from the cache's repository.
        if not store.has(layer.digest) and not all(client.knows_source(registry, layer.digest)
                                                   for registry, _ in repositories):
            raise RegistryError(f"cannot push layer {layer.digest}: it is not in the blob store {store.root}",
                                hint="the build cache may have been pruned: rebuild")
        blobs.setdefault(layer.digest, layer.size)
    blobs.setdefault(config_desc.digest, config_desc.size)

    def upload_everywhere(blob_digest: str, size: int) -> None:
        for repo in repositories.values():
            client.upload_blob(repo, blob_digest, size, store)

    with ThreadPoolExecutor(max_workers=min(client.max_parallel, len(blobs)), thread_name_prefix="push") as pool:
        futures = [pool.submit(upload_everywhere, d, size) for d, size in blobs.items()]
        _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    for ref in refs:
        # A reference without a tag (name@digest) is pushed by digest: stored, but untagged.
        client.put_manifest(ref, ref.tag or digest, manifest, image.manifest_media_type)
        pushed = ref.with_tag(ref.tag) if ref.tag else ref.with_digest(digest)
        client.events.emit(ImagePushed(reference=str(pushed), digest=digest))
    return digest
