"""kaniko's flags → BuildOptions, plus what only the kaniko front end does (its digest files, its notes)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ContextError, UsageError
from ..image.reference import parse_reference
from ..options import (DEFAULT_PLATFORM, BuildOptions, OutputSpec, RegistryCache, parse_duration, parse_key_values,
                       parse_platforms, parse_registry_ca, parse_registry_client_cert, parse_retry_count)
from .context import DEFAULT_CONTEXT, ContextSource
from .flags import KanikoFlags

# Flags that change nothing in dockyard, with the one line that says why (printed when the flag is given).
NO_MEANING = {
    "single-snapshot": "dockyard snapshots each step from its overlay upper directory, never the whole filesystem",
    "snapshot-mode": "dockyard snapshots from the overlay upper directory; there is no full-filesystem scan to tune",
    "use-new-run": "dockyard always runs RUN in its own sandbox and snapshots only what the step changed",
    "cleanup": "dockyard builds in its own workspace, never over its own /, and always removes it afterwards",
    "ignore-path": "dockyard builds in its own workspace, so nothing of the builder's filesystem can reach a layer",
    "ignore-var-run": "dockyard builds in its own workspace, so the builder's /var/run never reaches a layer",
    "skip-unused-stages": "dockyard always builds only the stages the target needs",
    "cache-copy-layers": "dockyard caches every COPY/ADD step by the content it reads",
    "cache-run-layers": "dockyard caches every RUN step",
    "force": "dockyard does not need to run inside a container",
    "kaniko-dir": "dockyard keeps nothing in /kaniko; its scratch space is its own workspace",
    "log-timestamp": "dockyard's plain progress lines carry step timings instead",
    "skip-push-permission-check": "dockyard checks the registry's answers when it pushes",
}
_VERBOSITY = {"panic", "fatal", "error", "warn", "info", "debug", "trace"}


@dataclass(frozen=True)
class RegistryCacheRequest:
    """kaniko's `--cache`, `--cache-repo` and `--no-push-cache`: what `apply_registry_cache` maps onto dockyard's
    registry cache (`--cache-from` / `--cache-to`)."""

    enabled: bool = False
    repo: str | None = None  # kaniko's default: DESTINATION_REPO/cache
    push: bool = True  # False with --no-push-cache: read the cache, never write it


def apply_registry_cache(options: BuildOptions, request: RegistryCacheRequest,
                         destinations: tuple[str, ...]) -> tuple[BuildOptions, list[str]]:
    """The build options for kaniko's registry cache, and the notes to print. As in kaniko, `--cache=true`
    reads and writes REPO:cache (dockyard's cache manifest, every stage's steps) in `--cache-repo`, else in
    the first destination's repository + `/cache`; without `--cache=true` the registry is not used as a cache
    (steps are still cached locally in --cache-dir)."""
    if not request.enabled:
        return options, ([f"--cache-repo {request.repo}: ignored without --cache=true (as in kaniko)"]
                         if request.repo else [])
    repo = request.repo
    if repo is None and destinations:
        repo = f"{parse_reference(destinations[0]).name}/cache"
    if repo is None:
        return options, ["--cache=true without --cache-repo or --destination: steps are cached in the local cache "
                         f"({options.cache_root}) only"]
    cache = RegistryCache.from_cache_repo(repo)
    return replace(options, cache_from=options.cache_from + (cache,),
                   cache_to=options.cache_to + ((cache,) if request.push else ())), []


@dataclass(frozen=True)
class KanikoRun:
    """One `dockyard kaniko` invocation: the build, and what kaniko writes around it."""

    options: BuildOptions
    destinations: tuple[str, ...]
    digest_file: Path | None
    image_name_digest_file: Path | None
    image_name_tag_digest_file: Path | None
    progress: str  # "plain", "json" (--log-format=json) or "quiet" (--verbosity=error and quieter)
    registry_cache: RegistryCacheRequest
    notes: tuple[str, ...]


def context_source(flags: KanikoFlags) -> ContextSource:
    return ContextSource.parse(flags.value("context", DEFAULT_CONTEXT), flags.value("context-sub-path", ""))


def kaniko_run(flags: KanikoFlags, context_dir: Path, environ: dict[str, str], cwd: Path | None = None) -> KanikoRun:
    """The run the flags describe, with the build context already made local (context.materialized)."""
    destinations = tuple(flags.many("destination"))
    push = not flags.flag("no-push")
    if push and not destinations:
        raise UsageError("you must provide --destination, or use --no-push", hint="e.g. --destination "
                         "registry.example.com/team/app:1.0 (repeatable)")
    for name in ("image-name-with-digest-file", "image-name-tag-with-digest-file"):
        if flags.given(name) and not destinations:
            raise UsageError(f"--{name} needs --destination: the file lists the destinations with the digest")
    outputs = []
    if flags.given("tar-path"):
        outputs.append(OutputSpec("docker", flags.value("tar-path")))
    if flags.given("oci-layout-path"):
        outputs.append(OutputSpec("oci", flags.value("oci-layout-path")))
    options = BuildOptions(
        context=context_dir,
        dockerfile=dockerfile_path(flags.value("dockerfile", "Dockerfile"), context_dir, cwd or Path.cwd()),
        tags=destinations,
        build_args=parse_key_values(flags.many("build-arg"), "--build-arg", environ),
        target=flags.value("target"),
        labels=parse_key_values(flags.many("label"), "--label"),
        platforms=custom_platform(flags),
        push=push,
        outputs=tuple(outputs),
        **_registry_options(flags, destinations),
        **_compression(flags),
        reproducible=flags.flag("reproducible"),
        cache_dir=Path(flags.value("cache-dir", "")) if flags.given("cache-dir") else None,
        cache_ttl=parse_duration(flags.value("cache-ttl", ""), "--cache-ttl") if flags.given("cache-ttl") else None,
        environ=environ,
    )
    cache = RegistryCacheRequest(flags.flag("cache"), flags.value("cache-repo"), not flags.flag("no-push-cache"))
    options, cache_notes = apply_registry_cache(options, cache, destinations)
    notes = [f"--{name}: accepted; {why}" for name, why in NO_MEANING.items() if flags.given(name)]
    return KanikoRun(options=options, destinations=destinations,
                     digest_file=_path(flags, "digest-file"),
                     image_name_digest_file=_path(flags, "image-name-with-digest-file"),
                     image_name_tag_digest_file=_path(flags, "image-name-tag-with-digest-file"),
                     progress=_progress(flags), registry_cache=cache, notes=tuple(notes + cache_notes))


def dockerfile_path(text: str, context_dir: Path, cwd: Path) -> Path:
    """kaniko's rule: the path as given (absolute, or relative to the working directory) if it exists, else
    relative to the build context."""
    given = Path(text) if os.path.isabs(text) else cwd / text
    if given.is_file():
        return given
    in_context = context_dir / text
    if in_context.is_file():
        return in_context
    raise ContextError(f"--dockerfile {text}: no such file (looked at {given} and {in_context})",
                       subject=text, hint="give a path relative to the build context, e.g. --dockerfile Dockerfile")


def custom_platform(flags: KanikoFlags) -> tuple[str, ...]:
    """kaniko's --custom-platform: the one platform to build for (default linux/amd64)."""
    if not flags.given("custom-platform"):
        return (DEFAULT_PLATFORM,)
    platforms = parse_platforms([flags.value("custom-platform", "")], "--custom-platform")
    if len(platforms) > 1:
        raise UsageError(f"--custom-platform names one platform, not {len(platforms)} ({', '.join(platforms)})",
                         hint="kaniko builds one platform per run; for an image index of several, use "
                              "`dockyard build --platform " + ",".join(platforms) + "`")
    return platforms


