"""A content-addressed blob store on disk (`blobs/sha256/HEX`, the OCI layout's shape).

Blobs are written to a temporary file beside their final place, hashed while they are written, and renamed
into place only once their digest is known (and, for pulled blobs, verified) and their data is on the disk. A
reader therefore never sees a partial or corrupt blob, not even after a power loss, and two writers of the same
blob cannot corrupt each other.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import RegistryError

CHUNK = 1 << 20


class DigestMismatch(RegistryError):
    pass


class BlobWriter:
    """A file-like sink that hashes and counts what it is given; `commit()` moves it into the store."""

    def __init__(self, store: BlobStore, expected_digest: str | None = None):
        self._store = store
        self._expected = expected_digest
        store.root.joinpath("tmp").mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=store.root / "tmp", prefix="ingest-")
        self._file = os.fdopen(fd, "wb", buffering=CHUNK)
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def commit(self) -> str:
        # On the disk before its name is: step overlays are volatile (nothing syncs the filesystem any more), and
        # after a power loss a renamed but unwritten blob would be an empty file under a trusted digest.
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self._hash.hexdigest()
        if self._expected and digest != self._expected:
            os.unlink(self._tmp)
            raise DigestMismatch(
                f"blob {self._expected} is corrupt: its content hashes to {digest}",
                subject=self._expected, hint="the registry or a proxy altered the data; retry, or check the "
                "registry's storage")
        final = self._store.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None or self.digest is None:
            self.abort()


class BlobStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            raise RegistryError(f"unsupported or malformed digest {digest!r}", subject=digest)
        return self.root / "blobs" / "sha256" / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def read_bytes(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def writer(self, expected_digest: str | None = None) -> BlobWriter:
        return BlobWriter(self, expected_digest)

    def put_bytes(self, data: bytes) -> str:
        with self.writer() as w:
            w.write(data)
            return w.commit()
