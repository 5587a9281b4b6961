"""A client for the OCI Distribution API (docker registry v2): manifests and blobs, streamed.

Everything goes through one `requests.Session`, which callers may inject (tests, a proxy, TLS settings).
Every way a request can fail ends as a `RegistryError` (or `AuthenticationError`) that names the registry,
the image or blob, and what to do; no `requests` exception escapes. Blobs are never held in memory: downloads
stream into a `BlobWriter` (which verifies the digest before anything lands in the store) and uploads stream
from the store's file.
"""

from __future__ import annotations

import json
import os
import time
from typing import BinaryIO, Callable, Iterator, Mapping
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from ..errors import AuthenticationError, RegistryError
from ..events import NULL_EVENTS, Events, TransferFinished, TransferProgress, TransferStarted
from ..image.blobs import CHUNK, BlobStore
from ..image.model import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, sha256_digest
from ..image.reference import Reference, is_loopback_registry
from .auth import (Authenticator, CredentialStore, default_credential_store, normalize_registry_key,
                   proxies_for)

ALL_MANIFEST_TYPES: tuple[str, ...] = MANIFEST_TYPES + INDEX_TYPES
SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
# (connect, read) seconds. The read timeout is between bytes, not for a whole blob, so big layers are fine.
DEFAULT_TIMEOUT = (15.0, 120.0)
# containerd's limit: a manifest bigger than this is not a manifest, and we read manifests into memory.
MANIFEST_LIMIT = 4 << 20
ERROR_BODY_LIMIT = 64 << 10
MAX_REDIRECTS = 5
PROGRESS_INTERVAL = 0.1  # seconds between TransferProgress events per blob
USER_AGENT = "dockyard/0.1"

# What a response body can raise while it streams (requests wraps some of these, urllib3's raw reader doesn't).
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


