"""Signatures into a registry, beside the image they sign and as cosign lays them out:

* the classic scheme: an OCI manifest tagged `sha256-<hex>.sig` whose layers are simple-signing payloads, the
  signature (and a keyless signer's certificate) in each layer's annotations. A new signature is appended to
  the layers already there, as cosign does, so other signers' signatures stay; a signature our key already
  made over the same payload is not added twice.
* OCI 1.1 referrers: a manifest whose `subject` is the signed image and whose one layer is a Sigstore bundle
  v0.3. Where the registry has the referrers API (GET /v2/<name>/referrers/<digest> answers with an index), the
  manifest put by digest is all it takes; elsewhere the referrers tag schema's fallback: the index of the
  image's referrers at the tag `sha256-<hex>`, with this manifest added to the entries already there.

Appending is read-modify-write: two signers of the same digest at the same instant can lose one signature, as
with cosign (registries offer no compare-and-swap on tags)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import RegistryError
from ..image.blobs import BlobStore
from ..image.model import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Descriptor, canonical_json, sha256_digest
from ..image.reference import Reference
from ..registry.client import RegistryClient
from ..registry.copy import manifest_exists
from .formats import (BUNDLE_CONTENT_ANNOTATION, BUNDLE_MEDIA_TYPE, BUNDLE_PREDICATE_ANNOTATION,
                      SIMPLE_SIGNING_MEDIA_TYPE, referrers_tag, signature_tag)

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
CREATED_ANNOTATION = "org.opencontainers.image.created"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # go-containerregistry's empty image's times, which cosign's .sig config has


@dataclass(frozen=True)
class StoredReferrer:
    """A referrer manifest put into a repository, and how its subject finds it: "referrers-api" (the registry
    indexes it) or "fallback-tag" (the index at the `sha256-<hex>` tag lists it)."""

    digest: str
    stored: str
    tag: str | None = None


def push_classic_signature(client: RegistryClient, repo: Reference, digest: str, payload: bytes,
                           annotations: dict[str, str], store: BlobStore, *,
                           already_signed: Callable[[bytes, dict[str, str]], bool] | None = None) -> str:
    """Add one simple-signing layer (`payload` with `annotations`) to `repo`'s `sha256-<hex>.sig` manifest of
    `digest`; returns the tag. `already_signed(payload, annotations)` says whether an existing layer is the same
    signer's signature of the same payload (then nothing is added)."""
    tag = signature_tag(digest)
    layers: list[dict[str, Any]] = []
    if manifest_exists(client, repo, tag):
        body, _media_type, _ = client.get_manifest(repo.with_tag(tag))
        layers = [layer for layer in _json_list(body, "layers", f"{repo.name}:{tag}") if isinstance(layer, dict)]
    payload_digest = sha256_digest(payload)
    for layer in layers:
        if layer.get("digest") == payload_digest and already_signed is not None:
            client.fetch_blob(repo, payload_digest, store, layer.get("size"))
            if already_signed(store.read_bytes(payload_digest), dict(layer.get("annotations") or {})):
                client.events.info(f"{repo.name}:{tag} already holds this key's signature of {digest}")
                return tag
    store.put_bytes(payload)
    client.upload_blob(repo, payload_digest, len(payload), store)
    layers.append({"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": len(payload), "digest": payload_digest,
                   "annotations": dict(sorted(annotations.items()))})
    config = canonical_json({
        "architecture": "", "created": _ZERO_TIME, "os": "", "config": {},
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}})
    config_digest = store.put_bytes(config)
    client.upload_blob(repo, config_digest, len(config), store)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
                               "layers": layers})
    client.put_manifest(repo, tag, manifest, OCI_MANIFEST)
    return tag


def _json_list(body: bytes, key: str, where: str) -> list[Any]:
    """The `key` list of the manifest or index at `where` (which we are about to add to); RegistryError when it
    is something else, which is not ours to overwrite."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    items = doc.get(key) if isinstance(doc, dict) else None
    foreign = key == "layers" and isinstance(items, list) and any(
        not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE for layer in items)
    if not isinstance(items, list) or foreign:
        what = "signature manifest" if key == "layers" else "referrers index"
        raise RegistryError(f"{where} already holds something that is not a {what}",
                            hint="it is not overwritten: remove the tag if it is stale")
    return list(items)


def referrers_api(client: RegistryClient, repo: Reference, digest: str) -> bool:
    """Whether the registry offers the OCI 1.1 referrers API: GET /v2/<name>/referrers/<digest> answers 200
    with an image index (even an empty one). A registry without it answers 404 (or 400/405 for a route it
    does not know)."""
    ref = repo.with_digest(digest)
    what = f"list the referrers of {ref}"
    resp = client.send_request("GET", client.url_for(ref, f"referrers/{digest}"), ref, "pull", what=what,
                               headers={"Accept": OCI_INDEX})
    with resp:
        if resp.status_code != 200:
            return False
        try:
            doc = json.loads(resp.content)
        except ValueError:
            return False
    return isinstance(doc, dict) and isinstance(doc.get("manifests"), list)


def push_referrer(client: RegistryClient, repo: Reference, subject: Descriptor, bundle: bytes,
                  predicate_type: str, content: str, store: BlobStore, *, api: bool | None = None,
                  created: datetime | None = None) -> StoredReferrer:
    """Put a bundle v0.3 (`content`: "dsse-envelope" or "message-signature") as a referrer of `subject` in
    `repo`, annotated as cosign v3 annotates it. `api`: whether the registry has the referrers API (None: ask)."""
    store.put_bytes(EMPTY_JSON)
    empty_digest = sha256_digest(EMPTY_JSON)
    client.upload_blob(repo, empty_digest, len(EMPTY_JSON), store)
    bundle_digest = store.put_bytes(bundle)
    client.upload_blob(repo, bundle_digest, len(bundle), store)
    when = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations = {BUNDLE_CONTENT_ANNOTATION: content, BUNDLE_PREDICATE_ANNOTATION: predicate_type,
                   CREATED_ANNOTATION: when}
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "size": len(EMPTY_JSON), "digest": empty_digest},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": len(bundle), "digest": bundle_digest}],
        "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": subject.digest},
        "annotations": annotations})
    digest = sha256_digest(manifest)
    client.put_manifest(repo, digest, manifest, OCI_MANIFEST)
    if api is None:
        api = referrers_api(client, repo, subject.digest)
    if api:
        return StoredReferrer(digest, "referrers-api")
    tag = referrers_tag(subject.digest)
    entries: list[dict[str, Any]] = []
    if manifest_exists(client, repo, tag):
        body, _media_type, _ = client.get_manifest(repo.with_tag(tag))
        entries = [e for e in _json_list(body, "manifests", f"{repo.name}:{tag}")
                   if isinstance(e, dict) and e.get("digest") != digest]
    entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                    "artifactType": BUNDLE_MEDIA_TYPE, "annotations": annotations})
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    client.put_manifest(repo, tag, index, OCI_INDEX)
    return StoredReferrer(digest, "fallback-tag", tag)
