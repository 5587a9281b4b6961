"""kaniko's `--context` and `--context-sub-path` as a local directory.

kaniko fetched contexts from buckets and URLs itself; dockyard reads local directories, local tar.gz files
(unpacked into a scratch directory) and git repositories (cloned with the git CLI, as ADD does). Buckets and
plain URLs are refused: a CI job can download them first and pass the directory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import workdirs
from ..errors import ContextError, StepFailed, UsageError

# kaniko's default --context: the directory its image mounts the workspace on.
DEFAULT_CONTEXT = "/workspace/"
_REMOTE_SCHEMES = {"s3": "an S3 bucket", "gs": "a Google Cloud Storage bucket", "https": "an HTTPS URL",
                   "http": "an HTTP URL", "az": "an Azure blob", "azure": "an Azure blob"}


@dataclass(frozen=True)
class ContextSource:
    """kaniko's `--context` (a directory, a tar.gz file or a git repository) and its `--context-sub-path`."""

    kind: str  # "dir", "tar" or "git"
    location: str
    sub_path: str = ""

    @classmethod
    def parse(cls, text: str, sub_path: str = "") -> ContextSource:
        scheme, sep, rest = text.partition("://")
        if not sep:
            return cls("dir", text, sub_path)
        if scheme == "dir":
            return cls("dir", rest, sub_path)
        if scheme == "tar":
            if rest == "stdin":
                raise UsageError("--context tar://stdin is not supported",
                                 hint="write the archive to a file and pass --context tar:///path/to/context.tar.gz")
            return cls("tar", rest, sub_path)
        if scheme == "git":
            return cls("git", rest, sub_path)
        what = _REMOTE_SCHEMES.get(scheme, f"a {scheme}:// location")
        raise UsageError(f"--context {text}: a build context in {what} is not supported",
                         hint="download or unpack it in an earlier step and pass the directory: --context dir://PATH")


@contextlib.contextmanager
def materialized(source: ContextSource, scratch: Path | None = None) -> Iterator[Path]:
    """The context directory (with the sub-path applied); scratch copies are removed afterwards."""
    if source.kind == "dir":
        yield _sub_dir(Path(source.location), source)
        return
    parent = scratch or Path(os.environ.get("TMPDIR") or "/var/tmp")
    parent.mkdir(parents=True, exist_ok=True)
    # Locked like a build's work directory: if the build is killed, the next build's sweep removes it.
    with workdirs.locked(parent, prefix="dockyard-kaniko-context-") as work:
        if source.kind == "tar":
            _unpack(Path(source.location), work)
            yield _sub_dir(work, source)
        else:
            yield _sub_dir(_clone(source.location, work), source)


def _sub_dir(root: Path, source: ContextSource) -> Path:
    root = root.absolute()
    if not root.is_dir():
        raise ContextError(f"--context {source.location}: no such directory", subject=str(root))
    if not source.sub_path:
        return root
    path = Path(os.path.normpath(root / source.sub_path))
    if path != root and root not in path.parents:
        raise UsageError(f"--context-sub-path {source.sub_path}: it leaves the build context")
    if not path.is_dir():
        raise ContextError(f"--context-sub-path {source.sub_path}: no such directory in the context",
                           subject=str(path))
    return path


def _unpack(archive: Path, dest: Path) -> None:
    # ADD's archive extraction: every path (and link target) resolves inside dest, so `..`, absolute names and
    # links out of it stay in the scratch directory. (tarfile's "data" filter would do it too, but Debian 12's
    # Python 3.11.2 predates it.)
    from ..copy import extract_archive

    if not archive.is_file():
        raise ContextError(f"--context tar://{archive}: no such file", subject=str(archive))
    dest.mkdir(parents=True, exist_ok=True)
    try:
        extract_archive(str(archive), str(dest), "/")
    except (StepFailed, OSError) as exc:
        message = exc.message if isinstance(exc, StepFailed) else str(exc)
        raise ContextError(f"--context tar://{archive}: cannot unpack: {message}", subject=str(archive),
                           hint="kaniko's tar contexts are .tar or .tar.gz files of the context directory") from None


def _clone(location: str, work: Path) -> Path:
    """kaniko's git context: `git://HOST/PATH.git[#REF[#COMMIT]]`, fetched over HTTPS as kaniko does."""
    from ..fetch import GitRef, clone

    remote, _, fragment = location.partition("#")
    ref, _, commit = fragment.partition("#")
    ref = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    return Path(clone(GitRef("https://" + remote, commit or ref or None, ""), str(work / "repo"), keep_git_dir=False))
