"""Pull an image for one platform: resolve the index, fetch the config and layers into a BlobStore.

With `Routes`, the image is tried at each mirror in turn and then at its own registry: a mirror that is down,
failing (5xx) or lacks the image (404) is reported and skipped, but a blob that does not match its digest stops
the pull (a mirror serving corrupted data is a problem to see, not to paper over).

Everything fetched is verified against its digest before it enters the store (the client and BlobWriter see
to that), and the manifest's claims are checked against each other: a config whose rootfs lists a different
number of layers than the manifest is refused rather than producing an image with wrong diff_ids.
"""

from __future__ import annotations

import json
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ..errors import RegistryError
from ..events import Message
from ..image.blobs import BlobStore, DigestMismatch
from ..image.model import (DOCKER_CONFIG, INDEX_TYPES, LAYER_TYPES, MANIFEST_TYPES, OCI_CONFIG, Descriptor,
                           Image, Layer, Platform, manifest_descriptors)
from ..image.reference import Reference
from .client import SCHEMA1_TYPES, RegistryClient
from .routing import Routes

# Configs of things that are not container images (helm charts, signatures, attestations) carry other types.
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
# Docker buildx attaches attestations (SBOM, provenance) to indexes as "unknown/unknown" manifests.
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class PulledImage:
    """An image pulled for one platform, with the reference asked for and the digests that pin it."""

    image: Image
    reference: Reference  # what was asked for
    digest: str  # the platform manifest's digest (what `FROM ref@digest` would pin)
    index_digest: str | None  # the index's digest when `reference` named a multi-platform index
    # The repository that served the image (a mirror's, or `reference`'s own): where its layers are fetched from
    # when the pull left them in the registry.
    source: Reference | None = None


def pull_image(client: RegistryClient, ref: Reference, platform: Platform, store: BlobStore,
               routes: Routes | None = None, *, fetch_layers: bool = True) -> PulledImage:
    """Pull `ref` for `platform` into `store`, through its mirrors first when `routes` has any. Without
    `fetch_layers` only the manifest and config are downloaded: the layers stay in the registry until something
    needs their bytes (fetched from `PulledImage.source`), and a push to that registry mounts them."""
    candidates = routes.pull_candidates(ref) if routes is not None else [ref]
    for source, next_source in zip(candidates, candidates[1:] + [None]):
        try:
            pulled = _pull_from(client, source, platform, store, fetch_layers)
        except DigestMismatch:
            raise
        except RegistryError as exc:
            if next_source is None:
                raise
            client.events.emit(Message(level="warning", text=f"cannot pull {ref} from {source.registry}: "
                                                             f"{exc.message}; trying {next_source.registry}"))
            continue
        # Recorded under the name the user wrote, whichever mirror served it (the digest is the same).
        return PulledImage(pulled.image, ref, pulled.digest, pulled.index_digest, Reference(source.registry,
                                                                                            source.repository))
    raise AssertionError("pull_candidates returned no candidates")


