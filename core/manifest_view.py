"""`dockyard manifest inspect`: what a registry holds under a reference, as a table or as JSON.

An index lists its entries: each image with its platform, and each attestation manifest with the platform of
the image it describes. A single image manifest shows its platform (from its config) and its layers.
"""

from __future__ import annotations

import json
from typing import Any

from .image.blobs import BlobStore
from .image.index import REFERENCE_DIGEST, ImageIndex, descriptor_platform, is_attestation
from .image.model import INDEX_TYPES
from .image.reference import Reference
from .index_assembly import read_source
from .registry.client import RegistryClient


def describe(client: RegistryClient, ref: Reference, store: BlobStore) -> tuple[bytes, dict[str, Any]]:
    """(the raw bytes, the JSON description) of what `ref` names."""
    source = read_source(client, ref, store)
    doc: dict[str, Any] = {"reference": str(ref), "digest": source.digest, "mediaType": source.media_type,
                           "size": len(source.body)}
    if source.media_type in INDEX_TYPES:
        index = ImageIndex.from_bytes(source.body)
        doc["annotations"] = dict(index.annotations)
        platforms = {d.digest: str(descriptor_platform(d)) for d in index.manifests
                     if not is_attestation(d) and descriptor_platform(d) is not None}
        doc["manifests"] = [_entry(d, platforms) for d in index.manifests]
    else:
        entry = source.entries[0]
        doc["platform"] = str(descriptor_platform(entry))
        manifest = _json(source.body)
        doc["config"] = (manifest.get("config") or {}).get("digest")
        layers = manifest.get("layers") or []
        doc["layers"] = [{"digest": l.get("digest"), "mediaType": l.get("mediaType"), "size": l.get("size")}
                         for l in layers if isinstance(l, dict)]
        doc["annotations"] = manifest.get("annotations") or {}
    return source.body, doc


def _entry(descriptor: Any, platforms: dict[str, str]) -> dict[str, Any]:
    attestation = is_attestation(descriptor)
    platform = descriptor_platform(descriptor)
    entry: dict[str, Any] = {"digest": descriptor.digest, "mediaType": descriptor.media_type,
                             "size": descriptor.size, "platform": str(platform) if platform else None,
                             "attestation": attestation}
    if attestation:
        subject = dict(descriptor.annotations).get(REFERENCE_DIGEST)
        entry["subject"] = subject
        entry["subjectPlatform"] = platforms.get(subject or "")
    if descriptor.annotations:
        entry["annotations"] = dict(descriptor.annotations)
    return entry


def render_text(doc: dict[str, Any]) -> str:
    lines = [f"Name:       {doc['reference']}", f"MediaType:  {doc['mediaType']}", f"Digest:     {doc['digest']}"]
    if "platform" in doc:
        lines.append(f"Platform:   {doc['platform']}")
        lines.append(f"Config:     {doc['config']}")
    if doc.get("annotations"):
        lines.append("Annotations:")
        lines += [f"  {key}: {value}" for key, value in sorted(doc["annotations"].items())]
    if "manifests" in doc:
        rows: list[tuple[str, ...]] = [("PLATFORM", "DIGEST", "SIZE", "WHAT")]
        for entry in doc["manifests"]:
            if entry["attestation"]:
                what = f"attestation of {entry.get('subjectPlatform') or entry.get('subject') or 'an unknown image'}"
            else:
                what = "image" if entry["mediaType"] not in INDEX_TYPES else "index"
            rows.append((entry["platform"] or "-", entry["digest"], str(entry["size"]), what))
        lines += ["", *_table(rows)]
    if "layers" in doc:
        layer_rows: list[tuple[str, ...]] = [("LAYER", "SIZE", "MEDIA TYPE")]
        layer_rows += [(str(l["digest"]), str(l["size"]), str(l["mediaType"])) for l in doc["layers"]]
        lines += ["", *_table(layer_rows)]
    return "\n".join(lines) + "\n"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _json(body: bytes) -> dict[str, Any]:
    doc = json.loads(body)
    return doc if isinstance(doc, dict) else {}
