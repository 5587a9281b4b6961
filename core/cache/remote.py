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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..image.blobs import BlobStore
from ..image.model import OCI_MANIFEST, Descriptor, HistoryEntry, Layer
from ..image.reference import Reference
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


class BlobSource(Protocol):
    """Where the layer blobs of a cache that is not in a registry (a local directory, the GitHub Actions cache)
    are read from, when a step needs them."""

    def fetch(self, digest: str, store: BlobStore, size: int) -> None:
        """Put blob `digest` into `store`, verified against its digest."""


class RemoteCache:
    """The entries of every --cache-from that could be read, by step key; the first cache given wins a key."""

    def __init__(self, ttl: float | None = None):
        self.ttl = ttl
        self._hits: dict[str, RemoteHit] = {}
        # layer blob digest -> the cache repository holding it, or the source of a cache outside registries
        self._sources: dict[str, Reference | BlobSource] = {}

    def add(self, ref: Reference, entries: list[StepEntry]) -> None:
        self.add_from(str(ref), entries, Reference(ref.registry, ref.repository))

    def add_from(self, name: str, entries: list[StepEntry], source: Reference | BlobSource) -> None:
        """Entries read from the cache called `name` in messages, their layer blobs to be had from `source`."""
        for entry in entries:
            self._hits.setdefault(entry.key, RemoteHit(entry, name))
            if entry.layer is not None:
                self._sources.setdefault(entry.layer.digest, source)

    def lookup(self, key: str) -> RemoteHit | None:
        hit = self._hits.get(key)
        if hit is None or (self.ttl is not None and time.time() - hit.entry.created > self.ttl):
            return None
        return hit

    def source_of(self, digest: str) -> Reference | BlobSource | None:
        """The cache repository a layer blob can be downloaded or mounted from (or the source it is read from)."""
        return self._sources.get(digest)


def read_cache(client: RegistryClient, ref: Reference, store: BlobStore) -> list[StepEntry]:
    body, media_type, _digest = client.get_manifest(ref, accept=(OCI_MANIFEST,))

    def read_config(config: Descriptor) -> bytes:
        client.fetch_blob(Reference(ref.registry, ref.repository), config.digest, store, size=config.size)
        return store.read_bytes(config.digest)

    return entries_of_manifest(body, read_config)


def entries_of_manifest(body: bytes, read_config: Callable[[Descriptor], bytes]) -> list[StepEntry]:
    """The entries of a cache manifest (`body`), whatever holds it: `read_config` returns the bytes of the config
    blob it names. Raises CorruptCache when either is not a cache this version reads."""
    try:
        manifest = json.loads(body)
        config = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(d) for d in manifest.get("layers") or []]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CorruptCache("its manifest is not a valid OCI manifest") from None
    if config.media_type != CACHE_CONFIG:
        raise CorruptCache(f"it is not a dockyard cache (its config has media type {config.media_type!r})")
    config_bytes = read_config(config)
    try:
        doc = json.loads(config_bytes)
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


def cache_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The cache manifest (compact JSON) naming `config` and the layer blobs."""
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
                "layers": [d.to_json() for d in layers]}
    return json.dumps(manifest, separators=(",", ":")).encode()


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
    assert ref.tag is not None  # a cache is written under a tag: options.py refuses a digest
    return client.put_manifest(repo, ref.tag, cache_manifest(config, layers), OCI_MANIFEST)
