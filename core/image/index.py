"""The image index: an OCI image index (or a Docker manifest list) pointing at one manifest per platform, plus
the manifests that ride along with them (attestation manifests, whose descriptors say which platform manifest
they describe). Immutable like every value of the image model: mutation returns a new index."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from .model import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEX_TYPES, OCI_INDEX, Descriptor, Image, Platform,
                    canonical_json, sha256_digest)

# How BuildKit marks an attestation manifest's descriptor in an index (its platform is unknown/unknown), and
# the annotation naming the platform manifest it is about.
REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION_MANIFEST = "attestation-manifest"
REFERENCE_DIGEST = "vnd.docker.reference.digest"


def platform_json(platform: Platform) -> tuple[tuple[str, str], ...]:
    """A descriptor's `platform` object for `platform` (architecture, os, variant: the keys OCI defines)."""
    fields = [("architecture", platform.architecture), ("os", platform.os)]
    if platform.variant:
        fields.append(("variant", platform.variant))
    return tuple(fields)


def image_descriptor(image: Image, annotations: tuple[tuple[str, str], ...] = ()) -> Descriptor:
    """The index entry for an image: its manifest's media type, digest and size, and its platform."""
    body = image.manifest_bytes()
    return Descriptor(image.manifest_media_type, sha256_digest(body), len(body), annotations=annotations,
                      platform=platform_json(image.platform))


def descriptor_platform(descriptor: Descriptor) -> Platform | None:
    """The platform an index entry names (None: it names none, or `unknown/unknown` as attestation entries do)."""
    fields = dict(descriptor.platform)
    if not fields.get("os") or not fields.get("architecture") or fields.get("os") == "unknown":
        return None
    return Platform(fields["os"], fields["architecture"], fields.get("variant") or None)


def is_attestation(descriptor: Descriptor) -> bool:
    return dict(descriptor.annotations).get(REFERENCE_TYPE) == ATTESTATION_MANIFEST


@dataclass(frozen=True)
class ImageIndex:
    """An image index: its entries in order (platform manifests, then anything that rides along with them),
    its annotations and its media type (OCI's index, or Docker's manifest list when the entries are Docker
    manifests). The serialized form is canonical JSON, so an index has one digest."""

    manifests: tuple[Descriptor, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    media_type: str = OCI_INDEX

    @classmethod
    def of_images(cls, images: tuple[Image, ...] | list[Image],
                  annotations: tuple[tuple[str, str], ...] = ()) -> ImageIndex:
        """The index of `images` (one per platform, in order); a Docker manifest list when they are Docker
        manifests (a manifest list cannot carry annotations: the caller refuses them first)."""
        docker = bool(images) and all(image.manifest_media_type == DOCKER_MANIFEST for image in images)
        return cls(tuple(image_descriptor(image) for image in images), tuple(sorted(annotations)),
                   DOCKER_MANIFEST_LIST if docker else OCI_INDEX)

    # --- mutation returns a new value ---
    def with_manifest(self, descriptor: Descriptor) -> ImageIndex:
        """The index with `descriptor` added; an entry of the same platform (or an attestation of the same
        subject) is replaced where it stood, so merging a rebuilt platform keeps one entry for it."""
        key = _entry_key(descriptor)
        kept = [d for d in self.manifests if key is None or _entry_key(d) != key]
        if len(kept) == len(self.manifests):
            return replace(self, manifests=self.manifests + (descriptor,))
        position = next(i for i, d in enumerate(self.manifests) if _entry_key(d) == key)
        return replace(self, manifests=tuple(kept[:position]) + (descriptor,) + tuple(kept[position:]))

    def with_annotations(self, annotations: tuple[tuple[str, str], ...] | dict[str, str]) -> ImageIndex:
        merged = dict(self.annotations) | dict(annotations)
        return replace(self, annotations=tuple(sorted(merged.items())))

    # --- reading ---
    @property
    def platforms(self) -> tuple[Platform, ...]:
        """The platforms of the image entries, in order (attestation entries name none)."""
        return tuple(p for p in (descriptor_platform(d) for d in self.manifests if not is_attestation(d)) if p)

    def for_platform(self, platform: Platform) -> Descriptor | None:
        for descriptor in self.manifests:
            found = descriptor_platform(descriptor)
            if found is not None and not is_attestation(descriptor) and platform.matches(dict(descriptor.platform)):
                return descriptor
        return None

    # --- serialization ---
    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type,
                               "manifests": [d.to_json() for d in self.manifests]}
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        return sha256_digest(self.to_bytes())

    @property
    def size(self) -> int:
        return len(self.to_bytes())

    def descriptor(self, annotations: tuple[tuple[str, str], ...] = ()) -> Descriptor:
        """How a layout's index.json (or another index) points at this index."""
        return Descriptor(self.media_type, self.digest, self.size, annotations=annotations)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageIndex:
        """An index document as a registry or layout holds it; ValueError when it is not one."""
        media_type = doc.get("mediaType") or OCI_INDEX
        if media_type not in INDEX_TYPES or not isinstance(doc.get("manifests"), list):
            raise ValueError("not an image index (no manifests list)")
        try:
            manifests = tuple(Descriptor.from_json(d) for d in doc["manifests"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValueError("an entry of the index is not a valid descriptor") from None
        annotations = doc.get("annotations") or {}
        return cls(manifests, tuple(sorted((k, v) for k, v in annotations.items() if isinstance(v, str))),
                   media_type)

    @classmethod
    def from_bytes(cls, body: bytes) -> ImageIndex:
        try:
            doc = json.loads(body)
        except ValueError:
            raise ValueError("not JSON") from None
        if not isinstance(doc, dict):
            raise ValueError("not an image index")
        return cls.from_json(doc)


def _entry_key(descriptor: Descriptor) -> tuple[str, ...] | None:
    """What makes two entries the same slot of an index: the platform of an image entry, the subject of an
    attestation entry (None: an entry without either, which is only ever added)."""
    if is_attestation(descriptor):
        subject = dict(descriptor.annotations).get(REFERENCE_DIGEST)
        return ("attestation", subject) if subject else None
    platform = descriptor_platform(descriptor)
    return ("image", str(platform)) if platform is not None else None
