"""The attestation manifest of one platform manifest, as BuildKit's image exporter writes it
(exporter/containerimage/writer.go, commitAttestationsManifest; docs/attestations/attestation-storage.md):

* an OCI image manifest whose layers are the in-toto statements, media type `application/vnd.in-toto+json`,
  each annotated `in-toto.io/predicate-type`;
* its config an image config of media type `application/vnd.oci.image.config.v1+json` holding only
  `{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[...]}}` (the
  statements' digests as diff_ids: they are stored uncompressed), "only included for compatibility";
* its descriptor in the index after every platform manifest, with platform unknown/unknown and the
  annotations `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <the
  platform manifest's digest>`.

It is an `Image` (platform unknown/unknown), so pushes and OCI layouts write it as they write any image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..image.blobs import BlobStore
from ..image.index import ATTESTATION_MANIFEST, REFERENCE_DIGEST, REFERENCE_TYPE, image_descriptor
from ..image.model import OCI_MANIFEST, Descriptor, Image, Layer, sha256_digest

IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class AttestationImage(Image):
    """An attestation manifest: an image of platform unknown/unknown whose layers are in-toto statements. Its
    config has no history (BuildKit's has none)."""

    def config_json(self) -> dict[str, Any]:
        return {"architecture": UNKNOWN, "os": UNKNOWN, "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]}}


def statement_layer(body: bytes, predicate_type: str) -> Layer:
    """A statement as a layer of the attestation manifest (stored uncompressed: its diff_id is its digest)."""
    digest = sha256_digest(body)
    return Layer(Descriptor(IN_TOTO_MEDIA_TYPE, digest, len(body),
                            annotations=((PREDICATE_TYPE_ANNOTATION, predicate_type),)), digest)


def attestation_image(statements: list[tuple[str, bytes]], store: BlobStore) -> AttestationImage:
    """The attestation manifest of `statements` ((predicate type, statement bytes), in order), their blobs put
    into `store` for the push and the layout writer."""
    layers = []
    for predicate_type, body in statements:
        layer = statement_layer(body, predicate_type)
        if not store.has(layer.digest):
            store.put_bytes(body)
        layers.append(layer)
    image = AttestationImage(container_config={}, layers=tuple(layers), history=(),
                             meta={"architecture": UNKNOWN, "os": UNKNOWN}, manifest_media_type=OCI_MANIFEST)
    if not store.has(image.config_descriptor().digest):
        store.put_bytes(image.config_bytes())
    return image


def attestation_descriptor(image: AttestationImage, subject_digest: str) -> Descriptor:
    """The index entry of an attestation manifest: platform unknown/unknown, naming the manifest it is about."""
    return image_descriptor(image, ((REFERENCE_DIGEST, subject_digest), (REFERENCE_TYPE, ATTESTATION_MANIFEST)))