def _pull_from(client: RegistryClient, ref: Reference, platform: Platform, store: BlobStore,
               fetch_layers: bool = True) -> PulledImage:
    body, media_type, digest = client.get_manifest(ref)
    index_digest = None
    doc = _parse_document(body, ref, "manifest")
    _reject_schema1(media_type, doc, ref)
    if media_type in INDEX_TYPES:
        index_digest = digest
        entry = select_platform(doc, platform, ref)
        pinned = ref.with_digest(entry.digest)
        body, media_type, digest = client.get_manifest(pinned, accept=MANIFEST_TYPES)
        doc = _parse_document(body, ref, "manifest")
        _reject_schema1(media_type, doc, ref)
        if media_type in INDEX_TYPES:
            raise RegistryError(f"the {platform} entry of {ref} is itself an index ({entry.digest}); nested "
                                "indexes are not supported")
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{ref} is not a container image: its manifest has media type {media_type!r}",
                            hint="dockyard pulls OCI and Docker schema 2 images and indexes")

    try:
        config_desc, layer_descs = manifest_descriptors(doc)
    except ValueError:
        raise RegistryError(f"the manifest of {ref} ({digest}) is malformed: it lacks a valid config or layer "
                            "list") from None
    if config_desc.media_type and config_desc.media_type not in CONFIG_TYPES:
        raise RegistryError(f"{ref} is not a container image: its config has media type "
                            f"{config_desc.media_type!r}",
                            hint="it may be an artifact (a helm chart, a signature) stored in a registry")
    for desc in layer_descs:
        if desc.media_type not in LAYER_TYPES:
            raise RegistryError(f"{ref} has a layer {desc.digest} of unsupported media type "
                                f"{desc.media_type!r}")

    client.fetch_blob(ref, config_desc.digest, store, size=config_desc.size)
    config = _parse_document(store.read_bytes(config_desc.digest), ref, f"config {config_desc.digest}")
    rootfs: dict[str, Any] = config["rootfs"] if isinstance(config.get("rootfs"), dict) else {}
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_descs):
        raise RegistryError(f"{ref} is broken: its manifest lists {len(layer_descs)} layers but its config's "
                            f"rootfs lists {len(diff_ids) if isinstance(diff_ids, list) else 0} diff_ids",
                            hint="rebuild or re-push the image")

    if fetch_layers:
        _fetch_all(client, ref, layer_descs, store)
    else:
        for desc in layer_descs:  # a push to this registry mounts them from here
            client.remember_source(ref, desc.digest)
    layers = [Layer(desc, diff_id) for desc, diff_id in zip(layer_descs, diff_ids)]
    image = Image.from_documents(doc, config, layers, manifest_media_type=media_type)
    return PulledImage(image=image, reference=ref, digest=digest, index_digest=index_digest)


def select_platform(index: dict[str, Any], platform: Platform, ref: Reference) -> Descriptor:
    """The index entry for `platform`: an exact variant match is preferred over an entry without a variant."""
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise RegistryError(f"the index of {ref} is malformed: it has no manifest list")
    candidates: list[tuple[Descriptor, dict[str, Any]]] = []
    available: list[str] = []
    for entry in manifests:
        if not isinstance(entry, dict) or not isinstance(entry.get("platform"), dict):
            continue
        plat = entry["platform"]
        annotations = entry.get("annotations") or {}
        if plat.get("os") == "unknown" or annotations.get(_ATTESTATION_ANNOTATION):
            continue  # an attestation, not a runnable image
        available.append("/".join(str(p) for p in (plat.get("os"), plat.get("architecture"), plat.get("variant"))
                                  if p))
        if platform.matches(plat):
            try:
                candidates.append((Descriptor.from_json(entry), plat))
            except (KeyError, TypeError, ValueError):
                raise RegistryError(f"the index of {ref} has a malformed entry for {platform}") from None
    if not candidates:
        listed = ", ".join(sorted(set(available))) or "none"
        raise RegistryError(f"{ref} has no image for platform {platform}; it has: {listed}",
                            hint="choose one of these with --platform, or use an image built for " + str(platform))
    for desc, plat in candidates:
        if platform.variant and plat.get("variant") == platform.variant:
            return desc
    return candidates[0][0]


def _fetch_all(client: RegistryClient, ref: Reference, descs: list[Descriptor], store: BlobStore) -> None:
    """Fetch layers concurrently (bounded by client.max_parallel); the first failure stops the rest."""
    unique: dict[str, Descriptor] = {}
    for desc in descs:
        unique.setdefault(desc.digest, desc)  # an image may repeat a layer (e.g. an empty one)
    if not unique:
        return
    workers = min(client.max_parallel, len(unique))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
        futures = [pool.submit(client.fetch_blob, ref, d.digest, store, d.size) for d in unique.values()]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()  # not started yet: drop; running ones finish (their writers clean up on error)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]


def _parse_document(data: bytes, ref: Reference, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"the {what} of {ref} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"the {what} of {ref} is not a JSON object")
    return doc


def _reject_schema1(media_type: str, doc: dict[str, Any], ref: Reference) -> None:
    if media_type in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise RegistryError(f"{ref} uses the Docker image manifest schema 1, which dockyard does not support",
                            hint="schema 1 was deprecated in 2017; re-push the image with a current docker, "
                                 "skopeo or dockyard, which write schema 2 or OCI manifests")
