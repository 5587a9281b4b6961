"""The blob upload protocol of the Distribution API, made to survive faults.

One `BlobUpload` moves one blob into one repository:

1. cross-repository mount (`POST uploads/?mount=DIGEST&from=OTHER`) when the client knows the blob is in
   another repository of the same registry (the base image's layers): 201 means done without sending a byte,
   202 means the registry declined and gave us an ordinary upload;
2. otherwise `POST uploads/` starts an upload session;
3. a blob up to `chunk_size` goes in one `PUT ?digest=` with the body (monolithic); a larger one in `PATCH`
   chunks with `Content-Range`, then an empty `PUT ?digest=`;
4. when a request fails in a way worth retrying (connection lost, 5xx, 429, 416), we ask the session where it
   stands (`GET` → `Range: 0-N`) and resume from there; if the session is gone (distribution cancels a session
   whose data disagrees with the client's state, e.g. after half a chunk arrived) we start a new one; if the
   blob is already there (the final PUT's answer was lost) we are done.

Bodies are slices of the blob store's file, streamed: memory stays constant whatever the blob's size.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from ..errors import AuthenticationError, RegistryError
from ..events import Events, TransferProgress, TransferStarted
from ..image.blobs import CHUNK, BlobStore
from ..image.reference import Reference
from .retry import RetryPolicy, TransientRegistryError, attempts_text, is_retryable_status

if TYPE_CHECKING:
    import requests

# Blobs up to this size go in one request; bigger ones in chunks of it (a lost connection costs one chunk).
DEFAULT_CHUNK_SIZE = 32 << 20
PROGRESS_INTERVAL = 0.1  # seconds between TransferProgress events per blob
_OCTET_STREAM = {"Content-Type": "application/octet-stream"}


class _Interrupted(Exception):
    """A request of the upload failed in a way that resuming may fix."""

    def __init__(self, reason: str, retry_after: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class UploadClient(Protocol):
    """What an upload asks of the registry client (client.py's RegistryClient, which starts the uploads)."""

    events: Events
    push_policy: RetryPolicy
    upload_chunk_size: int

    def url_for(self, ref: Reference, path: str) -> str: ...

    def blob_source(self, repo: Reference, digest: str) -> str | None: ...

    def blob_exists(self, repo: Reference, digest: str) -> bool: ...

    def send_request(self, method: str, url: str, ref: Reference, actions: str, *, what: str,
                     headers: dict[str, str] | None = None,
                     body: bytes | Callable[[], BinaryIO | FileSlice] | None = None, stream: bool = False,
                     follow_redirects: bool = False, retry: bool = True,
                     extra_scope: str | None = None) -> requests.Response: ...

    def check(self, resp: requests.Response, ref: Reference, actions: str, *, what: str,
              ok: tuple[int, ...] = (200,)) -> None: ...


class BlobUpload:
    def __init__(self, client: UploadClient, repo: Reference, digest: str, size: int, store: BlobStore):
        self.client = client
        self.repo = repo
        self.digest = digest
        self.size = size
        self.store = store
        self.what = f"upload blob {digest} to {repo.name}"
        self.start_url = client.url_for(repo, "blobs/uploads/")
        self.location: str | None = None  # the upload session's URL, as the registry last told it
        self.offset = 0  # bytes the registry has
        self.finished = False
        self.progress = Progress(client.events, digest)
        self.mount_tried = False

    def run(self) -> str | None:
        """Do the upload; returns "mounted" when the registry mounted the blob instead."""
        if not self.mount_tried and self.mount():
            return "mounted"
        if self.location is None:
            self._start()
        self.client.events.emit(TransferStarted(direction="push", image=str(self.repo), digest=self.digest,
                                                total=self.size))
        policy = self.client.push_policy
        for retry in range(policy.retries + 1):
            try:
                self._send_rest()
                break
            except _Interrupted as why:
                if retry == policy.retries:
                    raise self._gave_up(why, policy.retries) from None
                delay = policy.delay(retry, why.retry_after)
                self.client.events.info(f"{self.what}: {why.reason}; resuming in {delay:.1f}s "
                                        f"(retry {retry + 1} of {policy.retries})")
                policy.sleep(delay)
                self._recover()
        self.progress.finish(self.size)
        return None

    # --- the protocol --------------------------------------------------------------------------------------
    def mount(self) -> bool:
        """Try a cross-repository mount from the repository the client knows holds the blob; True if done. A
        declined mount leaves the upload session the registry opened instead, for `run`."""
        self.mount_tried = True
        source = self.client.blob_source(self.repo, self.digest)
        if source is None:
            return False
        url = add_query(self.start_url, mount=self.digest, **{"from": source})
        try:
            resp = self.client.send_request("POST", url, self.repo, "pull,push", what=self.what, body=b"",
                                            extra_scope=f"repository:{source}:pull")
        except AuthenticationError:
            return False  # may not read the source repository: upload instead, as docker does
        with resp:
            if resp.status_code == 201:
                return True
            if resp.status_code == 202 and resp.headers.get("Location"):
                self.location = urljoin(self.start_url, resp.headers["Location"])
        return False

    def _start(self) -> None:
        resp = self.client.send_request("POST", self.start_url, self.repo, "pull,push", what=self.what, body=b"")
        with resp:
            self.client.check(resp, self.repo, "push", what=self.what, ok=(202,))
            location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.repo.registry} started an upload for {self.repo.name} but sent "
                                "no Location to upload to")
        # Location may be relative or absolute and usually carries its own query (_state=...): keep it.
        self.location = urljoin(self.start_url, location)
        self.offset = 0

    def _send_rest(self) -> None:
        if self.finished:
            return
        if self.offset == 0 and self.size <= self.client.upload_chunk_size:
            self._put(self._body(0, self.size))
            return
        while self.offset < self.size:
            self._patch()
        self._put(None)

    def _patch(self) -> None:
        end = min(self.offset + self.client.upload_chunk_size, self.size)
        headers = {**_OCTET_STREAM, "Content-Range": f"{self.offset}-{end - 1}"}
        resp = self._send("PATCH", self._session(), headers, self._body(self.offset, end - self.offset))
        with resp:
            self._raise_for(resp, ok=(202,))
            self._follow(resp)
            offset = registry_offset(resp.headers.get("Range"), default=end)
        if offset <= self.offset:
            raise _Interrupted(f"the registry accepted a chunk but holds {offset} bytes, not {end}")
        self.offset = offset

    def _put(self, body: Callable[[], FileSlice] | None) -> None:
        url = add_query(self._session(), digest=self.digest)
        resp = self._send("PUT", url, dict(_OCTET_STREAM), body)
        with resp:
            self._raise_for(resp, ok=(201, 204))
        self.finished = True

    def _recover(self) -> None:
        """Find out where the registry stands after an interrupted request."""
        if self.client.blob_exists(self.repo, self.digest):
            self.finished = True  # the final PUT got through; only its answer was lost
            return
        resp = self.client.send_request("GET", self._session(), self.repo, "pull,push", what=self.what)
        with resp:
            if resp.status_code in (200, 204):
                self._follow(resp)
                self.offset = registry_offset(resp.headers.get("Range"), default=0)
                return
        self._start()  # the session is gone or invalid: start over

    # --- helpers -------------------------------------------------------------------------------------------
    def _session(self) -> str:
        """The upload session's URL, which every request after `_start` goes to."""
        assert self.location is not None, "no upload session started"
        return self.location

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: bytes | Callable[[], BinaryIO | FileSlice] | None) -> requests.Response:
        try:
            return self.client.send_request(method, url, self.repo, "pull,push", what=self.what,
                                            headers=headers, body=body, retry=False)
        except TransientRegistryError as exc:
            raise _Interrupted(exc.reason) from None

    def _raise_for(self, resp: requests.Response, ok: tuple[int, ...]) -> None:
        status = resp.status_code
        if status in ok:
            return
        if status == 416 or is_retryable_status(status):
            raise _Interrupted(f"the registry answered HTTP {status} {resp.reason or ''}".rstrip(),
                               resp.headers.get("Retry-After"))
        if status == 404:
            raise _Interrupted("the registry no longer knows the upload session")
        self.client.check(resp, self.repo, "push", what=self.what, ok=ok)

    def _follow(self, resp: requests.Response) -> None:
        if resp.headers.get("Location"):
            self.location = urljoin(self.location or "", resp.headers["Location"])

    def _body(self, start: int, length: int) -> Callable[[], FileSlice]:
        def open_slice() -> FileSlice:
            return FileSlice(self.store.open(self.digest), start, length, self.progress.update)
        return open_slice

    def _gave_up(self, why: _Interrupted, retries: int) -> RegistryError:
        return RegistryError(
            f"gave up uploading blob {self.digest} to repository {self.repo.repository} of registry "
            f"{self.repo.registry} after {attempts_text(retries)}: {why.reason}",
            subject=self.digest,
            hint="the registry or the network to it kept failing: check the registry's logs and any proxy in "
                 "between, then push again (--push-retry N allows more attempts)")


def registry_offset(range_header: str | None, default: int) -> int:
    """The number of bytes an upload session holds, from its `Range: 0-LAST` header.

    distribution answers `0-0` both for an empty session and for one holding a single byte; we read it as
    empty: at worst the next PATCH gets a 416 and we ask again."""
    if not range_header:
        return default
    _, _, last = range_header.strip().removeprefix("bytes=").partition("-")
    try:
        last_byte = int(last)
    except ValueError:
        return default
    return last_byte + 1 if last_byte > 0 else 0


def add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class Progress:
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


class FileSlice:
    """A request body streamed from `length` bytes of a file starting at `start`. It has a length (so
    requests sends Content-Length, not chunked encoding, which registries refuse for blob uploads) and
    reports the absolute offset reached as it is read."""

    def __init__(self, file: BinaryIO, start: int, length: int, on_progress: Callable[[int], None]):
        file.seek(start)
        self._file = file
        self._start = start
        self._length = length
        self._done = 0
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self._length

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._done
        data = self._file.read(min(n if n and n > 0 else CHUNK, left)) if left > 0 else b""
        self._done += len(data)
        self._on_progress(self._start + self._done)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._file.close()
