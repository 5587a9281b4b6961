"""ADD's remote sources: files over HTTP(S) and git repositories, fetched into a temporary directory.

What counts as a git source follows BuildKit's gitutil: `git://`, `ssh://`, `git@host:path`, and http(s) URLs
whose path ends in `.git`; a fragment `#ref`, `#ref:subdir` (or `#ref=...,subdir=...`) picks what to check out.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import urllib.parse
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from .errors import ContextError, DockerfileError, StepFailed

_CHUNK = 1 << 20
GIT_TIMEOUT = 600


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class GitRef:
    """A git source (ADD, or a kaniko git context): the repository to clone, what to check out, which subdirectory."""

    remote: str  # what `git clone` gets
    ref: str | None  # branch, tag or commit; None: the remote's HEAD
    subdir: str  # "" for the whole tree


def parse_git_url(source: str) -> GitRef | None:
    """The git source ADD means, or None when the source is not a git URL."""
    remote, _, fragment = source.partition("#")
    if remote.startswith(("git://", "ssh://")) or re.match(r"^[\w.-]+@[\w.-]+:", remote):
        pass
    elif is_url(remote) and urllib.parse.urlsplit(remote).path.endswith(".git"):
        pass
    else:
        return None
    ref, subdir = _parse_fragment(fragment)
    return GitRef(remote, ref, clean_subdir(subdir))


def _parse_fragment(fragment: str) -> tuple[str | None, str]:
    if "=" in fragment:  # BuildKit's key=value form: #ref=v1,subdir=docs
        fields = dict(item.partition("=")[::2] for item in fragment.split(",") if item)
        unknown = set(fields) - {"ref", "subdir"}
        if unknown:
            raise DockerfileError(f"unsupported git URL fragment key {sorted(unknown)[0]!r}",
                                  hint="use #REF, #REF:SUBDIR or #ref=REF,subdir=DIR")
        return fields.get("ref") or None, fields.get("subdir", "")
    ref, _, subdir = fragment.partition(":")
    return ref or None, subdir


def clean_subdir(subdir: str) -> str:
    return posixpath.normpath("/" + subdir).lstrip("/") if subdir else ""


def url_file_name(url: str) -> str:
    """The file name ADD gives a download: the last segment of the URL's path."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return posixpath.basename(path.rstrip("/")) or "__unnamed__"  # BuildKit's name when the path has none


def parse_checksum(text: str) -> tuple[str, str]:
    """--checksum=ALGO:HEX (sha256, sha384 or sha512) as (algorithm, lower-case hex)."""
    algorithm, _, digest = text.partition(":")
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    if algorithm not in sizes or not re.fullmatch(f"[0-9a-fA-F]{{{sizes.get(algorithm, 0)}}}", digest):
        raise DockerfileError(f"invalid --checksum={text}: expected sha256:<64 hex digits>",
                              hint="e.g. --checksum=sha256:$(sha256sum FILE)")
    return algorithm, digest.lower()


# The ADD downloads of the build under way, (url, "sha256:HEX") each, when the build records them for its
# provenance (record_downloads); None: nobody is recording.
_RECORDED: ContextVar[list[tuple[str, str]] | None] = ContextVar("recorded_downloads", default=None)


@contextmanager
def record_downloads() -> Iterator[list[tuple[str, str]]]:
    """Within the block, every download() of this thread adds (url, sha256 digest) to the list yielded."""
    found: list[tuple[str, str]] = []
    token = _RECORDED.set(found)
    try:
        yield found
    finally:
        _RECORDED.reset(token)


def download(url: str, dest_file: str, checksum: str | None = None) -> float | None:
    """Fetch a URL into dest_file, verifying --checksum; returns the Last-Modified time (docker's mtime)."""
    import requests

    hasher = hashlib.new(parse_checksum(checksum)[0]) if checksum else None
    recorded = _RECORDED.get()
    content_hash = hashlib.sha256() if recorded is not None else None
    try:
        with requests.get(url, stream=True, timeout=60) as response:
            if response.status_code != 200:
                raise ContextError(f"ADD cannot download {url}: HTTP {response.status_code} {response.reason}",
                                   hint="check the URL; ADD only follows plain GETs")
            with open(dest_file, "wb") as out:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
                    if hasher:
                        hasher.update(chunk)
                    if content_hash is not None:
                        content_hash.update(chunk)
            modified = response.headers.get("Last-Modified")
    except requests.RequestException as exc:
        raise ContextError(f"ADD cannot download {url}: {_reason(exc)}",
                           hint="check the URL and that the server is reachable from this machine") from None
    if checksum and hasher:
        algorithm, expected = parse_checksum(checksum)
        if hasher.hexdigest() != expected:
            raise StepFailed(f"ADD {url}: checksum mismatch: expected {algorithm}:{expected}, "
                             f"got {algorithm}:{hasher.hexdigest()}",
                             hint="the file changed on the server, or --checksum is wrong")
    if recorded is not None and content_hash is not None:
        recorded.append((url, f"sha256:{content_hash.hexdigest()}"))
    return _http_time(modified)


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, e.g. 'Connection refused', without urllib3's object reprs."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return found[-1].strip() if found else exc.__class__.__name__


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None  # a malformed header: the file keeps the time of the download, as BuildKit does


def clone(git: GitRef, dest_dir: str, keep_git_dir: bool, checksum: str | None = None) -> str:
    """Check the ref out into dest_dir (with the `git` CLI); returns the directory ADD copies (the subdir)."""
    if shutil.which("git") is None:
        raise StepFailed(f"ADD {git.remote}: the git command is needed for git sources",
                         hint="install git (apt-get install git)")
    _git(git, "clone", "--quiet", "--no-checkout", "--", git.remote, dest_dir)
    commit = _resolve_ref(git, dest_dir)
    if checksum and not commit.startswith(checksum.lower()):
        raise StepFailed(f"ADD {git.remote}: checksum mismatch: expected commit {checksum}, got {commit}",
                         hint="--checksum for a git source is the commit the ref must point to")
    _git(git, "-C", dest_dir, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit)
    _git(git, "-C", dest_dir, "submodule", "update", "--quiet", "--init", "--recursive")
    if not keep_git_dir:
        shutil.rmtree(os.path.join(dest_dir, ".git"))
    source = os.path.join(dest_dir, git.subdir) if git.subdir else dest_dir
    if not os.path.isdir(source) or os.path.islink(source):
        raise ContextError(f"ADD {git.remote}: subdirectory {git.subdir!r} not found at {git.ref or 'HEAD'}")
    return source


def _resolve_ref(git: GitRef, repo: str) -> str:
    candidates = ["HEAD"] if git.ref is None else [f"refs/remotes/origin/{git.ref}", f"refs/tags/{git.ref}", git.ref]
    for candidate in candidates:
        found = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"],
                               capture_output=True, text=True, timeout=GIT_TIMEOUT)
        if found.returncode == 0:
            return found.stdout.strip()
    raise ContextError(f"ADD {git.remote}: no branch, tag or commit {git.ref!r} in the repository",
                       hint="check the #REF part of the URL")


def _git(git: GitRef, *args: str) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=GIT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"ADD {git.remote}: git {args[0]} timed out after {GIT_TIMEOUT}s") from None
    if done.returncode != 0:
        raise ContextError(f"ADD cannot fetch {git.remote}: git {args[0] if args[0] != '-C' else args[2]} failed",
                           details="\n".join("  | " + line for line in done.stderr.strip().splitlines()[-5:]),
                           hint="check the URL and that the repository is reachable from this machine")
