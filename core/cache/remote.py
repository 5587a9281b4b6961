"""The registry cache (--cache-from / --cache-to): step cache entries stored as one OCI manifest in a registry.

The manifest's config (media type CACHE_CONFIG) lists the entries, each with what a local entry records (key,
history entry, image config after the step) and the index of its layer in the manifest's `layers`, whose
descriptors are the steps' layer blobs. docs/cache.md describes the format. An import reads the manifest and
the config only (small): a layer blob is downloaded only if a later step must unpack it, and an image pushed to
the same registry gets it by a cross-repository mount. An export uploads the blobs first and then puts one
complete manifest, so two builds writing one ref leave the last writer's cache, never a broken one.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DockyardError
from ..events import Events
from ..image.blobs import BlobStore
from ..image.model import OCI_MANIFEST, Descriptor, HistoryEntry, Layer
from ..image.reference import Reference, parse_reference
from .keys import KEY_FORMAT
from .store import StepEntry

if TYPE_CHECKING:  # the client comes from the builder; importing it here would cost every build requests' import
    from ..registry.client import RegistryClient

CACHE_CONFIG = "application/vnd.dockyard.cache.config.v1+json"
CACHE_FORMAT = "dockyard-registry-cache/1"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class CorruptCache(Exception):
    """The manifest at a cache ref is not a dockyard cache this version can read."""


@dataclass(frozen=True)
class RemoteHit:
    """A step cache entry read from a --cache-from registry cache, and the ref it came from."""

    entry: StepEntry
    ref: str  # the cache ref the entry came from, as the user wrote it (normalized)


class RemoteCache:
    """The entries of every --cache-from that could be read, by step key; the first cache given wins a key."""

    def __init__(self, ttl: float | None = None):
        self.ttl = ttl
        self._hits: dict[str, RemoteHit] = {}
        self._sources: dict[str, Reference] = {}  # layer blob digest -> the cache repository holding it

    def add(self, ref: Reference, entries: list[StepEntry]) -> None:
        repo = Reference(ref.registry, ref.repository)
        for entry in entries:
            self._hits.setdefault(entry.key, RemoteHit(entry, str(ref)))
            if entry.layer is not None:
                self._sources.setdefault(entry.layer.digest, repo)

    def lookup(self, key: str) -> RemoteHit | None:
        hit = self._hits.get(key)
        if hit is None or (self.ttl is not None and time.time() - hit.entry.created > self.ttl):
            return None
        return hit

    def source_of(self, digest: str) -> Reference | None:
        """The cache repository a layer blob can be downloaded or mounted from."""
        return self._sources.get(digest)


def import_caches(client: RegistryClient, refs: list[str], store: BlobStore, events: Events,
                  ttl: float | None) -> RemoteCache:
    """Read every cache ref; one that is missing, unreadable, refused or corrupt is a warning (as BuildKit
    warns and builds on), never a failed build."""
    cache = RemoteCache(ttl)
    for text in refs:
        ref = parse_reference(text)
        try:
            entries = read_cache(client, ref, store)
        except DockyardError as exc:
            events.warning(f"cannot import the build cache {ref}: {exc.message}; building without it")
            continue
        except CorruptCache as exc:
            events.warning(f"ignoring the build cache {ref}: {exc}")
            continue
        cache.add(ref, entries)
        events.info(f"imported {len(entries)} cached steps from {ref}")
    return cache


def read_cache(client: RegistryClient, ref: Reference, store: BlobStore) -> list[StepEntry]:
    body, media_type, _digest = client.get_manifest(ref, accept=(OCI_MANIFEST,))
    try:
        manifest = json.loads(body)
        config = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(d) for d in manifest.get("layers") or []]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CorruptCache("its manifest is not a valid OCI manifest") from None
    if config.media_type != CACHE_CONFIG:
        raise CorruptCache(f"it is not a dockyard cache (its config has media type {config.media_type!r})")
    client.fetch_blob(Reference(ref.registry, ref.repository), config.digest, store, size=config.size)
    try:
        doc = json.loads(store.read_bytes(config.digest))
        if doc.get("format") != CACHE_FORMAT or doc.get("keyFormat") != KEY_FORMAT:
            raise CorruptCache(f"it was written in another format ({doc.get('format')}, {doc.get('keyFormat')})")
        return [_entry(item, layers) for item in doc["entries"]]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise CorruptCache("its config is malformed") from None


def _entry(item: dict[str, Any], layers: list[Descriptor]) -> StepEntry:
    index = item["layer"]
    if index is not None and (not isinstance(index, int) or index < 0):
        raise ValueError("layer index")
    # The key names a file of the local cache once recorded: never anything but a digest (no path tricks).
    if not _DIGEST.fullmatch(str(item["key"])) or not isinstance(item["config"], dict):
        raise ValueError("entry")
    if index is not None and not _DIGEST.fullmatch(str(item["diffID"])):
        raise ValueError("diffID")
    return StepEntry(key=item["key"], created=float(item["created"]), instruction=str(item.get("instruction", "")),
                     layer=None if index is None else Layer(layers[index], item["diffID"]),
                     history=HistoryEntry.from_json(item["history"]) if item.get("history") else None,
                     config=item["config"])


def cache_documents(entries: list[StepEntry]) -> tuple[bytes, list[Descriptor]]:
    """The cache config (canonical JSON) and the manifest's layer descriptors for `entries`."""
    layers: list[Descriptor] = []
    index: dict[str, int] = {}
    items = []
    for entry in entries:
        position = None
        if entry.layer is not None:
            position = index.setdefault(entry.layer.digest, len(layers))
            if position == len(layers):
                layers.append(entry.layer.descriptor)
        items.append({"key": entry.key, "created": entry.created, "instruction": entry.instruction,
                      "layer": position, "diffID": entry.layer.diff_id if entry.layer else None,
                      "history": entry.history.to_json() if entry.history else None, "config": entry.config})
    config = {"format": CACHE_FORMAT, "keyFormat": KEY_FORMAT, "entries": items}
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode(), layers


def export_cache(client: RegistryClient, store: BlobStore, ref: Reference, entries: list[StepEntry]) -> str:
    """Write `entries` as the cache at `ref`: blobs the repository lacks (mounted when the registry has them in
    another repository), the config, then one manifest PUT. Returns the manifest's digest."""
    repo = Reference(ref.registry, ref.repository)
    config_bytes, layers = cache_documents(entries)
    config = Descriptor(CACHE_CONFIG, store.put_bytes(config_bytes), len(config_bytes))
    blobs = layers + [config]
    with ThreadPoolExecutor(max_workers=min(client.max_parallel, len(blobs)), thread_name_prefix="cache") as pool:
        for future in [pool.submit(client.upload_blob, repo, d.digest, d.size, store) for d in blobs]:
            future.result()  # the first failure raises; the manifest is not put
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
                "layers": [d.to_json() for d in layers]}
    assert ref.tag is not None  # a cache is written under a tag: options.py refuses a digest
    return client.put_manifest(repo, ref.tag, json.dumps(manifest, separators=(",", ":")).encode(), OCI_MANIFEST)