class RegistryClient:
    def __init__(self, *, insecure_registries: tuple[str, ...] | list[str] = (),
                 session: requests.Session | None = None, environ: Mapping[str, str] | None = None,
                 events: Events = NULL_EVENTS, max_parallel: int = 4, timeout=DEFAULT_TIMEOUT,
                 credentials: CredentialStore | None = None):
        self.environ: Mapping[str, str] = dict(os.environ) if environ is None else environ
        self.insecure_registries = frozenset(normalize_registry_key(r) for r in insecure_registries)
        self.events = events
        self.max_parallel = max(1, int(max_parallel))
        self.timeout = timeout
        self.session = session if session is not None else self._default_session()
        self.credentials = credentials if credentials is not None else default_credential_store(self.environ)
        self.auth = Authenticator(self.session, self.credentials, timeout=timeout,
                                  connection_error=self._token_service_error)

    def _default_session(self) -> requests.Session:
        session = requests.Session()
        # One pooled connection per parallel transfer (the default pool of 10 would drop connections above it).
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=max(10, self.max_parallel * 2))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        return session

    # --- addressing ----------------------------------------------------------------------------------------
    def scheme(self, registry: str) -> str:
        """https, except plain http for loopback (as docker allows) and registries named insecure."""
        registry = registry.lower()
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
        if is_loopback_registry(registry) or registry in self.insecure_registries \
                or host in self.insecure_registries:
            return "http"
        return "https"

    def _url(self, ref: Reference, path: str) -> str:
        return f"{self.scheme(ref.registry)}://{ref.api_host}/v2/{ref.repository}/{path}"

    # --- manifests -----------------------------------------------------------------------------------------
    def get_manifest(self, ref: Reference,
                     accept: tuple[str, ...] = ALL_MANIFEST_TYPES) -> tuple[bytes, str, str]:
        """(body, media type, digest) of the manifest or index `ref` names, verified against the pinned digest
        and the registry's Docker-Content-Digest."""
        url = self._url(ref, f"manifests/{ref.identifier}")
        resp = self._request("GET", url, ref, "pull", what=f"pull {ref}", headers={"Accept": ", ".join(accept)},
                             stream=True)
        with resp:
            if resp.status_code == 404:
                said = _registry_error_text(resp)
                raise RegistryError(
                    f"image not found: {ref}" + (f" (the registry says: {said})" if said else ""),
                    hint=f"check the repository name and the tag; registry {ref.registry} has no manifest for "
                         f"{ref.identifier!r} in {ref.repository}. A private repository may also answer "
                         f"'not found' to anonymous requests: docker login {ref.registry}")
            self._check(resp, ref, "pull", what=f"pull {ref}")
            body = self._read_limited(resp, MANIFEST_LIMIT, ref, f"pull {ref}")
            content_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest", "").strip()
        digest = sha256_digest(body)
        if ref.digest:
            if not ref.digest.startswith("sha256:"):
                raise RegistryError(f"cannot verify {ref}: only sha256 digests are supported")
            if ref.digest != digest:
                raise RegistryError(f"the manifest registry {ref.registry} sent for {ref} hashes to {digest}",
                                    hint="the registry or a proxy altered the manifest; do not use this image")
        if header_digest.startswith("sha256:") and header_digest != digest:
            raise RegistryError(f"the manifest registry {ref.registry} sent for {ref} hashes to {digest}, not "
                                f"to the {header_digest} its Docker-Content-Digest header says",
                                hint="a proxy may have altered it; retry, or pin a digest")
        media_type = content_type
        if media_type not in ALL_MANIFEST_TYPES + SCHEMA1_TYPES:
            # Some registries (and static file servers) say application/json: the document says what it is.
            media_type = sniff_manifest_type(body) or media_type
        return body, media_type, digest

    def put_manifest(self, repo: Reference, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest (or index) under a tag or its digest; returns its digest."""
        url = self._url(repo, f"manifests/{reference}")
        target = f"{repo.name}:{reference}" if not reference.startswith("sha256:") else f"{repo.name}@{reference}"
        what = f"push the manifest of {target}"
        resp = self._request("PUT", url, repo, "pull,push", what=what, headers={"Content-Type": media_type},
                             body=body)
        with resp:
            self._check(resp, repo, "push", what=what, ok=(200, 201, 202))
            header_digest = resp.headers.get("Docker-Content-Digest", "").strip()
        digest = sha256_digest(body)
        if header_digest.startswith("sha256:") and header_digest != digest:
            raise RegistryError(f"registry {repo.registry} stored the manifest of {target} as {header_digest}, "
                                f"but it hashes to {digest}",
                                hint="a proxy altered the manifest on its way; push again")
        return digest

    # --- blobs ---------------------------------------------------------------------------------------------
    def blob_exists(self, repo: Reference, digest: str) -> bool:
        url = self._url(repo, f"blobs/{digest}")
        # HEAD needs only pull, but a push asks for pull,push right after: ask once for both (one token).
        resp = self._request("HEAD", url, repo, "pull,push", what=f"check blob {digest} in {repo.name}",
                             follow_redirects=True)
        with resp:
            if resp.status_code == 404:
                return False
            self._check(resp, repo, "pull", what=f"check blob {digest} in {repo.name}")
            return True

    def fetch_blob(self, repo: Reference, digest: str, store: BlobStore, size: int | None = None) -> None:
        """Download a blob into the store, verified; a no-op when the store has it already."""
        store.path(digest)  # rejects malformed digests before any request
        if store.has(digest):
            self.events.emit(TransferFinished(digest=digest, skipped="exists"))
            return
        what = f"download blob {digest} of {repo}"
        url = self._url(repo, f"blobs/{digest}")
        # identity: a gzip Content-Encoding added by some proxy would otherwise change the bytes we hash.
        resp = self._request("GET", url, repo, "pull", what=what, headers={"Accept-Encoding": "identity"},
                             stream=True, follow_redirects=True)
        with resp:
            if resp.status_code == 404:
                raise RegistryError(f"blob {digest} of {repo} is missing from registry {repo.registry}",
                                    hint="the image's manifest names a blob the registry does not have (a "
                                         "broken or partially deleted image): push the image again")
            self._check(resp, repo, "pull", what=what)
            total = size if size is not None else _int_header(resp, "Content-Length")
            self.events.emit(TransferStarted(direction="pull", image=str(repo), digest=digest, total=total or 0))
            progress = _Progress(self.events, digest)
            # The writer's context aborts (deletes its temp file) on any error: a failed or corrupt
            # download leaves nothing in the store.
            with store.writer(expected_digest=digest) as writer:
                chunks = resp.raw.stream(CHUNK, decode_content=False)
                while True:
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                    except _NETWORK_ERRORS as exc:
                        raise self._transfer_error(exc, repo, what) from None
                    try:
                        writer.write(chunk)
                    except OSError as exc:
                        raise RegistryError(f"cannot store blob {digest} in {store.root}: {exc.strerror}",
                                            hint="is the disk full?") from None
                    if size is not None and writer.size > size:
                        raise RegistryError(f"blob {digest} of {repo} is larger than the {size} bytes its "
                                            f"manifest says",
                                            hint="the registry serves a different blob than the manifest "
                                                 "describes; the image is broken or was tampered with")
                    progress.update(writer.size)
                if size is not None and writer.size != size:
                    raise RegistryError(f"blob {digest} of {repo} is {writer.size} bytes, but its manifest says "
                                        f"{size}",
                                        hint="the download was cut short or the image is broken; retry")
                writer.commit()  # raises DigestMismatch (a RegistryError) if the bytes are not the digest's
            progress.finish(writer.size)
        self.events.emit(TransferFinished(digest=digest))

    def upload_blob(self, repo: Reference, digest: str, size: int, store: BlobStore) -> bool:
        """Upload a blob from the store unless the repository has it; True if bytes were sent."""
        if self.blob_exists(repo, digest):
            self.events.emit(TransferFinished(digest=digest, skipped="exists"))
            return False
        if not store.has(digest):
            raise RegistryError(f"cannot push blob {digest} to {repo.name}: it is not in the blob store "
                                f"{store.root}")
        actual = store.size(digest)
        if actual != size:
            raise RegistryError(f"cannot push blob {digest} to {repo.name}: the image says it has {size} bytes, "
                                f"the blob store's copy has {actual}")
        what = f"upload blob {digest} to {repo.name}"
        # Seam: a cross-repository mount (POST ?mount=DIGEST&from=OTHER) would go here for blobs the
        # registry has in another repository.
        start_url = self._url(repo, "blobs/uploads/")
        resp = self._request("POST", start_url, repo, "pull,push", what=what, body=b"")
        with resp:
            self._check(resp, repo, "push", what=what, ok=(202,))
            location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {repo.registry} started an upload for {repo.name} but sent no "
                                "Location to upload to")
        # Location may be relative or absolute and usually carries its own query (_state=...): keep it.
        put_url = _add_query(urljoin(start_url, location), digest=digest)
        self.events.emit(TransferStarted(direction="push", image=str(repo), digest=digest, total=size))
        progress = _Progress(self.events, digest)

        def body() -> _FileBody:
            return _FileBody(store.open(digest), size, progress.update)

        resp = self._request("PUT", put_url, repo, "pull,push", what=what, body=body,
                             headers={"Content-Type": "application/octet-stream"})
        with resp:
            self._check(resp, repo, "push", what=what, ok=(201, 204))
        progress.finish(size)
        self.events.emit(TransferFinished(digest=digest))
        return True

    # --- the request core ----------------------------------------------------------------------------------
    def _request(self, method: str, url: str, ref: Reference, actions: str, *, what: str,
                 headers: dict[str, str] | None = None,
                 body: bytes | Callable[[], BinaryIO] | None = None, stream: bool = False,
                 follow_redirects: bool = False) -> requests.Response:
        """Send with cached authorization; on a 401, answer the challenge once and resend.

        `body` may be a factory of file objects, so that a resend after a 401 streams the file again from the
        start. The returned response may be any status: callers decide what is an error.
        """
        scope = f"repository:{ref.repository}:{actions}"
        for attempt in range(2):
            hdrs = dict(headers or {})
            authorization = self.auth.cached(ref.registry, scope)
            if authorization:
                hdrs["Authorization"] = authorization
            data = body() if callable(body) else body
            try:
                resp = self._send(method, url, hdrs, data, stream, follow_redirects, ref, what)
            finally:
                if callable(body):
                    data.close()  # type: ignore[union-attr]
            if resp.status_code != 401 or attempt == 1:
                return resp
            if authorization:
                self.auth.forget(ref.registry, scope)
            if self.auth.answer(ref.registry, scope, resp.headers.get("WWW-Authenticate", "")) is None:
                return resp  # nothing to offer: the caller reports the 401
            resp.close()
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, headers: dict[str, str], data, stream: bool, follow_redirects: bool,
              ref: Reference, what: str) -> requests.Response:
        # Redirects are followed here, not by requests, to control what goes along: blob downloads are
        # commonly redirected to a CDN or object store, which must never see the registry's Authorization.
        origin = urlsplit(url)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.request(method, url, headers=headers, data=data, stream=stream,
                                            timeout=self.timeout, allow_redirects=False, proxies=proxies_for(url))
            except requests.RequestException as exc:
                raise self._connection_error(exc, ref, what, url) from None
            location = resp.headers.get("Location")
            if not follow_redirects or resp.status_code not in (301, 302, 303, 307, 308) or not location:
                return resp
            resp.close()
            url = urljoin(url, location)
            target = urlsplit(url)
            if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f"registry {ref.registry} redirected more than {MAX_REDIRECTS} times trying to {what}")

    # --- errors --------------------------------------------------------------------------------------------
    def _check(self, resp: requests.Response, ref: Reference, actions: str, *, what: str,
               ok: tuple[int, ...] = (200,)) -> None:
        """Raise the right error for an unexpected status."""
        if resp.status_code in ok:
            return
        said = _registry_error_text(resp)
        said_part = f": {said}" if said else ""
        if resp.status_code in (401, 403):
            verb = "denied" if resp.status_code == 403 else "refused"
            raise AuthenticationError(
                f"registry {ref.registry} {verb} {actions} access to repository {ref.repository} "
                f"(HTTP {resp.status_code}{said_part}); used {self.auth.credential_source(ref.registry)}",
                hint=f"log in with `docker login {ref.registry}` (or set DOCKER_CONFIG to a config.json with "
                     f"credentials for it), and check that the account may {actions.replace(',', ' and ')} "
                     f"{ref.repository}")
        if resp.status_code == 429:
            hint = "the registry is rate-limiting requests: wait and retry, or log in for a higher limit"
        elif resp.status_code >= 500:
            hint = "the registry failed internally: retry later, or check the registry's logs"
        else:
            hint = None
        reason = resp.reason or ""
        raise RegistryError(f"registry {ref.registry} answered HTTP {resp.status_code} {reason} when asked to "
                            f"{what}{said_part}".replace("  ", " "), hint=hint)

    def _connection_error(self, exc: Exception, ref: Reference, what: str, url: str) -> RegistryError:
        kind, reason = classify_network_error(exc)
        host = urlsplit(url).netloc
        elsewhere = f" (at {host}, where it redirected us)" if host and host != ref.api_host else ""
        plain_http_hint = (f"If {ref.registry} serves plain HTTP, pass --insecure-registry {ref.registry}."
                           if self.scheme(ref.registry) == "https" else "")
        if kind == "dns":
            hint = f"is the registry name {ref.registry!r} spelled right, and does this machine's DNS know it?"
        elif kind == "tls":
            hint = plain_http_hint or "check the registry's TLS setup"
        elif kind == "timeout":
            hint = "is the registry reachable from here (a firewall, or a proxy that HTTPS_PROXY should name)?"
        else:
            hint = f"is the registry running, and is {ref.registry!r} the right host and port? {plain_http_hint}"
        return RegistryError(f"cannot reach registry {ref.registry}{elsewhere} to {what}: {reason}",
                             hint=hint.strip())

    def _transfer_error(self, exc: Exception, ref: Reference, what: str) -> RegistryError:
        return RegistryError(f"the connection to registry {ref.registry} failed while trying to {what}: "
                             f"{describe_network_error(exc)}",
                             hint="a network or registry problem: retry")

    def _token_service_error(self, exc: Exception, realm: str) -> RegistryError:
        return RegistryError(f"cannot reach the token service {realm}: {describe_network_error(exc)}",
                             hint="the registry sends clients there to authenticate: check the network and the "
                                  "registry's auth configuration")

    def _read_limited(self, resp: requests.Response, limit: int, ref: Reference, what: str) -> bytes:
        parts: list[bytes] = []
        total = 0
        try:
            for chunk in resp.iter_content(64 << 10):
                total += len(chunk)
                if total > limit:
                    raise RegistryError(f"registry {ref.registry} sent more than {limit} bytes when asked to "
                                        f"{what}; that is not a manifest")
                parts.append(chunk)
        except _NETWORK_ERRORS as exc:
            raise self._transfer_error(exc, ref, what) from None
        return b"".join(parts)


# --- helpers -----------------------------------------------------------------------------------------------

def sniff_manifest_type(body: bytes) -> str | None:
    """The media type a manifest document declares or implies (for registries that say application/json)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("schemaVersion") == 1:
        return SCHEMA1_TYPES[1] if "signatures" in doc else SCHEMA1_TYPES[0]
    if isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
        return doc["mediaType"]
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    return None


def classify_network_error(exc: BaseException) -> tuple[str, str]:
    """(kind, short human reason) for a connection failure; urllib3 buries the cause several exceptions deep.
    kind is one of "timeout", "tls", "refused", "dns", "other" (hints depend on it)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timeout", "the connection timed out"
    if isinstance(exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return "timeout", "the registry stopped answering (read timed out)"
    if isinstance(exc, requests.exceptions.SSLError):
        detail = _innermost(exc)
        if "wrong version number" in detail.lower() or "record layer failure" in detail.lower():
            return "tls", "the TLS handshake failed: the server does not speak HTTPS on that port"
        return "tls", f"the TLS handshake failed ({detail})"
    lowered = str(exc).lower()
    if "connection refused" in lowered:
        return "refused", "connection refused (nothing listens on that port)"
    if any(s in lowered for s in ("name or service not known", "failed to resolve", "nodename nor servname",
                                  "temporary failure in name resolution", "no address associated")):
        return "dns", "the host name could not be resolved"
    if "connection reset" in lowered:
        return "other", "the connection was reset"
    if "network is unreachable" in lowered or "no route to host" in lowered:
        return "other", "the network is unreachable"
    return "other", _innermost(exc)


def describe_network_error(exc: BaseException) -> str:
    return classify_network_error(exc)[1]


def _innermost(exc: BaseException) -> str:
    seen = set()
    current: BaseException | None = exc
    last = str(exc)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if text:
            last = text
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        current = nxt or current.__cause__ or current.__context__
    return last[:300]


def _registry_error_text(resp: requests.Response) -> str:
    """The registry's own words from a Distribution error body: {"errors":[{"code","message","detail"}]}."""
    if resp.request is not None and resp.request.method == "HEAD":
        return ""
    try:
        raw = b""
        for chunk in resp.iter_content(8192):
            raw += chunk
            if len(raw) >= ERROR_BODY_LIMIT:
                break
    except _NETWORK_ERRORS:
        return ""
    try:
        doc = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        # An HTML error page says nothing useful in a terminal; a short plain text body may.
        return "" if not text or text.startswith("<") else " ".join(text.split())[:300]
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    parts: list[str] = []
    for err in errors[:5]:
        if not isinstance(err, dict):
            continue
        text = ": ".join(str(x) for x in (err.get("code"), err.get("message")) if x)
        detail = err.get("detail")
        if isinstance(detail, str) and detail and len(detail) <= 200:
            text += f" ({detail})"  # e.g. the digest of the blob a manifest lacks
        if text and text not in parts:  # distribution repeats one error per missing blob
            parts.append(text)
    return "; ".join(parts)


def _int_header(resp: requests.Response, name: str) -> int | None:
    try:
        return int(resp.headers[name])
    except (KeyError, ValueError):
        return None


def _add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Progress:
    """Throttled TransferProgress events for one blob (uploads report from inside requests' send loop)."""

    def __init__(self, events: Events, digest: str):
        self.events = events
        self.digest = digest
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.events.emit(TransferProgress(digest=self.digest, done=done))

    def finish(self, done: int) -> None:
        self.events.emit(TransferProgress(digest=self.digest, done=done))


class _FileBody:
    """A request body streamed from a file with a known length (so requests sends Content-Length, not
    chunked encoding, which some registries refuse for blob uploads) that reports progress as it is read."""

    def __init__(self, file: BinaryIO, size: int, on_progress: Callable[[int], None]):
        self._file = file
        self._size = size
        self._done = 0
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n if n and n > 0 else CHUNK)
        self._done += len(data)
        self._on_progress(self._done)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._file.close()
