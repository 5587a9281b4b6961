"""The action's merge mode, the last job of a distributed build: `sources` (image references) or `merge-digests`
(a directory of the build jobs' digest files) switch the action from building an image to assembling the images
the matrix jobs pushed by digest into one index under the tags (`dockyard manifest create`), the way Docker's
recipe runs `docker buildx imagetools create` in its merge job.

The same action rather than a `run:` step, so the merge uses the dockyard of the action's own version (there is
no setup step that puts one on PATH), derives the same tags from the ref as a build would, and gives the same
outputs (`digest`: the index's) and job summary. Inputs only a build reads are refused here rather than ignored:
the workflow would otherwise look as if it built something."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import UsageError

from ..common.manifest import ManifestRequest, digests_in, sources_by_digest
from ..common.public import parse_reference
from ..common.supplychain import Signing
from .inputs import ActionInputs

# The inputs a build reads and a merge cannot use, by name, with the value each has when not given.
BUILD_ONLY = {"file": "", "build-args": (), "build-contexts": (), "labels": (), "target": "", "no-cache": False,
              "cache-from": (), "cache-to": (), "secrets": (), "secret-envs": (), "secret-files": (), "outputs": (),
              "platforms": (), "registry-mirrors": (), "sbom": "", "provenance": "", "attests": ()}


@dataclass(frozen=True)
class MergeFiles:
    digest: Path  # where dockyard writes the index's digest


def refuse_build_inputs(inputs: ActionInputs) -> None:
    """A UsageError naming the first input that only a build reads when one is set together with the merge."""
    for name, unset in BUILD_ONLY.items():
        if getattr(inputs, name.replace("-", "_")) != unset:
            given = "sources" if inputs.sources else "merge-digests"
            raise UsageError(f"{name} is for a build, and {given} makes this step assemble an index of images "
                             "already built", subject=f"input {name}",
                             hint=f"give {name} to the build jobs (the matrix), and the merge job only tags, "
                                  "images, annotations and sources or merge-digests")


def merge_sources(inputs: ActionInputs) -> list[str]:
    """The images to assemble: the `sources` references, then IMAGE@DIGEST for each digest file in `merge-digests`
    (IMAGE: the first of `images`, the repository the build jobs pushed to)."""
    sources = list(inputs.sources)
    if inputs.merge_digests:
        if not inputs.images:
            raise UsageError("merge-digests names digests, and no repository says whose", subject="input images",
                             hint="give images: the repository the build jobs pushed by digest to "
                                  "(their outputs' name=)")
        repository = parse_reference(inputs.images[0]).name
        sources += sources_by_digest(repository, digests_in(Path(inputs.merge_digests),
                                                            subject="input merge-digests"))
    return list(dict.fromkeys(sources))


def manifest_request(inputs: ActionInputs, *, tags: list[str], files: MergeFiles,
                     sign: Signing | None = None) -> ManifestRequest:
    """The merge the inputs ask for. `push: false` (a pull request) assembles the index without pushing it;
    `sign` signs the index it pushes (the build jobs signed their own images: this is the one users pull)."""
    refuse_build_inputs(inputs)
    return ManifestRequest(tags=tuple(tags), sources=tuple(merge_sources(inputs)), annotations=inputs.annotations,
                           dry_run=not inputs.push, digest_file=files.digest,
                           insecure_registries=inputs.insecure_registries, signing=sign,
                           extra_args=inputs.extra_args)


def metadata(request: ManifestRequest, digest: str, index: dict[str, Any] | None) -> dict[str, Any]:
    """The `metadata` output of a merge: BuildKit's keys for the index, the sources, and each platform's entry
    as the index lists it (when it could be read back)."""
    platforms = []
    for entry in (index or {}).get("manifests", []):
        platform = entry.get("platform") or {}
        name = "/".join(str(part) for part in (platform.get("os"), platform.get("architecture"),
                                               platform.get("variant")) if part)
        platforms.append({"platform": name, "digest": entry.get("digest"), "mediaType": entry.get("mediaType")})
    return {"containerimage.digest": digest, "image.name": ",".join(request.tags), "digest": digest,
            "tags": list(request.tags), "pushed": [] if request.dry_run else list(request.tags),
            "sources": list(request.sources), "platforms": platforms,
            "mediaType": (index or {}).get("mediaType")}


def read_index(text: str) -> dict[str, Any] | None:
    """The index `dockyard manifest inspect --raw` printed, or None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
