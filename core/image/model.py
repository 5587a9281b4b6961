"""The image model: descriptors, layers, configs and images, shared by every source and output.

Modelled on go-containerregistry's pkg/v1: values are immutable, mutation returns a new value, and a layer
is a lazy handle on bytes in a BlobStore, never the bytes themselves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

# --- media types ---------------------------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER,
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The bytes we hash and push for JSON documents (stable key order, no whitespace)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Platform:
    """An image platform, `os/architecture[/variant]` (e.g. linux/arm64), with architecture aliases normalized."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) == 1:
            return cls("linux", _normalize_arch(parts[0])[0], _normalize_arch(parts[0])[1])
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
        arch, variant = _normalize_arch(parts[1])
        if len(parts) == 3:
            variant = parts[2]
        return cls(parts[0], arch, variant)

    def matches(self, other: dict[str, Any]) -> bool:
        """Does an index entry's platform object fit this platform? (variant only when both say one)."""
        if other.get("os") != self.os:
            return False
        arch, variant = _normalize_arch(other.get("architecture", ""))
        variant = other.get("variant") or variant
        if arch != self.architecture:
            return False
        return not (self.variant and variant and self.variant != variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def _normalize_arch(arch: str) -> tuple[str, str | None]:
    return {
        "x86_64": ("amd64", None), "x86-64": ("amd64", None), "aarch64": ("arm64", None),
        "armhf": ("arm", "v7"), "armel": ("arm", "v6"),
    }.get(arch, (arch, None))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: how a manifest or index points at a blob (media type, digest, size)."""

    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            d["platform"] = dict(self.platform)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        platform = d.get("platform") or {}
        return cls(
            media_type=d.get("mediaType", ""),
            digest=d["digest"],
            size=int(d["size"]),
            annotations=tuple(sorted((d.get("annotations") or {}).items())),
            platform=tuple((k, v) for k, v in platform.items() if isinstance(v, str)),
        )


def manifest_descriptors(manifest: dict[str, Any]) -> tuple[Descriptor, list[Descriptor]]:
    """An image manifest's config and layer descriptors; ValueError when it has no valid config or layer list
    (the caller names the manifest and where it came from)."""
    try:
        return (Descriptor.from_json(manifest["config"]),
                [Descriptor.from_json(d) for d in manifest.get("layers") or []])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError("no valid config or layer list") from None


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """The OCI ChainID: the diff_id for a bottom layer, else sha256 of "PARENT_CHAIN DIFF_ID"."""
    if parent_chain is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Layer:
    """A compressed layer blob in a BlobStore, with the digest of its uncompressed tar (diff_id)."""

    descriptor: Descriptor
    diff_id: str

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of an image config's `history`: the instruction behind a layer, or a step that made none."""

    created_by: str
    empty_layer: bool = False
    created: str | None = None
    comment: str | None = None
    author: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.created:
            d["created"] = self.created
        if self.author:
            d["author"] = self.author
        d["created_by"] = self.created_by
        if self.comment:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HistoryEntry:
        return cls(created_by=d.get("created_by", ""), empty_layer=bool(d.get("empty_layer")),
                   created=d.get("created"), comment=d.get("comment"), author=d.get("author"))


@dataclass(frozen=True)
class Image:
    """An image: its config document (as a dict, never mutated in place) and its layers, bottom first.

    `container_config` is the runtime part (`config` in the OCI config: Env, Cmd, ...); the other top-level
    fields (architecture, os, variant, created, author) are kept in `meta`.
    """

    container_config: dict[str, Any] = field(default_factory=dict)
    layers: tuple[Layer, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    meta: dict[str, Any] = field(default_factory=lambda: {"architecture": "amd64", "os": "linux"})
    manifest_media_type: str = OCI_MANIFEST
    # Annotations for the manifest (org.opencontainers.image.base.name/digest, ...).
    annotations: tuple[tuple[str, str], ...] = ()

    # --- mutation returns a new value ---
    def with_config(self, **changes: Any) -> Image:
        cfg = dict(self.container_config)
        for k, v in changes.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        return replace(self, container_config=cfg)

    def with_layer(self, layer: Layer, history: HistoryEntry) -> Image:
        return replace(self, layers=self.layers + (layer,), history=self.history + (history,))

    def with_history(self, history: HistoryEntry) -> Image:
        return replace(self, history=self.history + (history,))

    def with_meta(self, **changes: Any) -> Image:
        meta = dict(self.meta)
        for k, v in changes.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        return replace(self, meta=meta)

    @property
    def platform(self) -> Platform:
        return Platform(self.meta.get("os", "linux"), self.meta.get("architecture", "amd64"),
                        self.meta.get("variant"))

    # --- serialization ---
    def config_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for key in ("created", "author", "architecture", "os", "os.version", "variant"):
            if self.meta.get(key):
                doc[key] = self.meta[key]
        doc["config"] = self.container_config
        doc["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]}
        doc["history"] = [h.to_json() for h in self.history]
        return doc

    def config_bytes(self) -> bytes:
        return canonical_json(self.config_json())

    def config_descriptor(self) -> Descriptor:
        data = self.config_bytes()
        media = OCI_CONFIG if self.manifest_media_type == OCI_MANIFEST else DOCKER_CONFIG
        return Descriptor(media, sha256_digest(data), len(data))

    def manifest_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.manifest_media_type,
                               "config": self.config_descriptor().to_json(),
                               "layers": [layer.descriptor.to_json() for layer in self.layers]}
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc

    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest_json())

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest_bytes())

    @classmethod
    def from_documents(cls, manifest: dict[str, Any], config: dict[str, Any], layers: Iterable[Layer],
                       manifest_media_type: str | None = None) -> Image:
        meta = {k: config[k] for k in ("created", "author", "architecture", "os", "os.version", "variant")
                if config.get(k)}
        return cls(
            container_config=dict(config.get("config") or {}),
            layers=tuple(layers),
            history=tuple(HistoryEntry.from_json(h) for h in config.get("history") or []),
            meta=meta,
            manifest_media_type=manifest_media_type or manifest.get("mediaType") or OCI_MANIFEST,
        )
