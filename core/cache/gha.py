"""The GitHub Actions cache (--cache-from type=gha / --cache-to type=gha): the registry cache's manifest and
layer blobs kept as entries of the repository's Actions cache, as BuildKit's gha cache keeps its own.

Two versions of the cache service exist, and this speaks both, as BuildKit does:

- v1, the REST API under `$ACTIONS_CACHE_URL/_apis/artifactcache/` (find an entry: GET cache?keys=&version=;
  reserve: POST caches; upload: PATCH caches/ID with Content-Range; commit: POST caches/ID). GitHub retired it on
  its hosted service; act's built-in cache server, Gitea's and Forgejo's runners and the self-hosted cache servers
  speak it.
- v2, the twirp API `$ACTIONS_RESULTS_URL/twirp/github.actions.results.api.v1.CacheService/` (CreateCacheEntry,
  FinalizeCacheEntryUpload, GetCacheEntryDownloadURL), whose entries are uploaded to and downloaded from signed
  Azure Blob Storage URLs. GitHub's runners use it today and say so with ACTIONS_CACHE_SERVICE_V2=true.

Entries are immutable. A layer blob is the entry `dockyard-blob-1-DIGEST` (written once, shared by every scope);
the cache manifest of a scope is `dockyard-index-SCOPE-1#N`, and each export writes N+1: a lookup by the prefix
`dockyard-index-SCOPE-1#` returns the newest (BuildKit's SaveMutable scheme). The manifest carries its config
inline (the descriptor's `data`), so an import is one small download. The token (ACTIONS_RUNTIME_TOKEN) is sent
to the cache service only, never to the signed storage URLs, and never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote
from typing import TYPE_CHECKING, Any

from ..errors import RegistryError, UsageError
from ..image.blobs import BlobStore
from ..image.model import Descriptor
from .remote import CACHE_CONFIG, CorruptCache, cache_documents, cache_manifest, entries_of_manifest
from .store import StepEntry

if TYPE_CHECKING:  # requests is imported when a gha cache is used, not by every build
    import requests

# Entries are found by key and version; the version keeps other tools' entries of the same key apart.
ENTRY_VERSION = hashlib.sha256(b"dockyard-gha-cache-1").hexdigest()
BLOB_PREFIX = "dockyard-blob-1-"
TWIRP = "twirp/github.actions.results.api.v1.CacheService/"
V1_ACCEPT = "application/json;api-version=6.0-preview.1"
UPLOAD_CHUNK = 32 * 1024 * 1024  # v1 PATCH size and v2 block size (what actions/cache and BuildKit use)
SINGLE_PUT_LIMIT = 128 * 1024 * 1024  # v2: a blob up to this size is one Put Blob, a bigger one Put Block + List
MAX_INDEX_SIZE = 64 * 1024 * 1024
TIMEOUT = 120
RETRY_DELAYS = (1.0, 3.0)  # seconds before the second and third attempt of a service request


def index_prefix(scope: str) -> str:
    # The service compares keys without case (act lowercases them); so do we.
    return f"dockyard-index-{scope.lower()}-1#"


@dataclass(frozen=True)
class Endpoint:
    """Where the cache service is and how to talk to it: API version 1 or 2, its base URL, the bearer token."""

    version: int
    url: str
    token: str = field(repr=False)

    @property
    def description(self) -> str:
        return f"the GitHub Actions cache service (v{self.version}, {self.url})"


def endpoint(url: str, url_v2: str, token: str, version: str, environ: Mapping[str, str]) -> Endpoint:
    """The endpoint from the cache's url/url_v2/token/version attributes, else the runner's variables, as
    BuildKit's gha cache chooses: v2 when asked (version=2, ACTIONS_CACHE_SERVICE_V2 true,
    ACTIONS_CACHE_API_FORCE_VERSION=v2), else v1."""
    forced = environ.get("ACTIONS_CACHE_API_FORCE_VERSION", "")
    v2_flag = environ.get("ACTIONS_CACHE_SERVICE_V2", "").strip().lower() in ("1", "true", "t", "yes")
    chosen = int(version) if version else (2 if forced == "v2" or (v2_flag and forced != "v1") else 1)
    token = token or environ.get("ACTIONS_RUNTIME_TOKEN", "")
    hint = ("in a workflow these variables reach JavaScript actions only: run crazy-max/ghaction-github-runtime "
            "before the step (docker's documentation does the same for buildx), or pass url=/url_v2= and token=")
    if chosen == 2:
        base = url_v2 or environ.get("ACTIONS_RESULTS_URL", "")
        if not base or not token:
            raise UsageError("type=gha (cache service v2) needs ACTIONS_RESULTS_URL and ACTIONS_RUNTIME_TOKEN, "
                             "and " + ("neither is" if not base and not token else
                                       "ACTIONS_RESULTS_URL is not" if not base else "ACTIONS_RUNTIME_TOKEN is not")
                             + " set", hint=hint)
    else:
        base = url or environ.get("ACTIONS_CACHE_URL", "")
        if not base:
            raise UsageError("type=gha needs the cache service's URL: ACTIONS_CACHE_URL is not set (nor "
                             "ACTIONS_RESULTS_URL with ACTIONS_CACHE_SERVICE_V2=true)", hint=hint)
    if not re.match(r"https?://", base):
        raise UsageError(f"type=gha: the cache service URL {base!r} is not an http(s) URL")
    return Endpoint(chosen, base.rstrip("/") + "/", token)


@dataclass(frozen=True)
class Found:
    """An entry the service found: its key, and the URL its content is downloaded from."""

    key: str
    url: str


class ActionsCache:
    """A client of the cache service at one endpoint."""

    def __init__(self, where: Endpoint):
        import requests

        self.where = where
        self._http = requests.Session()
        self._http.trust_env = False  # the service is where the runner says; a CI proxy variable is not for it

    # -- the service's three operations, in either version ---------------------------------------------------

    def find(self, key: str, prefix: bool = False) -> Found | None:
        """The entry `key` (with `prefix`: the newest entry whose key starts with it), or None."""
        if self.where.version == 2:
            body = {"key": key, "restore_keys": [key] if prefix else [], "version": ENTRY_VERSION}
            answer = self._twirp("GetCacheEntryDownloadURL", body)
            if not answer.get("ok") or not answer.get("signed_download_url"):
                return None
            return Found(str(answer.get("matched_key") or key), str(answer["signed_download_url"]))
        resp = self._request("GET", self._v1("cache"), params={"keys": key, "version": ENTRY_VERSION})
        if resp.status_code == 204 or not resp.content:
            return None
        answer = self._json(resp)
        location, found = answer.get("archiveLocation"), answer.get("cacheKey")
        if not location or not found or (not prefix and str(found).lower() != key.lower()):
            return None
        return Found(str(found), str(location))

    def save(self, key: str, size: int, chunks: Iterator[bytes]) -> bool:
        """Store `size` bytes under `key`. False when the key exists already (or another job is writing it)."""
        if self.where.version == 2:
            answer = self._twirp("CreateCacheEntry", {"key": key, "version": ENTRY_VERSION}, conflict_ok=True)
            if not answer.get("ok") or not answer.get("signed_upload_url"):
                return False
            self._azure_upload(str(answer["signed_upload_url"]), size, chunks)
            done = self._twirp("FinalizeCacheEntryUpload", {"key": key, "size_bytes": size, "version": ENTRY_VERSION})
            if not done.get("ok"):
                raise RegistryError(f"{self.where.description} did not accept the upload of {key}")
            return True
        resp = self._request("POST", self._v1("caches"), json={"key": key, "version": ENTRY_VERSION, "cacheSize": size},
                             conflict_ok=True)
        if resp.status_code == 409:
            return False
        cache_id = self._json(resp).get("cacheId")
        if not isinstance(cache_id, int) or cache_id < 0:
            raise RegistryError(f"{self.where.description} answered a reservation without a cache id")
        offset = 0
        for chunk in chunks:
            self._request("PATCH", self._v1(f"caches/{cache_id}"), data=chunk,
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/*"})
            offset += len(chunk)
        self._request("POST", self._v1(f"caches/{cache_id}"), json={"size": size})
        return True

    def download(self, found: Found, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The entry's content, in chunks (the signed URL takes no token)."""
        import requests

        what = f"cannot download {found.key} from {self.where.description}"
        try:
            with self._http.get(found.url, stream=True, timeout=TIMEOUT) as resp:
                if resp.status_code != 200:
                    raise RegistryError(f"{what}: HTTP {resp.status_code}")
                yield from resp.iter_content(chunk_size)
        except requests.RequestException as exc:
            raise RegistryError(f"{what}: {type(exc).__name__}") from None  # its text holds the signed URL

    # -- transport ------------------------------------------------------------------------------------------

    def _v1(self, path: str) -> str:
        return self.where.url + "_apis/artifactcache/" + path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.where.token}"} if self.where.token else {}

    def _request(self, method: str, url: str, conflict_ok: bool = False, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> requests.Response:
        import requests

        all_headers = {"Accept": V1_ACCEPT, **self._headers(), **(headers or {})}
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                resp = self._http.request(method, url, headers=all_headers, timeout=TIMEOUT, **kwargs)
            except requests.ConnectionError as exc:
                if attempt == len(RETRY_DELAYS):
                    raise RegistryError(f"cannot reach {self.where.description}: {exc}") from None
                time.sleep(RETRY_DELAYS[attempt])
                continue
            except requests.RequestException as exc:
                raise RegistryError(f"cannot reach {self.where.description}: {exc}") from None
            # The service limits request rates (429) and has bad moments (5xx): BuildKit's client backs off too.
            if (resp.status_code == 429 or resp.status_code >= 500) and attempt < len(RETRY_DELAYS):
                time.sleep(RETRY_DELAYS[attempt])
                continue
            break
        if resp.status_code == 409 and conflict_ok:
            return resp
        if resp.status_code in (401, 403):
            raise RegistryError(f"{self.where.description} refused the token (HTTP {resp.status_code})",
                                hint="the runner's ACTIONS_RUNTIME_TOKEN is valid during its job only")
        if resp.status_code >= 300:
            operation = url.split("?", 1)[0].rsplit("/", 1)[-1]
            raise RegistryError(f"{self.where.description} answered {method} {operation} with HTTP "
                                f"{resp.status_code}: {resp.text[:200]}")
        return resp

    def _twirp(self, method: str, body: dict[str, Any], conflict_ok: bool = False) -> dict[str, Any]:
        resp = self._request("POST", self.where.url + TWIRP + method, json=body, conflict_ok=conflict_ok,
                             headers={"Content-Type": "application/json", "Accept": "application/json"})
        if resp.status_code == 409:
            return {}
        return self._json(resp)

    def _json(self, resp: requests.Response) -> dict[str, Any]:
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RegistryError(f"{self.where.description} answered with something that is not a JSON object")
        return answer

    def _azure_upload(self, url: str, size: int, chunks: Iterator[bytes]) -> None:
        """Upload to a signed Azure Blob Storage URL: one Put Blob, or Put Block per chunk and Put Block List."""
        import requests

        def put(target: str, data: bytes, headers: dict[str, str]) -> None:
            try:
                resp = self._http.put(target, data=data, headers={"x-ms-version": "2020-10-02", **headers},
                                      timeout=TIMEOUT)
            except requests.RequestException as exc:
                # The exception's text holds the signed URL, which is as good as a password until it expires.
                raise RegistryError(f"cannot upload to the cache storage of {self.where.description}: "
                                    f"{type(exc).__name__}") from None
            if resp.status_code not in (200, 201):
                raise RegistryError(f"the cache storage of {self.where.description} refused an upload: HTTP "
                                    f"{resp.status_code}")

        join = "&" if "?" in url else "?"
        if size <= SINGLE_PUT_LIMIT:
            put(url, b"".join(chunks), {"x-ms-blob-type": "BlockBlob"})
            return
        ids = []
        for number, chunk in enumerate(chunks):
            block = base64.b64encode(f"{number:08d}".encode()).decode()
            ids.append(block)
            put(f"{url}{join}comp=block&blockid={quote(block, safe='')}", chunk, {})
        listing = "".join(f"<Latest>{b}</Latest>" for b in ids)
        document = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>'
        put(f"{url}{join}comp=blocklist", document.encode(), {"Content-Type": "application/xml"})


class GhaBlobs:
    """The layer blobs of a gha cache: downloaded into the blob store when a step needs one."""

    def __init__(self, cache: ActionsCache):
        self.cache = cache

    def fetch(self, digest: str, store: BlobStore, size: int) -> None:
        found = self.cache.find(BLOB_PREFIX + digest)
        if found is None:
            raise RegistryError(f"{self.cache.where.description} has no entry for layer {digest} any more",
                                hint="the cache service evicts entries (GitHub: after 7 days unused, or over 10 GB); "
                                     "build again to write it back")
        with store.writer(expected_digest=digest) as out:
            for chunk in self.cache.download(found):
                out.write(chunk)
            out.commit()


def read_gha_cache(cache: ActionsCache, scope: str) -> list[StepEntry] | None:
    """The newest cache manifest of `scope` and its entries; None when the scope has none yet."""
    found = cache.find(index_prefix(scope), prefix=True)
    if found is None:
        return None
    body = b""
    for chunk in cache.download(found, 1 << 16):
        body += chunk
        if len(body) > MAX_INDEX_SIZE:
            raise CorruptCache(f"its manifest {found.key} is larger than {MAX_INDEX_SIZE} bytes")

    def inline_config(config: Descriptor) -> bytes:
        raw = json.loads(body)["config"].get("data")  # entries_of_manifest has checked it is an object
        try:
            config_bytes = base64.b64decode(raw or "", validate=True)
        except ValueError:
            raise CorruptCache("its manifest's config is not inline base64") from None
        if "sha256:" + hashlib.sha256(config_bytes).hexdigest() != config.digest:
            raise CorruptCache("its inline config does not match its digest")
        return config_bytes

    entries = entries_of_manifest(body, inline_config)
    # The service evicts entries on its own (GitHub: unused for 7 days, or over 10 GB): a step whose layer is gone
    # is left out, so it runs again (and the export writes its layer back) rather than failing when needed.
    digests = sorted({e.layer.digest for e in entries if e.layer is not None})
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="gha-cache") as pool:
        present = {d for d, found in zip(digests, pool.map(lambda d: cache.find(BLOB_PREFIX + d), digests)) if found}
    return [e for e in entries if e.layer is None or e.layer.digest in present]


