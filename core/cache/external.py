"""Every kind of --cache-from / --cache-to in one place: a registry (remote.py), an OCI layout directory
(local.py) or the GitHub Actions cache (gha.py). All three hold the same cache manifest and config
(docs/cache.md); only where the documents and blobs live differs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DockyardError
from ..events import Events
from ..image.blobs import BlobStore
from ..image.reference import parse_reference
from .remote import CorruptCache, RemoteCache, export_cache, read_cache
from .store import StepEntry

if TYPE_CHECKING:  # the client comes from the builder; importing it here would cost every build requests' import
    from ..options import RegistryCache
    from ..registry.client import RegistryClient


def import_caches(client: Callable[[], RegistryClient], specs: Sequence[RegistryCache], store: BlobStore,
                  events: Events, ttl: float | None, environ: Mapping[str, str] = os.environ) -> RemoteCache:
    """Read every --cache-from; one that is missing, unreadable, refused or corrupt is a warning (as BuildKit
    warns and builds on), never a failed build. Layer blobs are not read: a step that needs one fetches it."""
    cache = RemoteCache(ttl)
    for spec in specs:
        try:
            count = _import_one(client, spec, store, cache, environ)
        except DockyardError as exc:
            events.warning(f"cannot import the build cache {spec.target}: {exc.message}; building without it")
            continue
        except CorruptCache as exc:
            events.warning(f"ignoring the build cache {spec.target}: {exc}")
            continue
        if count is None:
            events.info(f"{spec.target} has nothing to import yet (a --cache-to writes it)")
        else:
            events.info(f"imported {count} cached steps from {spec.target}")
    return cache


def _import_one(client: Callable[[], RegistryClient], spec: RegistryCache, store: BlobStore, cache: RemoteCache,
                environ: Mapping[str, str]) -> int | None:
    if spec.kind == "local":
        from .local import LocalBlobs, read_local_cache

        directory = Path(spec.path)
        entries = read_local_cache(directory, spec.tag, spec.digest)
        if entries is None:
            return None
        cache.add_from(spec.target, entries, LocalBlobs(directory))
        return len(entries)
    if spec.kind == "gha":
        from .gha import ActionsCache, GhaBlobs, endpoint, read_gha_cache

        service = ActionsCache(endpoint(spec.url, spec.url_v2, spec.token, spec.version, environ))
        found = read_gha_cache(service, spec.scope)
        if found is None:
            return None
        cache.add_from(spec.target, found, GhaBlobs(service))
        return len(found)
    ref = parse_reference(spec.ref)
    entries = read_cache(client(), ref, store)
    cache.add(ref, entries)
    return len(entries)


def export_to(spec: RegistryCache, client: Callable[[], RegistryClient], store: BlobStore, entries: list[StepEntry],
              environ: Mapping[str, str] = os.environ) -> str:
    """Write `entries` to the cache `spec` names; returns what identifies the written cache (a manifest digest,
    or the gha entry key). Every layer blob must be in `store` (a registry export also mounts from others)."""
    if spec.kind == "local":
        from .local import write_local_cache

        return write_local_cache(Path(spec.path), spec.tag, store, entries)
    if spec.kind == "gha":
        from .gha import ActionsCache, endpoint, write_gha_cache

        service = ActionsCache(endpoint(spec.url, spec.url_v2, spec.token, spec.version, environ))
        return write_gha_cache(service, spec.scope, store, entries)
    return export_cache(client(), store, parse_reference(spec.ref), entries)


def check_exports(specs: Sequence[RegistryCache], environ: Mapping[str, str] = os.environ) -> None:
    """Refuse, before anything is built, a --cache-to type=gha that has no cache service to write to (with
    ignore-error=true the export says so in a warning instead)."""
    for spec in specs:
        if spec.kind == "gha" and not spec.ignore_error:
            from .gha import endpoint

            endpoint(spec.url, spec.url_v2, spec.token, spec.version, environ)
