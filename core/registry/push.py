"""Push an image (or an image index and its images): upload the blobs each target repository lacks, then put
the manifest under every tag.

A blob is uploaded once per registry at most: the client mounts it into further repositories (and from the
repository a base image was pulled from) instead of sending it again.

The manifest is serialized once, so every tag (in any repository or registry) names the same digest. Blobs go
first and manifests last because a registry refuses a manifest whose blobs it doesn't have.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from ..errors import RegistryError, UsageError
from ..events import ImagePushed
from ..image.blobs import BlobStore
from ..image.index import ImageIndex
from ..image.model import Image, Layer
from ..image.reference import Reference
from .client import RegistryClient
from .parallel import run_all

# Called with the pushed digest and the repositories pushed to, once the manifest (and an index's manifests) is
# stored by digest in every one of them and before any tag is put: a signer stores its signatures there, and
# an exception it raises leaves every tag where it was.
BeforeTags = Callable[[str, list[Reference]], None]


def _repositories(refs: list[Reference]) -> list[Reference]:
    """Each repository `refs` name, once (a blob in registry/a is not visible to registry/b without a mount)."""
    repositories: dict[tuple[str, str], Reference] = {}
    for ref in refs:
        repositories.setdefault((ref.registry, ref.repository), Reference(ref.registry, ref.repository))
    return list(repositories.values())


def _upload_everywhere(client: RegistryClient, repositories: list[Reference], digest: str, size: int,
                       store: BlobStore) -> None:
    """One blob to each repository in turn, so that the second one mounts what the first received."""
    for repo in repositories:
        client.upload_blob(repo, digest, size, store)


class EarlyUploads:
    """Layer blobs sent to the push's repositories as soon as a step has made them, one at a time on a thread of
    their own, while the build goes on (the next RUN runs while the last layer uploads). Only blobs: the manifest
    is put by `push_image` once the image is complete, so a failed build never tags anything. An upload that
    fails here is simply not counted as done: `push_image` sends it again, with its retries and its error."""

    def __init__(self, client: RegistryClient, store: BlobStore, refs: list[Reference]):
        self._client = client
        self._store = store
        self._repositories = _repositories(refs)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-push")
        self._started: dict[str, Future[None]] = {}

    def add(self, layer: Layer) -> None:
        # A registry cache hit's layer is not in the store: push_image mounts or fetches it.
        if layer.digest in self._started or not self._store.has(layer.digest):
            return
        self._started[layer.digest] = self._pool.submit(_upload_everywhere, self._client, self._repositories,
                                                        layer.digest, layer.size, self._store)

    def add_config(self, image: Image) -> None:
        """The config of a finalized image: sent while the build makes its attestations (a blob like the layers:
        nothing is tagged until push_image or push_index puts the manifest)."""
        config = image.config_descriptor()
        if config.digest in self._started:
            return
        if not self._store.has(config.digest):
            self._store.put_bytes(image.config_bytes())
        self._started[config.digest] = self._pool.submit(_upload_everywhere, self._client, self._repositories,
                                                         config.digest, config.size, self._store)

    def finish(self) -> frozenset[str]:
        """Wait for the uploads; returns the digests every repository now has."""
        self._pool.shutdown(wait=True)
        return frozenset(d for d, future in self._started.items() if future.exception() is None)

    def cancel(self) -> None:
        """The build failed: drop the uploads not begun, wait for the one under way."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def push_image(client: RegistryClient, image: Image, store: BlobStore, refs: list[Reference],
               uploaded: frozenset[str] = frozenset(), before_tags: BeforeTags | None = None) -> str:
    """Push `image` to every reference in `refs`; returns the manifest digest. Blobs in `uploaded` (sent by
    EarlyUploads) are already in every repository. With `before_tags`, the manifest is put by digest into
    every repository first, then `before_tags` is called, then the tags are put."""
    if not refs:
        raise UsageError("nothing to push: no image reference given", hint="tag the image with -t NAME:TAG")
    manifest = image.manifest_bytes()
    digest = image.digest
    _check_digest_refs(refs, digest, "image")
    repositories = _repositories(refs)
    if not uploaded:
        # Nothing was sent while building (every step cached, or no early uploads): a repository that stores
        # the manifest already has every blob it names (a registry refuses a manifest whose blobs it lacks), so
        # one HEAD spares a check per blob.
        repositories = [repo for repo in repositories if not client.manifest_exists(repo, digest)]
    if repositories:
        _upload_blobs(client, [image], store, repositories, uploaded)
    if before_tags is not None:
        _before_tags(client, _repositories(refs), digest, manifest, image.manifest_media_type, before_tags)
    _put_everywhere(client, refs, digest, manifest, image.manifest_media_type)
    return digest


