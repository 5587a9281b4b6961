"""Content-addressed step cache keys.

A key is the sha256 of a canonical JSON document: the parent's key (the base image's digest for a stage's first
step, then each step's key in turn, so a key names the whole history below it) and what the step reads: the
normalized instruction, the environment it sees, its flags and mounts, and the content of every file it reads.
File content is hashed with mode, owner and link targets but never times, so `touch` does not miss and an edit
always does. Whatever changes a step's result must be in its key: a wrong hit is a poisoned image.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import Any, Protocol

from ..rootfs.xattrs import image_xattrs
from .digests import FileDigests, hash_file

# Bumped whenever what a key covers or what an entry holds changes, so old entries simply stop matching.
KEY_FORMAT = "dockyard-step-cache/2"


def step_key(parent: str, **inputs: Any) -> str:
    """The key of a step on top of `parent`, given everything it reads (JSON-serializable values)."""
    document = json.dumps({"format": KEY_FORMAT, "parent": parent, **inputs}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(document.encode("utf-8", "surrogateescape")).hexdigest()


def base_key(base: str, *, platform: str, source_date_epoch: int | None, compression: str,
             level: int | None) -> str:
    """The key below a stage's first step: the base image (by manifest digest, or `scratch`) and the build-wide
    settings that change every layer's bytes (the epoch clamps file times; the compression makes the blob)."""
    return step_key("", base=base, platform=platform, source_date_epoch=source_date_epoch,
                    compression=compression, compression_level=level)


class TreeFilter(Protocol):
    """What a COPY would leave out (.dockerignore, --exclude): stage/source_filter.py's SourceFilter."""

    def excluded(self, host_path: str) -> bool: ...

    def walk_into(self, host_dir: str) -> bool: ...


def tree_digest(path: str, source_filter: TreeFilter | None = None, digests: FileDigests | None = None) -> str:
    """The content digest of a file or directory tree as a COPY would read it: each entry's relative path, type,
    permission bits, owner, xattrs (COPY carries them into the layer), size and content (or link target, or
    device numbers). Never times. `digests` remembers file contents between builds (cache/digests.py)."""
    digest = hashlib.sha256()
    _hash_entry(digest, path, ".", source_filter, digests, top=True)
    return "sha256:" + digest.hexdigest()



class _Hasher(Protocol):
    """A hashlib object, as far as the tree's hashing uses it."""

    def update(self, data: bytes, /) -> None: ...


def _hash_entry(digest: _Hasher, path: str, rel: str, source_filter: TreeFilter | None, digests: FileDigests | None, *,
                top: bool = False) -> None:
    st = os.lstat(path)
    mode = st.st_mode
    xattrs = [[name, value.hex()] for name, value in image_xattrs(path).items()]
    fields: list[Any] = [rel, stat.S_IFMT(mode), stat.S_IMODE(mode), st.st_uid, st.st_gid, xattrs]
    if stat.S_ISREG(mode):
        fields += [st.st_size, digests.file_digest(path, st) if digests is not None else hash_file(path)]
    elif stat.S_ISLNK(mode):
        fields.append(os.readlink(path))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        fields.append(st.st_rdev)
    digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n")
    if not stat.S_ISDIR(mode):
        return
    if not top and source_filter is not None and not source_filter.walk_into(path):
        return
    for name in sorted(os.listdir(path)):
        child = os.path.join(path, name)
        if source_filter is not None and source_filter.excluded(child) and not (
                os.path.isdir(child) and not os.path.islink(child) and source_filter.walk_into(child)):
            continue
        _hash_entry(digest, child, f"{rel}/{name}", source_filter, digests)

