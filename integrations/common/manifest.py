"""The merge of a distributed build: the images each runner of a CI matrix built for one platform and pushed by
digest, assembled into one image index under the tags (`dockyard manifest create`, as buildx's `imagetools
create`). What every adapter's merge job fills, and the command's arguments: one mapping for all of them.

A runner hands its digest to the merge as Docker's recipe does: an empty file named by the digest's hex (a `:`
is not allowed in an artifact's file name), in a directory the CI platform's artifacts carry to the merge job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import UsageError

from .public import parse_reference
from .supplychain import Signing

_HEX_DIGEST = re.compile(r"^(?:sha256[:-])?([0-9a-f]{64})$")


@dataclass(frozen=True)
class ManifestRequest:
    """One `dockyard manifest create`, as an adapter's merge job asks for it."""

    tags: tuple[str, ...]  # whole references; the index is pushed under each
    sources: tuple[str, ...]  # REPO@DIGEST (or REPO:TAG): an image is one entry, an index gives all of its own
    annotations: tuple[str, ...] = ()  # [index:]KEY=VALUE
    append: bool = False  # merge into the index already at the first tag (same platform: replaced)
    dry_run: bool = False  # print the index, push nothing
    digest_file: Path | None = None
    insecure_registries: tuple[str, ...] = ()
    signing: Signing | None = None  # sign the assembled index (`--sign`, as `dockyard build`)
    extra_args: tuple[str, ...] = ()  # last before the sources, so a flag given here wins over a derived one


def digest_file_name(digest: str) -> str:
    """The name of the file that hands `digest` (sha256:HEX) to the merge job: its hex."""
    match = _HEX_DIGEST.match(digest.strip())
    if match is None:
        raise UsageError(f"{digest!r} is not a sha256 digest", subject="digest")
    return match.group(1)


def write_digest_file(directory: Path, digest: str) -> Path:
    """Records `digest` in `directory` for the merge job (an empty file named by its hex)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / digest_file_name(digest)
    path.touch()
    return path


def digests_in(directory: Path, *, subject: str) -> list[str]:
    """The digests (`sha256:HEX`) the files in `directory` are named by, sorted (the runners finish in any
    order; the index lists its platforms in the order of the sources). A UsageError naming `subject` when there
    is no such directory, no digest in it, or a file that is not named by a digest."""
    if not directory.is_dir():
        raise UsageError(f"no directory {directory}", subject=subject,
                         hint="download the digests every build job uploaded (one empty file per image, named by "
                              "its digest's hex) into it before the merge")
    digests = []
    for path in sorted(directory.iterdir()):
        match = _HEX_DIGEST.match(path.name)
        if match is None or not path.is_file():
            raise UsageError(f"{path.name!r} in {directory} is not named by a digest", subject=subject,
                             hint="the directory holds only the build jobs' digest files (sha256 hex names)")
        digests.append(f"sha256:{match.group(1)}")
    if not digests:
        raise UsageError(f"no digest in {directory}", subject=subject,
                         hint="each build job pushes by digest and uploads its digest; did they all run?")
    return list(dict.fromkeys(digests))


def sources_by_digest(repository: str, digests: Sequence[str]) -> list[str]:
    """REPOSITORY@DIGEST for each digest."""
    return [f"{repository}@{digest}" for digest in digests]


def check_references(references: Sequence[str], *, subject: str) -> None:
    """A UsageError naming `subject` for a reference dockyard cannot read."""
    for reference in references:
        try:
            parse_reference(reference)
        except UsageError as exc:
            raise UsageError(exc.message, subject=subject,
                             hint="REGISTRY/PATH@sha256:DIGEST or REGISTRY/PATH:TAG") from None


def manifest_arguments(request: ManifestRequest, *, tags_subject: str = "input tags",
                       sources_subject: str = "input sources") -> list[str]:
    """The `dockyard manifest create` arguments (after `manifest create`), the sources last; its events go to
    stderr as JSON lines (runner.py reads them, a failure as its `BuildFailed` event). A UsageError naming the
    input for no tag, no source or a reference that is not one."""
    if not request.tags:
        raise UsageError("no tag for the index", subject=tags_subject,
                         hint="the index is what users pull: give it the tags the image goes by")
    if not request.sources:
        raise UsageError("no image to assemble into the index", subject=sources_subject,
                         hint="the images the build jobs pushed by digest, REGISTRY/PATH@sha256:DIGEST")
    check_references(request.tags, subject=tags_subject)
    check_references(request.sources, subject=sources_subject)
    args = ["--progress", "json"]
    args += [word for tag in request.tags for word in ("--tag", tag)]
    args += [word for annotation in request.annotations for word in ("--annotation", annotation)]
    if request.append:
        args.append("--append")
    if request.dry_run:
        args.append("--dry-run")
    if request.digest_file is not None:
        args += ["--digest-file", str(request.digest_file)]
    args += [word for registry in request.insecure_registries for word in ("--insecure-registry", registry)]
    if request.signing is not None:
        if request.dry_run:
            raise UsageError("the index is signed where it is pushed, and this merge pushes nothing",
                             subject="input sign", hint="push the index, or leave sign out")
        args.append(f"--sign={request.signing.argument()}")
    args += request.extra_args
    args += request.sources
    return args