def push_index(client: RegistryClient, index: ImageIndex, images: list[Image], store: BlobStore,
               refs: list[Reference], uploaded: frozenset[str] = frozenset(),
               before_tags: BeforeTags | None = None) -> str:
    """Push an image index and the images it lists to every reference in `refs`; returns the index digest.
    Every blob first, then every image's manifest by digest into every repository, the index last (under
    the tags, or by digest for a reference without one): a failure on the way leaves no tag pointing at an
    index whose manifests are missing. With `before_tags`, the index is put by digest into every repository
    first, then `before_tags` is called, then the tags are put."""
    if not refs:
        raise UsageError("nothing to push: no image reference given", hint="tag the image with -t NAME:TAG")
    body = index.to_bytes()
    digest = index.digest
    _check_digest_refs(refs, digest, "index")
    listed = {d.digest for d in index.manifests}
    for image in images:
        if image.digest not in listed:
            raise ValueError(f"image {image.digest} is not in the index it is pushed with")
    repositories = _repositories(refs)
    _upload_blobs(client, images, store, repositories, uploaded)
    for image in images:
        manifest = image.manifest_bytes()
        for repo in repositories:
            client.put_manifest(repo, image.digest, manifest, image.manifest_media_type)
    if before_tags is not None:
        _before_tags(client, repositories, digest, body, index.media_type, before_tags)
    _put_everywhere(client, refs, digest, body, index.media_type)
    return digest


def _before_tags(client: RegistryClient, repositories: list[Reference], digest: str, body: bytes, media_type: str,
                 before_tags: BeforeTags) -> None:
    for repo in repositories:
        client.put_manifest(repo, digest, body, media_type)
    before_tags(digest, repositories)


def _check_digest_refs(refs: list[Reference], digest: str, what: str) -> None:
    for ref in refs:
        if ref.digest and ref.digest != digest:
            raise UsageError(f"cannot push to {ref}: the {what}'s digest is {digest}")


def _upload_blobs(client: RegistryClient, images: list[Image], store: BlobStore, repositories: list[Reference],
                  uploaded: frozenset[str]) -> None:
    """Every layer and config of `images` into every repository, in parallel, once per blob."""
    blobs: dict[str, int] = {}
    for image in images:
        config_desc = image.config_descriptor()
        if not store.has(config_desc.digest):
            store.put_bytes(image.config_bytes())
        for layer in image.layers:
            if layer.digest in uploaded:
                continue
            # A layer of a registry cache hit is not in the store but mountable from the cache's repository.
            if not store.has(layer.digest) and not all(client.knows_source(repo.registry, layer.digest)
                                                       for repo in repositories):
                raise RegistryError(f"cannot push layer {layer.digest}: it is not in the blob store {store.root}",
                                    hint="the build cache may have been pruned: rebuild")
            blobs.setdefault(layer.digest, layer.size)
        if config_desc.digest not in uploaded:
            blobs.setdefault(config_desc.digest, config_desc.size)

    run_all([partial(_upload_everywhere, client, repositories, digest, size, store) for digest, size in blobs.items()],
            client.max_parallel, "push")


def _put_everywhere(client: RegistryClient, refs: list[Reference], digest: str, body: bytes,
                    media_type: str) -> None:
    for ref in refs:
        # A reference without a tag (name@digest, or push-by-digest) is pushed by digest: stored, but untagged.
        client.put_manifest(ref, ref.tag or digest, body, media_type)
        pushed = ref.with_tag(ref.tag) if ref.tag else ref.with_digest(digest)
        client.events.emit(ImagePushed(reference=str(pushed), digest=digest))
