"""The build request: what every adapter fills from its platform's inputs, and the `dockyard build` arguments it
makes. One mapping, so every adapter passes an input to dockyard the same way."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import UsageError

from .cache import cache_from, cache_to, local_cache_from, local_cache_to
from .levels import DEFAULT_LINT_LEVEL
from .platforms import check_platforms
from .public import OutputSpec
from .scan import ScanRequest
from .supplychain import Signing, attest_values, check_pushes, provenance_value, sbom_value


@dataclass(frozen=True)
class Report:
    """A findings report dockyard writes (`--report FORMAT=FILE`): the findings, and a build's failure at its
    Dockerfile line."""

    format: str  # text, json, sarif, github, gitlab or jenkins
    path: Path


@dataclass(frozen=True)
class BuildRequest:
    """One `dockyard build`, as an adapter asks for it. Values are as dockyard's options take them (KEY=VALUE,
    type=registry,ref=REF, id=ID,src=FILE ...)."""

    context: str = "."
    dockerfile: str = ""
    tags: tuple[str, ...] = ()  # whole references
    labels: tuple[str, ...] = ()
    build_args: tuple[str, ...] = ()  # KEY=VALUE, or a bare KEY that takes the environment's value
    build_contexts: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    target: str = ""
    push: bool = False
    no_cache: bool = False
    cache: str = ""  # a registry cache read, and written when the build pushes (`cache_from`/`cache_to` besides)
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    # A directory the CI system keeps between jobs (a GitLab `cache:` path, a Jenkins workspace directory): read
    # and written as a local cache (type=local, mode=max), whether or not the build pushes.
    cache_dir: str = ""
    platforms: tuple[str, ...] = ()  # the adapter's platforms input (items may be comma lists); several: an index
    outputs: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()  # --secret values
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    lint: str = DEFAULT_LINT_LEVEL  # the check level that fails the build (`none`: checks never do)
    reports: tuple[Report, ...] = ()
    metadata_file: Path | None = None
    digest_file: Path | None = None
    # The supply chain (supplychain.py): attestations as buildx takes them, the CI run's URL as provenance's
    # builder id, and how to sign what is pushed.
    sbom: str = ""  # true, false or attributes; "" for none
    provenance: str = ""  # true, false or attributes (mode=max,version=v1); "" for none
    attests: tuple[str, ...] = ()  # type=sbom|provenance,...
    builder_id: str = ""
    signing: Signing | None = None
    scan: ScanRequest | None = None  # scan.py: `--scan`, its gate and its reports; None for no scan
    extra_args: tuple[str, ...] = ()  # last before the context, so a flag given here wins over a derived one


def repeated(flag: str, values: Sequence[str]) -> list[str]:
    """`flag VALUE` for each value, in order."""
    return [word for value in values for word in (flag, value)]


def output_arguments(outputs: tuple[str, ...], *, subject: str = "input outputs") -> list[str]:
    """`--output` for each output, each checked as dockyard reads it: a type it cannot write fails here."""
    args: list[str] = []
    for output in outputs:
        try:
            OutputSpec.parse(output)  # registry, oci,dest=DIR, docker,dest=FILE.tar (image,push=true)
        except UsageError as exc:
            raise UsageError(exc.message, subject=subject,
                             hint="dockyard writes type=registry, type=image,name=REPO,push-by-digest=true,push=true, "
                                  "type=oci,dest=DIR and type=docker,dest=FILE.tar (there is no docker daemon to load "
                                  "into)") from None
        args += ["--output", output]
    return args


def output_attributes(output: str) -> dict[str, str]:
    """An `--output` value's KEY=VALUE attributes as buildx reads them (a quoted CSV field keeps its commas)."""
    attributes = {}
    for field in next(csv.reader([output]), []):
        key, _, value = field.partition("=")
        attributes[key.strip().lower()] = value.strip()
    return attributes


