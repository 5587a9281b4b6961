"""Resolving image paths inside a root directory, the way a chrooted process would see them.

Every write the builder makes into a root filesystem goes through `resolve_in_root`: symlinks met on the way
are interpreted relative to the root, and `..` can never climb above it. This is what keeps a hostile layer
(`../../etc/passwd`, or a parent directory that is a symlink to `/`) from writing to the host.
"""

from __future__ import annotations

import os
import posixpath
import stat

MAX_SYMLINKS = 255


class PathEscape(ValueError):
    pass


def clean(path: str) -> str:
    """Lexically clean an image path to a root-relative form without `..` ('' is the root itself)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def resolve_in_root(root: str, path: str, *, follow_final: bool = True) -> str:
    """The host path of `path` inside `root`, with symlinks resolved as if `root` were `/`.

    Components that do not exist are kept as they are (so the result can be created). With follow_final
    False, the last component is not resolved even if it is a symlink (what a writer wants: replace it,
    never write through it).
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        is_last = not pending
        if is_last and not follow_final:
            resolved.append(part)
            break
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise PathEscape(f"too many levels of symbolic links resolving {path!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved) if resolved else root


def image_path_join(base: str, path: str) -> str:
    """Join an image path onto a base (WORKDIR-style): absolute paths win; result is absolute and clean."""
    joined = path if path.startswith("/") else posixpath.join(base or "/", path)
    return "/" + clean(joined)
