"""Content digests of context files, remembered between builds by what `stat` says of each file.

A warm rebuild reads the cache keys of its COPY steps: the content of every context file (cache/keys.py
tree_digest). Hashing 5,000 unchanged files again cost more than a tenth of such a build. This memo keeps, per
build context, each file's sha256 with the stat fields that change whenever its content can have changed:
size, mtime_ns, ctime_ns, inode and device. Keys stay content-based: the memo only spares reading a file whose
digest it already knows.

ctime cannot be set by any user (utime sets it to now), so a write after the hash always shows up, except when
it lands in the same timestamp tick as the write before the hash (kernels keep file times coarse, a few ms).
That is git's "racy" case, handled as git does: an entry whose mtime or ctime is not older than the moment it
was hashed, less a margin for coarse and slightly adjusted clocks, is never trusted but hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..files import replace_file

FORMAT = 1
# A file changed less than this before it was hashed may change again within the same timestamp tick.
RACY_MARGIN_NS = 2_000_000_000


class FileDigests:
    """The memo of one build context, in `directory` (under the cache root). `load` before use, `save` after."""

    def __init__(self, directory: Path, context_root: str):
        self.path = Path(directory) / (hashlib.sha256(os.path.realpath(context_root).encode()).hexdigest()
                                       + ".json")
        self._known: dict[str, list[Any]] = {}
        self._used: dict[str, list[Any]] = {}

    def load(self) -> None:
        """Read the memo; a missing, unreadable or older-format one is an empty memo."""
        try:
            document = json.loads(self.path.read_bytes())
            if document.get("format") == FORMAT:
                self._known = document["files"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._known = {}

    def file_digest(self, path: str, st: os.stat_result) -> str:
        """The hex sha256 of the regular file at `path`, whose lstat is `st` (taken before this call)."""
        fields = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
        entry = self._known.get(path)
        settled = entry is not None and max(st.st_mtime_ns, st.st_ctime_ns) < entry[5] - RACY_MARGIN_NS
        if entry is not None and settled and entry[:5] == fields:
            self._used[path] = entry
            digest: str = entry[6]
            return digest
        hashed_at = time.time_ns()  # before reading: a write during the read is newer than this
        digest = hash_file(path)
        self._used[path] = [*fields, hashed_at, digest]
        return digest

    def save(self) -> None:
        """Keep the entries this build used (a memo of the context as it is now), atomically; best effort."""
        if self._used == self._known:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, json.dumps({"format": FORMAT, "files": self._used}).encode())
        except OSError:
            pass  # the memo only saves time


def hash_file(path: str) -> str:
    """The hex sha256 of a regular file's content (never read through a symlink)."""
    digest = hashlib.sha256()
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
