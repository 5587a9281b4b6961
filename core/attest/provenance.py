"""SLSA provenance predicates as BuildKit writes them (solver/llbsolver/provenance: predicate.go, types/types.go):
v0.2 by default (`https://slsa.dev/provenance/v0.2`), v1 with `version=v1` (`https://slsa.dev/provenance/v1`,
BuildKit's ConvertSLSA02ToSLSA1 layout).

What a dockyard build records: the builder id (`builder-id=`, e.g. the CI run's URL), the invocation (the
Dockerfile's path as entry point and its sha256 as the config source's digest, the target, the platform; build
args and labels in max mode only; the ids of --secret and --ssh in max mode, never a secret's value), the
materials (base images as `pkg:docker/...` package URLs with the digest they were resolved to, the context's git
commit when the context is a git checkout, ADD URLs with their checksums), and the build's start and finish
(SOURCE_DATE_EPOCH's when it is set: the predicate is then reproducible)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from ..image.model import Platform
from ..sbom.document import timestamp
from ..version import __version__
from .statement import SLSA_V02_PREDICATE, SLSA_V1_PREDICATE, image_purl

BUILD_TYPE_V02 = "https://mobyproject.org/buildkit@v1"
BUILD_TYPE_V1 = "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
BUILDKIT_METADATA = "https://mobyproject.org/buildkit@v1#metadata"
BUILDKIT_HERMETIC = "https://mobyproject.org/buildkit@v1#hermetic"
BUILDKIT_COMPLETENESS = "https://mobyproject.org/buildkit@v1#completeness"
BUILDKIT_REPRODUCIBLE = "https://mobyproject.org/buildkit@v1#reproducible"
FRONTEND = "dockerfile.v0"
_INVOCATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://slsa.dev/provenance/dockyard")


@dataclass(frozen=True)
class BaseImage:
    """A registry image the build pulled (FROM, COPY --from, RUN --mount from=): its reference as written,
    the platform and the manifest digest it was resolved to."""

    ref: str
    platform: Platform
    digest: str


@dataclass(frozen=True)
class GitSource:
    """The context's git checkout: its remote URL (or file:// path) and HEAD's commit."""

    url: str
    commit: str


@dataclass(frozen=True)
class Download:
    """An ADD URL and the digest of what was fetched (`algorithm:hex`; None when a cached step fetched nothing
    and gave no --checksum)."""

    url: str
    digest: str | None


@dataclass(frozen=True)
class BuildRecord:
    """What a build's provenance says, for one platform."""

    platform: Platform
    builder_platform: str
    dockerfile_name: str  # relative to the context when it is inside it, as buildx's `filename`
    dockerfile: bytes
    target: str | None
    build_args: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    secret_ids: tuple[str, ...]
    ssh_ids: tuple[str, ...]
    bases: tuple[BaseImage, ...]
    git: GitSource | None
    downloads: tuple[Download, ...]
    started: Any  # datetime
    finished: Any
    reproducible: bool
    builder_id: str = ""

    def invocation_id(self) -> str:
        """Random for a normal build; derived from the inputs for a reproducible one (so its predicate is too)."""
        if not self.reproducible:
            return str(uuid.uuid4())
        import hashlib

        inputs = "|".join([str(self.platform), hashlib.sha256(self.dockerfile).hexdigest(), self.target or "",
                           repr(self.build_args), repr(self.labels), repr(self.bases), repr(self.git),
                           repr(self.downloads), timestamp(self.started)])
        return str(uuid.uuid5(_INVOCATION_NAMESPACE, inputs))


def materials(record: BuildRecord) -> list[dict[str, Any]]:
    """BuildKit's order: images, git sources, HTTP sources."""
    found: list[dict[str, Any]] = []
    for base in record.bases:
        algorithm, _, hex_digest = base.digest.partition(":")
        found.append({"uri": image_purl(base.ref, base.platform), "digest": {algorithm: hex_digest}})
    if record.git is not None:
        found.append({"uri": record.git.url, "digest": {"sha1": record.git.commit}})
    for download in record.downloads:
        entry: dict[str, Any] = {"uri": download.url}
        if download.digest:
            algorithm, _, hex_digest = download.digest.partition(":")
            entry["digest"] = {algorithm: hex_digest}
        found.append(entry)
    unique: dict[str, dict[str, Any]] = {}
    for entry in found:
        unique.setdefault(f"{entry['uri']}|{entry.get('digest')}", entry)
    return list(unique.values())