def write_gha_cache(cache: ActionsCache, scope: str, store: BlobStore, entries: list[StepEntry]) -> str:
    """Upload the layer blobs the service lacks, then the manifest as the scope's next index entry. Returns the
    key the manifest was stored under."""
    config_bytes, layers = cache_documents(entries)
    for layer in layers:
        key = BLOB_PREFIX + layer.digest
        if cache.find(key) is None:
            cache.save(key, layer.size, _file_chunks(store, layer.digest))
    config = Descriptor(CACHE_CONFIG, "sha256:" + hashlib.sha256(config_bytes).hexdigest(), len(config_bytes))
    manifest = json.loads(cache_manifest(config, layers))
    manifest["config"]["data"] = base64.b64encode(config_bytes).decode()
    body = json.dumps(manifest, separators=(",", ":")).encode()
    prefix = index_prefix(scope)
    latest = cache.find(prefix, prefix=True)
    number = _index_number(latest.key, prefix) if latest else 0
    for attempt in range(1, 11):  # a key another job reserved meanwhile: take the next number
        key = f"{prefix}{number + attempt}"
        if cache.save(key, len(body), iter([body])):
            return key
    raise RegistryError(f"{cache.where.description}: ten index keys after {prefix}{number} are taken",
                        hint="other jobs are writing the same scope; give each its own scope=")


def _index_number(key: str, prefix: str) -> int:
    suffix = key[len(prefix):] if key.lower().startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else 0


def _file_chunks(store: BlobStore, digest: str) -> Iterator[bytes]:
    with store.open(digest) as src:
        while chunk := src.read(UPLOAD_CHUNK):
            yield chunk