def pushes(outputs: Sequence[str]) -> bool:
    """Whether an output pushes to a registry (type=registry, or type=image with push=true)."""
    for output in outputs:
        attributes = output_attributes(output)
        if attributes.get("type") == "registry" or attributes.get("push", "").lower() == "true":
            return True
    return False


def pushes_by_digest(outputs: Sequence[str]) -> bool:
    """Whether an output pushes the image by digest alone (buildx's `push-by-digest=true`): the image of one
    runner of a distributed build, which gets its tags on the index that assembles them."""
    return any(output_attributes(output).get("push-by-digest", "").lower() == "true" for output in outputs)


def push_by_digest_output(repository: str) -> str:
    """The `--output` that pushes to `repository` by digest, without a tag (buildx's spelling)."""
    return f"type=image,name={repository},push-by-digest=true,push=true"


def supply_chain_arguments(request: BuildRequest) -> list[str]:
    """`--sbom=`, `--provenance=` (with the builder id), `--attest=` and `--sign=`, each in its `=` form (buildx's
    --sbom and --provenance take an optional value). A UsageError naming the input for a value that is not one,
    or a signature for a build that pushes nothing."""
    args = []
    if sbom := sbom_value(request.sbom):
        args.append(f"--sbom={sbom}")
    if provenance := provenance_value(request.provenance, builder_id=request.builder_id):
        args.append(f"--provenance={provenance}")
    args += [f"--attest={value}" for value in attest_values(request.attests, builder_id=request.builder_id)]
    check_pushes(request.signing, request.push or pushes(request.outputs))
    if request.signing is not None:
        args.append(f"--sign={request.signing.argument()}")
    return args


def build_arguments(request: BuildRequest) -> list[str]:
    """The `dockyard build` arguments (after `build`), the context last. The events go to stderr as JSON lines,
    which runner.py reads. Raises UsageError for what dockyard cannot do (an invalid platform, an output type it
    cannot write), naming the input."""
    args = ["--progress", "json"]
    if request.metadata_file is not None:
        args += ["--metadata-file", str(request.metadata_file)]
    if request.digest_file is not None:
        args += ["--digest-file", str(request.digest_file)]
    # `lint` is the level that fails the build; every finding is in the reports whatever the level.
    args += ["--check", "--fail-on", request.lint]
    for report in request.reports:
        args += ["--report", f"{report.format}={report.path}"]
    if request.dockerfile:
        args += ["--file", request.dockerfile]
    args += repeated("--tag", request.tags) + repeated("--label", request.labels)
    args += repeated("--build-arg", request.build_args) + repeated("--build-context", request.build_contexts)
    args += repeated("--annotation", request.annotations)
    if request.target:
        args += ["--target", request.target]
    cache_sources = list(request.cache_from)
    cache_destinations = list(request.cache_to)
    if request.cache:
        cache_sources.insert(0, cache_from(request.cache))
        # A build that does not push writes nothing to the registry, its cache included.
        if request.push or pushes(request.outputs):
            cache_destinations.insert(0, cache_to(request.cache))
    if request.cache_dir:
        cache_sources.append(local_cache_from(request.cache_dir))
        cache_destinations.append(local_cache_to(request.cache_dir))
    args += repeated("--cache-from", cache_sources) + repeated("--cache-to", cache_destinations)
    if request.push:
        args.append("--push")
    if request.no_cache:
        args.append("--no-cache")
    platforms = check_platforms(request.platforms)
    if platforms:
        args += ["--platform", ",".join(platforms)]
    args += output_arguments(request.outputs)
    args += repeated("--insecure-registry", request.insecure_registries)
    args += repeated("--registry-mirror", request.registry_mirrors) + repeated("--secret", request.secrets)
    args += supply_chain_arguments(request)
    if request.scan is not None:
        args += request.scan.arguments()
    args += request.extra_args
    args.append(request.context)
    return args