def parameters(record: BuildRecord, mode: str) -> dict[str, Any]:
    """The frontend's request: in min mode without build args, labels, secret and ssh ids (as BuildKit)."""
    args: dict[str, str] = {}
    if mode == "max":
        args.update({f"build-arg:{k}": v for k, v in record.build_args})
        args.update({f"label:{k}": v for k, v in record.labels})
    # BuildKit filters its `platform` frontend option out as host-specific; dockyard records the target
    # platform this provenance is for, which the invocation otherwise does not name.
    args["platform"] = str(record.platform)
    if record.target:
        args["target"] = record.target
    params: dict[str, Any] = {"frontend": FRONTEND, "args": dict(sorted(args.items()))}
    if mode == "max":
        if record.secret_ids:
            params["secrets"] = [{"id": s} for s in record.secret_ids]
        if record.ssh_ids:
            params["ssh"] = [{"id": s} for s in record.ssh_ids]
    params["locals"] = [{"name": "context"}, {"name": "dockerfile"}]
    return params


def _config_source(record: BuildRecord) -> dict[str, Any]:
    import hashlib

    source: dict[str, Any] = {}
    if record.git is not None:
        source["uri"] = record.git.url
    source["digest"] = {"sha256": hashlib.sha256(record.dockerfile).hexdigest()}
    return source


def _buildkit_metadata(record: BuildRecord, mode: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if record.git is not None:
        meta["vcs"] = {"revision": record.git.commit, "source": record.git.url}
    if mode == "max":
        # As BuildKit's max mode: the Dockerfile itself, base64 (Go's []byte in JSON).
        meta["source"] = {"infos": [{"filename": record.dockerfile_name, "language": "Dockerfile",
                                     "data": base64.b64encode(record.dockerfile).decode()}]}
    return meta


def _complete_materials(record: BuildRecord) -> bool:
    # The local context is a material no digest names (BuildKit: incomplete whenever a local source is used).
    return False


def predicate_v02(record: BuildRecord, mode: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "buildInvocationID": record.invocation_id(),
        "buildStartedOn": timestamp(record.started),
        "buildFinishedOn": timestamp(record.finished),
        "completeness": {"parameters": mode == "max", "environment": True,
                         "materials": _complete_materials(record)},
        "reproducible": record.reproducible,
    }
    buildkit = _buildkit_metadata(record, mode)
    if buildkit:
        metadata[BUILDKIT_METADATA] = buildkit
    config_source = dict(_config_source(record))
    config_source["entryPoint"] = record.dockerfile_name
    return {
        "builder": {"id": record.builder_id},
        "buildType": BUILD_TYPE_V02,
        "materials": materials(record),
        "invocation": {
            "configSource": config_source,
            "parameters": parameters(record, mode),
            # BuildKit's environment is the builder's platform; dockyard adds its own version.
            "environment": {"platform": record.builder_platform, "dockyard.version": __version__},
        },
        "metadata": metadata,
    }


def predicate_v1(record: BuildRecord, mode: str) -> dict[str, Any]:
    config_source = dict(_config_source(record))
    config_source["path"] = record.dockerfile_name
    metadata: dict[str, Any] = {
        "invocationID": record.invocation_id(),
        "startedOn": timestamp(record.started),
        "finishedOn": timestamp(record.finished),
    }
    buildkit = _buildkit_metadata(record, mode)
    if buildkit:
        metadata[BUILDKIT_METADATA] = buildkit
    metadata[BUILDKIT_COMPLETENESS] = {"request": mode == "max",
                                       "resolvedDependencies": _complete_materials(record)}
    metadata[BUILDKIT_REPRODUCIBLE] = record.reproducible
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE_V1,
            "externalParameters": {"configSource": config_source, "request": parameters(record, mode)},
            "internalParameters": {"builderPlatform": record.builder_platform},
            "resolvedDependencies": materials(record),
        },
        "runDetails": {
            "builder": {"id": record.builder_id, "version": {"dockyard": __version__}},
            "metadata": metadata,
        },
    }


def provenance(record: BuildRecord, *, mode: str = "min", version: str = "v0.2") -> tuple[str, dict[str, Any]]:
    """(predicate type, predicate) of `record` in SLSA `version` and BuildKit's `mode`."""
    if version == "v1":
        return SLSA_V1_PREDICATE, predicate_v1(record, mode)
    return SLSA_V02_PREDICATE, predicate_v02(record, mode)