def _path(flags: KanikoFlags, name: str) -> Path | None:
    return Path(flags.value(name, "")) if flags.given(name) else None


def _registry_options(flags: KanikoFlags, destinations: tuple[str, ...]) -> dict[str, Any]:
    from ..image.reference import parse_reference

    # kaniko's --insecure and --skip-tls-verify apply to the push destinations' registries.
    push_registries = sorted({parse_reference(d).registry for d in destinations})
    for pull_flag, per_registry in (("insecure-pull", "--insecure-registry"),
                                    ("skip-tls-verify-pull", "--skip-tls-verify-registry")):
        if flags.flag(pull_flag):
            raise UsageError(f"--{pull_flag} (every registry images are pulled from) is not supported: dockyard "
                             "turns TLS off only for registries it is told the names of",
                             hint=f"name the registry of the base image: {per_registry} HOST[:PORT] "
                                  "(registries on 127.0.0.0/8 and localhost may use plain HTTP anyway)")
    insecure = list(flags.many("insecure-registry")) + (push_registries if flags.flag("insecure") else [])
    skip_verify = list(flags.many("skip-tls-verify-registry")) + (
        push_registries if flags.flag("skip-tls-verify") else [])

    def retries(name: str) -> int | None:
        return parse_retry_count(flags.value(name, "")) if flags.given(name) else None

    return dict(
        insecure_registries=tuple(insecure),
        skip_tls_verify_registries=tuple(skip_verify),
        registry_cas=tuple(parse_registry_ca(c) for c in flags.many("registry-certificate")),
        registry_client_certs=tuple(parse_registry_client_cert(c) for c in flags.many("registry-client-cert")),
        registry_mirrors=tuple(flags.many("registry-mirror")),
        registry_maps=tuple(flags.many("registry-map")),
        skip_default_registry_fallback=flags.flag("skip-default-registry-fallback"),
        push_retry=retries("push-retry"),
        image_download_retry=retries("image-download-retry"),
    )


def _compression(flags: KanikoFlags) -> dict[str, Any]:
    kind = flags.value("compression", "gzip")
    if kind not in ("gzip", "zstd"):
        raise UsageError(f"invalid --compression {kind!r}: kaniko's values are gzip and zstd")
    level_text = flags.value("compression-level", "-1")
    try:
        level = int(level_text)
    except ValueError:
        raise UsageError(f"invalid --compression-level {level_text!r}: expected a whole number") from None
    # kaniko applies a level only when it is above 0: its default -1, and 0, mean "the library's default".
    return dict(compression=kind, compression_level=level if level > 0 else None)


def _progress(flags: KanikoFlags) -> str:
    verbosity = flags.value("verbosity", "info")
    if verbosity not in _VERBOSITY:
        raise UsageError(f"invalid --verbosity {verbosity!r}: use one of {', '.join(sorted(_VERBOSITY))}")
    log_format = flags.value("log-format", "color")
    if log_format not in ("text", "color", "json"):
        raise UsageError(f"invalid --log-format {log_format!r}: use text, color or json")
    if verbosity in ("panic", "fatal", "error"):
        return "quiet"
    return "json" if log_format == "json" else "plain"

