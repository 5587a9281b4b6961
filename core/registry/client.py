"""A client for the OCI Distribution API (docker registry v2): manifests and blobs, streamed.

Everything goes through one `requests.Session`, which callers may inject (tests, a proxy). Every way a request
can fail ends as a `RegistryError` (or `AuthenticationError`) that names the registry, the image or blob, and
what to do; no `requests` exception escapes. Failures worth retrying (connections, timeouts, 5xx, 429) are
retried with backoff (retry.py); a download cut short resumes with `Range`, an upload from the offset the
registry reports (upload.py). Blobs are never held in memory: downloads stream into a `BlobWriter` (which
verifies the digest before anything lands in the store) and uploads stream from the store's file.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, BinaryIO, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from ..errors import AuthenticationError, DockyardError, RegistryError
from ..events import NULL_EVENTS, Events, TransferFinished, TransferStarted
from ..image.blobs import CHUNK, BlobStore, BlobWriter
from ..image.model import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, sha256_digest
from ..image.reference import Reference, is_loopback_registry
from .auth import (Authenticator, CredentialStore, default_credential_store, normalize_registry_key,
                   proxies_for)
from .retry import (DEFAULT_BASE_DELAY, DEFAULT_RETRIES, RetryPolicy, TransientRegistryError, attempts_text,
                    is_retryable_network_kind, is_retryable_status)
from .tls import TLSSettings, untrusted_certificate_hint
from .upload import DEFAULT_CHUNK_SIZE, BlobUpload, FileSlice, Progress

ALL_MANIFEST_TYPES: tuple[str, ...] = MANIFEST_TYPES + INDEX_TYPES
SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
# (connect, read) seconds. The read timeout is between bytes, not for a whole blob, so big layers are fine.
DEFAULT_TIMEOUT = (15.0, 120.0)
# containerd's limit: a manifest bigger than this is not a manifest, and we read manifests into memory.
MANIFEST_LIMIT = 4 << 20
ERROR_BODY_LIMIT = 64 << 10
MAX_REDIRECTS = 5
# Smaller upload chunks would make a registry's `Range: 0-0` ambiguous and cost a request per few bytes.
MIN_CHUNK_SIZE = 64 << 10
USER_AGENT = "dockyard/0.1"

# What a response body can raise while it streams (requests wraps some of these, urllib3's raw reader doesn't).
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


class _BodyCut(Exception):
    """A download's connection broke after some of the body arrived."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RegistryClient:
    def __init__(self, *, insecure_registries: tuple[str, ...] | list[str] = (),
                 session: requests.Session | None = None, environ: Mapping[str, str] | None = None,
                 events: Events = NULL_EVENTS, max_parallel: int = 4,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 credentials: CredentialStore | None = None, retries: int = DEFAULT_RETRIES,
                 pull_retries: int | None = None, backoff: float = DEFAULT_BASE_DELAY,
                 upload_chunk_size: int = DEFAULT_CHUNK_SIZE, tls: TLSSettings | None = None):
        """`retries`: attempts after the first for every request (docker's --max-*-attempts minus one);
        `pull_retries` overrides it for pulls. `backoff`: seconds before the first retry (doubling after).
        `upload_chunk_size`: blobs up to it are uploaded in one request, bigger ones in chunks of it.
        `tls`: which CAs and client certificate each registry gets (default: the system's CAs)."""
        self.environ: Mapping[str, str] = dict(os.environ) if environ is None else environ
        self.insecure_registries = frozenset(normalize_registry_key(r) for r in insecure_registries)
        self.events = events
        self.max_parallel = max(1, int(max_parallel))
        self.timeout = timeout
        self.push_policy = RetryPolicy(max(0, retries), base_delay=backoff)
        self.pull_policy = RetryPolicy(max(0, retries if pull_retries is None else pull_retries), base_delay=backoff)
        self.upload_chunk_size = max(MIN_CHUNK_SIZE, int(upload_chunk_size))
        self.tls = tls
        self.session = session if session is not None else self._default_session()
        self.credentials = credentials if credentials is not None else default_credential_store(self.environ)
        self.auth = Authenticator(self.session, self.credentials, timeout=timeout,
                                  connection_error=self._token_service_error, tls_for=self._tls_for)
        # (registry, blob digest) → a repository known to hold it: the source of cross-repository mounts.
        self._blob_sources: dict[tuple[str, str], str] = {}
        self._sources_lock = threading.Lock()

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
        """https, except plain http for loopback (as docker allows) and registries named insecure, unless the
        user gave the registry certificates of its own (then it has TLS, wherever it is)."""
        registry = registry.lower()
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
        if self.tls is not None and self.tls.configured(registry):
            return "https"
        if is_loopback_registry(registry) or registry in self.insecure_registries \
                or host in self.insecure_registries:
            return "http"
        return "https"

    def url_for(self, ref: Reference, path: str) -> str:
        return f"{self.scheme(ref.registry)}://{ref.api_host}/v2/{ref.repository}/{path}"

    def blob_source(self, repo: Reference, digest: str) -> str | None:
        """Another repository of `repo`'s registry that holds the blob (it was pulled from or pushed there)."""
        with self._sources_lock:
            source = self._blob_sources.get((repo.registry, digest))
        return source if source != repo.repository else None

    def knows_source(self, registry: str, digest: str) -> bool:
        """Whether some repository of `registry` is known to hold the blob."""
        with self._sources_lock:
            return (registry, digest) in self._blob_sources

    def remember_source(self, repo: Reference, digest: str) -> None:
        """Note that `repo` holds the blob: a later upload to another repository of the registry mounts it."""
        with self._sources_lock:
            self._blob_sources[(repo.registry, digest)] = repo.repository

    # --- manifests -----------------------------------------------------------------------------------------
    def get_manifest(self, ref: Reference,
                     accept: tuple[str, ...] = ALL_MANIFEST_TYPES) -> tuple[bytes, str, str]:
        """(body, media type, digest) of the manifest or index `ref` names, verified against the pinned digest
        and the registry's Docker-Content-Digest."""
        url = self.url_for(ref, f"manifests/{ref.identifier}")
        resp = self.send_request("GET", url, ref, "pull", what=f"pull {ref}",
                                 headers={"Accept": ", ".join(accept)}, stream=True)
        with resp:
            if resp.status_code == 404:
                said = _registry_error_text(resp)
                raise RegistryError(
                    f"image not found: {ref}" + (f" (the registry says: {said})" if said else ""),
                    hint=f"check the repository name and the tag; registry {ref.registry} has no manifest for "
                         f"{ref.identifier!r} in {ref.repository}. A private repository may also answer "
                         f"'not found' to anonymous requests: docker login {ref.registry}")
            self.check(resp, ref, "pull", what=f"pull {ref}")
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
        url = self.url_for(repo, f"manifests/{reference}")
        target = f"{repo.name}:{reference}" if not reference.startswith("sha256:") else f"{repo.name}@{reference}"
        what = f"push the manifest of {target}"
        resp = self.send_request("PUT", url, repo, "pull,push", what=what, headers={"Content-Type": media_type},
                                 body=body)
        with resp:
            self.check(resp, repo, "push", what=what, ok=(200, 201, 202))
            header_digest = resp.headers.get("Docker-Content-Digest", "").strip()
        digest = sha256_digest(body)
        if header_digest.startswith("sha256:") and header_digest != digest:
            raise RegistryError(f"registry {repo.registry} stored the manifest of {target} as {header_digest}, "
                                f"but it hashes to {digest}",
                                hint="a proxy altered the manifest on its way; push again")
        return digest

    def manifest_exists(self, repo: Reference, digest: str) -> bool:
        """Whether the repository stores the manifest (or index) `digest`: a HEAD, nothing read."""
        url = self.url_for(repo, f"manifests/{digest}")
        what = f"check manifest {digest} in {repo.name}"
        resp = self.send_request("HEAD", url, repo, "pull,push", what=what,
                                 headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)})
        with resp:
            if resp.status_code == 404:
                return False
            self.check(resp, repo, "pull", what=what)
            return True

    # --- blobs ---------------------------------------------------------------------------------------------
    def blob_exists(self, repo: Reference, digest: str) -> bool:
        url = self.url_for(repo, f"blobs/{digest}")
        # HEAD needs only pull, but a push asks for pull,push right after: ask once for both (one token).
        resp = self.send_request("HEAD", url, repo, "pull,push", what=f"check blob {digest} in {repo.name}",
                                 follow_redirects=True)
        with resp:
            if resp.status_code == 404:
                return False
            self.check(resp, repo, "pull", what=f"check blob {digest} in {repo.name}")
            return True

    def fetch_blob(self, repo: Reference, digest: str, store: BlobStore, size: int | None = None) -> None:
        """Download a blob into the store, verified; a no-op when the store has it already. A connection that
        breaks mid-body is resumed with `Range` (or restarted, if the registry ignores it)."""
        store.path(digest)  # rejects malformed digests before any request
        self.remember_source(repo, digest)
        if store.has(digest):
            self.events.emit(TransferFinished(digest=digest, skipped="exists"))
            return
        what = f"download blob {digest} of {repo}"
        policy = self.pull_policy
        progress = Progress(self.events, digest)
        # The writer aborts (deletes its temp file) on any error: a failed or corrupt download leaves nothing.
        writer = store.writer(expected_digest=digest)
        try:
            for retry in range(policy.retries + 1):
                try:
                    writer = self._download(repo, digest, store, writer, size, progress, what)
                    break
                except _BodyCut as cut:
                    if retry == policy.retries:
                        raise RegistryError(
                            f"gave up downloading blob {digest} of {repo} from registry {repo.registry} after "
                            f"{attempts_text(policy.retries)}: {cut.reason}", subject=digest,
                            hint="the registry or the network to it kept failing: check any proxy in between, "
                                 "then retry (--image-download-retry N allows more attempts)") from None
                    delay = policy.delay(retry)
                    self.events.info(f"{what}: {cut.reason} after {writer.size} bytes; resuming in {delay:.1f}s "
                                     f"(retry {retry + 1} of {policy.retries})")
                    policy.sleep(delay)
            if size is not None and writer.size != size:
                raise RegistryError(f"blob {digest} of {repo} is {writer.size} bytes, but its manifest says "
                                    f"{size}", hint="the download was cut short or the image is broken; retry")
            writer.commit()  # raises DigestMismatch (a RegistryError) if the bytes are not the digest's
        finally:
            writer.abort()  # a no-op once committed
        progress.finish(writer.size)
        self.events.emit(TransferFinished(digest=digest))

    def _download(self, repo: Reference, digest: str, store: BlobStore, writer: BlobWriter, size: int | None,
                  progress: Progress, what: str) -> BlobWriter:
        """One GET of the blob, from where `writer` stands; returns the writer that holds the bytes (a new one
        when the registry ignored our Range and sent the whole blob again)."""
        # identity: a gzip Content-Encoding added by some proxy would otherwise change the bytes we hash.
        headers = {"Accept-Encoding": "identity"}
        if writer.size:
            headers["Range"] = f"bytes={writer.size}-"
        url = self.url_for(repo, f"blobs/{digest}")
        resp = self.send_request("GET", url, repo, "pull", what=what, headers=headers, stream=True,
                                 follow_redirects=True)
        with resp:
            if resp.status_code == 404:
                raise RegistryError(f"blob {digest} of {repo} is missing from registry {repo.registry}",
                                    hint="the image's manifest names a blob the registry does not have (a "
                                         "broken or partially deleted image): push the image again")
            self.check(resp, repo, "pull", what=what, ok=(200, 206) if writer.size else (200,))
            if writer.size and not _resumes_at(resp, writer.size):
                writer.abort()
                writer = store.writer(expected_digest=digest)
            if not writer.size:
                total = size if size is not None else _int_header(resp, "Content-Length")
                self.events.emit(TransferStarted(direction="pull", image=str(repo), digest=digest,
                                                 total=total or 0))
            self._stream_into(resp, writer, store, repo, digest, size, progress)
        return writer

    def _stream_into(self, resp: requests.Response, writer: BlobWriter, store: BlobStore, repo: Reference,
                     digest: str, size: int | None, progress: Progress) -> None:
        chunks = resp.raw.stream(CHUNK, decode_content=False)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except _NETWORK_ERRORS as exc:
                raise _BodyCut(describe_network_error(exc)) from None
            try:
                writer.write(chunk)
            except OSError as exc:
                raise RegistryError(f"cannot store blob {digest} in {store.root}: {exc.strerror}",
                                    hint="is the disk full?") from None
            if size is not None and writer.size > size:
                raise RegistryError(f"blob {digest} of {repo} is larger than the {size} bytes its manifest says",
                                    hint="the registry serves a different blob than the manifest describes; the "
                                         "image is broken or was tampered with")
            progress.update(writer.size)

    def upload_blob(self, repo: Reference, digest: str, size: int, store: BlobStore) -> bool:
        """Upload a blob from the store unless the repository has it (or can mount it from another repository
        of the registry); True if bytes were sent."""
        if self.blob_exists(repo, digest):
            self.remember_source(repo, digest)
            self.events.emit(TransferFinished(digest=digest, skipped="exists"))
            return False
        upload = BlobUpload(self, repo, digest, size, store)
        if not store.has(digest):
            # A layer known only in another repository (a registry cache's): mount it from there, and download
            # it only when the registry declines the mount.
            source = self.blob_source(repo, digest)
            if source is None:
                raise RegistryError(f"cannot push blob {digest} to {repo.name}: it is not in the blob store "
                                    f"{store.root}")
            if upload.mount():
                self.remember_source(repo, digest)
                self.events.emit(TransferFinished(digest=digest, skipped="mounted"))
                return False
            self.fetch_blob(Reference(repo.registry, source), digest, store, size)
        actual = store.size(digest)
        if actual != size:
            raise RegistryError(f"cannot push blob {digest} to {repo.name}: the image says it has {size} bytes, "
                                f"the blob store's copy has {actual}")
        skipped = upload.run()
        self.remember_source(repo, digest)
        self.events.emit(TransferFinished(digest=digest, skipped=skipped))
        return skipped is None

    # --- the request core ----------------------------------------------------------------------------------
    def send_request(self, method: str, url: str, ref: Reference, actions: str, *, what: str,
                     headers: dict[str, str] | None = None,
                     body: bytes | Callable[[], BinaryIO | FileSlice] | None = None, stream: bool = False,
                     follow_redirects: bool = False, retry: bool = True,
                     extra_scope: str | None = None) -> requests.Response:
        """Send with authorization, retrying connection failures, 5xx and 429 with backoff (unless `retry` is
        False: then a connection failure raises TransientRegistryError and any status is returned).

        `body` may be a factory of file objects, so that a resend streams the file again from the start.
        `extra_scope` is a further token scope the request needs (the source repository of a mount). The
        returned response may be any status that is not worth retrying: callers decide what is an error.
        """
        scope = " ".join(filter(None, (f"repository:{ref.repository}:{actions}", extra_scope)))
        policy = self.push_policy if "push" in actions else self.pull_policy
        retries = policy.retries if retry else 0
        for attempt in range(retries + 1):
            try:
                resp = self._authorized(method, url, ref, scope, headers, body, stream, follow_redirects)
            except _ConnectionFailed as failed:
                kind, reason = classify_network_error(failed.exc)
                if attempt == retries or not is_retryable_network_kind(kind):
                    raise self._connection_error(failed.exc, ref, what, failed.url, attempt) from None
                self._wait_to_retry(policy, attempt, what, reason)
                continue
            if not retry or not is_retryable_status(resp.status_code):
                return resp
            if attempt == retries:
                with resp:
                    raise self.status_error(resp, ref, actions, what=what, attempts=attempt)
            retry_after = resp.headers.get("Retry-After")
            resp.close()
            self._wait_to_retry(policy, attempt, what, f"HTTP {resp.status_code}", retry_after)
        raise AssertionError("unreachable")

    def _wait_to_retry(self, policy: RetryPolicy, attempt: int, what: str, reason: str,
                       retry_after: str | None = None) -> None:
        delay = policy.delay(attempt, retry_after)
        self.events.info(f"{what}: {reason}; retrying in {delay:.1f}s (retry {attempt + 1} of {policy.retries})")
        policy.sleep(delay)

    def _authorized(self, method: str, url: str, ref: Reference, scope: str, headers: dict[str, str] | None,
                    body: bytes | Callable[[], BinaryIO | FileSlice] | None, stream: bool,
                    follow_redirects: bool) -> requests.Response:
        """Send with cached authorization; on a 401, answer the challenge once and resend."""
        for attempt in range(2):
            hdrs = dict(headers or {})
            authorization = self.auth.cached(ref.registry, scope)
            if authorization:
                hdrs["Authorization"] = authorization
            data = body() if callable(body) else body
            try:
                resp = self._send(method, url, hdrs, data, stream, follow_redirects, ref)
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

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | BinaryIO | FileSlice | None,
              stream: bool, follow_redirects: bool,
              ref: Reference) -> requests.Response:
        # Redirects are followed here, not by requests, to control what goes along: blob downloads are
        # commonly redirected to a CDN or object store, which must never see the registry's Authorization.
        origin = urlsplit(url)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.request(method, url, headers=headers, data=data, stream=stream,
                                            timeout=self.timeout, allow_redirects=False, proxies=proxies_for(url),
                                            **self._tls_for(url))
            except requests.RequestException as exc:
                raise _ConnectionFailed(exc, url) from None
            location = resp.headers.get("Location")
            if not follow_redirects or resp.status_code not in (301, 302, 303, 307, 308) or not location:
                return resp
            resp.close()
            url = urljoin(url, location)
            target = urlsplit(url)
            if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f"registry {ref.registry} redirected more than {MAX_REDIRECTS} times")

    def _tls_for(self, url: str) -> dict[str, Any]:
        """requests' verify=/cert= for the host `url` points at (a redirect target gets its own)."""
        parts = urlsplit(url)
        if self.tls is None or parts.scheme != "https":
            return {}
        config = self.tls.for_registry(parts.netloc)
        return {"verify": config.verify, "cert": config.cert}

    # --- errors --------------------------------------------------------------------------------------------
    def check(self, resp: requests.Response, ref: Reference, actions: str, *, what: str,
              ok: tuple[int, ...] = (200,)) -> None:
        """Raise the right error for an unexpected status."""
        if resp.status_code not in ok:
            raise self.status_error(resp, ref, actions, what=what)

    def status_error(self, resp: requests.Response, ref: Reference, actions: str, *, what: str,
                     attempts: int = 0) -> DockyardError:
        said = _registry_error_text(resp)
        said_part = f": {said}" if said else ""
        if resp.status_code in (401, 403):
            verb = "denied" if resp.status_code == 403 else "refused"
            return AuthenticationError(
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
        tries = f" (after {attempts_text(attempts)})" if attempts else ""
        reason = resp.reason or ""
        return RegistryError(f"registry {ref.registry} answered HTTP {resp.status_code} {reason} when asked to "
                             f"{what}{tries}{said_part}".replace("  ", " "), hint=hint)

    def _connection_error(self, exc: Exception, ref: Reference, what: str, url: str,
                          attempts: int = 0) -> RegistryError:
        kind, reason = classify_network_error(exc)
        host = urlsplit(url).netloc
        elsewhere = f" (at {host}, where it redirected us)" if host and host != ref.api_host else ""
        plain_http_hint = (f"If {ref.registry} serves plain HTTP, pass --insecure-registry {ref.registry}."
                           if self.scheme(ref.registry) == "https" else "")
        if kind == "dns":
            hint = f"is the registry name {ref.registry!r} spelled right, and does this machine's DNS know it?"
        elif kind == "tls" and "certificate verify failed" in reason.lower():
            hint = untrusted_certificate_hint(ref.registry)
        elif kind == "tls":
            hint = plain_http_hint or "check the registry's TLS setup"
        elif kind == "timeout":
            hint = "is the registry reachable from here (a firewall, or a proxy that HTTPS_PROXY should name)?"
        else:
            hint = f"is the registry running, and is {ref.registry!r} the right host and port? {plain_http_hint}"
        tries = f" (after {attempts_text(attempts)})" if attempts else ""
        message = f"cannot reach registry {ref.registry}{elsewhere} to {what}{tries}: {reason}"
        if not is_retryable_network_kind(kind):
            return RegistryError(message, hint=hint.strip())
        return TransientRegistryError(message, reason=reason, hint=hint.strip())

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
            raise RegistryError(f"the connection to registry {ref.registry} failed while trying to {what}: "
                                f"{describe_network_error(exc)}", hint="a network or registry problem: retry") \
                from None
        return b"".join(parts)


class _ConnectionFailed(Exception):
    def __init__(self, exc: requests.RequestException, url: str):
        super().__init__(str(exc))
        self.exc = exc
        self.url = url


def _resumes_at(resp: requests.Response, offset: int) -> bool:
    """Whether a response to `Range: bytes=OFFSET-` continues the body at OFFSET (a 206 saying so)."""
    content_range = resp.headers.get("Content-Range", "")
    return resp.status_code == 206 and content_range.startswith(f"bytes {offset}-")


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
        media_type: str = doc["mediaType"]
        return media_type
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
