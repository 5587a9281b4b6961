"""What a build's provenance is made from, gathered from the build: the context's git checkout, the Dockerfile
(its name as buildx passes it and its bytes), the times (SOURCE_DATE_EPOCH's when set)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from .provenance import GitSource

_GIT_TIMEOUT = 30


def git_source(context: Path) -> GitSource | None:
    """The checkout the context directory is in: origin's URL (else the checkout's file:// URL) and HEAD's
    commit; None when the context is no git checkout (or git is not installed)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(context), *args], capture_output=True, text=True,
                                  timeout=_GIT_TIMEOUT, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None

    if not (context / ".git").exists() and git("rev-parse", "--is-inside-work-tree") != "true":
        return None
    commit = git("rev-parse", "--verify", "HEAD")
    if commit is None:
        return None  # a repository without a commit yet
    url = git("config", "--get", "remote.origin.url")
    if url is None:
        top = git("rev-parse", "--show-toplevel") or str(context.resolve())
        url = Path(top).resolve().as_uri()
    return GitSource(_without_credentials(url), commit)


def _without_credentials(url: str) -> str:
    """A remote URL with any user:password@ removed: provenance is public."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def dockerfile_name(dockerfile: Path, context: Path) -> str:
    """The Dockerfile as buildx names it (`filename`): relative to the context when it is inside it."""
    try:
        return dockerfile.resolve().relative_to(context.resolve()).as_posix()
    except ValueError:
        return dockerfile.name


def build_time(epoch: int | None, when: dt.datetime | None = None) -> dt.datetime:
    """SOURCE_DATE_EPOCH's time when it is set (a reproducible provenance), else `when` (default now), in
    whole seconds, UTC."""
    if epoch is not None:
        return dt.datetime.fromtimestamp(epoch, dt.UTC)
    return (when or dt.datetime.now(dt.UTC)).replace(microsecond=0)
