"""A whole build: the Dockerfile read and planned, then a build session runs the stages and writes the outputs.
`build()` is what the public API wraps."""

from __future__ import annotations

import datetime as dt
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bases import parse_platform
from .build_args import unused_build_args
from .context import check_context
from .display import display_path
from .dockerfile import instructions as ins
from .dockerfile.parser import load_dockerfile
from .events import NULL_EVENTS, BuildFinished, BuildStarted, Events, Message
from .fetch import record_downloads
from .image.model import Image, Platform
from .image.reference import parse_reference
from .isolation import Runner
from .named_contexts import NamedContexts
from .options import EPOCH_ARG, BuildOptions, check_compression, parse_platforms
from .outputs import check_outputs, finalize
from .plan import BuildPlan, make_plan, run_platforms
from .result import BuildResult
from .scan.model import report_to_json
from .session import BuildSession, BuiltPlatform, StepNumbers

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .attest.compose import PlatformAttestations
    from .attest.prefetch import LayerPrefetch
    from .attest.compose import Cataloger
    from .attest.provenance import GitSource
    from .scan.model import ScanReport
    from .registry.client import RegistryClient




def build_args_with_epoch(options: BuildOptions) -> dict[str, str]:
    """The build args, with the environment's SOURCE_DATE_EPOCH added as buildx and buildctl add it (so an
    `ARG SOURCE_DATE_EPOCH` sees it); a --build-arg of that name wins."""
    build_args = dict(options.build_args)
    if options.environ.get(EPOCH_ARG):
        build_args.setdefault(EPOCH_ARG, options.environ[EPOCH_ARG])
    return build_args


def directive_notes(dockerfile: ins.Dockerfile) -> list[str]:
    """What dockyard says about parser directives it accepts but does not act on."""
    notes = []
    for name, value in dockerfile.directives:
        if name == "syntax":
            notes.append(f"dockyard uses its built-in Dockerfile frontend; the syntax directive ({value}) is not "
                         "fetched")
        elif name == "check":
            notes.append(f"the check directive ({value}) applies to the build checks, which run with "
                         "`dockyard build --check` or `dockyard lint`")
    return notes




@dataclass(frozen=True)
class PlannedBuild:
    """What reading the Dockerfile and the options gave: a plan per target platform (in --platform order: each
    with that target's TARGET* args), the checked tags, and the build args (`used_args` fills with the names the
    ARGs consume as the stages run, over every platform)."""

    plans: tuple[BuildPlan, ...]
    platforms: tuple[Platform, ...]
    tags: tuple[str, ...]
    build_args: dict[str, str]
    used_args: set[str]

    @property
    def run_platforms(self) -> frozenset[Platform]:
        """The platforms the build's RUN steps execute for, over every target."""
        return frozenset().union(*(run_platforms(plan, target) for plan, target in zip(self.plans, self.platforms)))


def plan_build(options: BuildOptions, contexts: NamedContexts, events: Events) -> PlannedBuild:
    """Checks the options, reads the Dockerfile and plans the build for each target platform; says the build
    started, with notes on the Dockerfile's directives."""
    # Through the API too: each platform checked, a platform given twice built once (the CLI did the same).
    given = (options.platforms,) if isinstance(options.platforms, str) else options.platforms
    platforms = tuple(parse_platform(text) for text in parse_platforms(given))
    check_context(options.context)
    check_compression(options.compression, options.compression_level)
    tags = check_tags(options, platforms)
    dockerfile_path = options.dockerfile_path
    dockerfile = load_dockerfile(dockerfile_path, display_path(dockerfile_path))
    build_args = build_args_with_epoch(options)
    used_args: set[str] = set()
    plans = tuple(make_plan(dockerfile, options.target, build_args, used_args, platform=platform, contexts=contexts)
                  for platform in platforms)
    events.emit(BuildStarted(dockerfile=dockerfile.path, context=str(options.context),
                             stages=sum(len(plan.stages) for plan in plans),
                             steps=sum(plan.step_count for plan in plans)))
    for note in directive_notes(dockerfile):
        events.emit(Message(level="info", text=note))
    return PlannedBuild(plans, platforms, tags, build_args, used_args)


def check_tags(options: BuildOptions, platforms: tuple[Platform, ...]) -> tuple[str, ...]:
    """The --tag's, each a valid reference; the outputs able to hold the images of `platforms` (a push has
    somewhere to go; a docker tarball holds one platform)."""
    for tag in options.tags:
        parse_reference(tag)  # raises UsageError naming the bad tag
    check_outputs(options, platforms)
    return tuple(options.tags)


def build(options: BuildOptions, *, events: Events = NULL_EVENTS, runner: Runner | None = None,
          client: RegistryClient | None = None) -> BuildResult:
    """Build an image as `options` say (one per --platform, written as one image index when there are several).
    Raises a DockyardError subclass (with a location) on failure."""
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    session = BuildSession(options, events=events, runner=runner, client=client)  # checks the registry options
    planned = plan_build(options, session.contexts, events)
    session.run_platforms = planned.run_platforms  # checked (emulation) when the session is entered
    with session, ExitStack() as recording:
        # With provenance, each ADD download's digest is recorded (a material).
        downloads = recording.enter_context(record_downloads()) if options.attestations else []
        prefetch = start_sbom_prefetch(session, recording)
        git = start_git_lookup(options, recording)
        built = build_platforms(session, planned)
        if prefetch is not None:
            prefetch.finish()
        session.finish_steps()
        images = [finalize(b.image, options) for b in built]
        if session.early_uploads is not None:  # sent while the scan and the attestations are made
            for image in images:
                session.early_uploads.add_config(image)
        cataloger = scan_cataloger(session, images, prefetch)
        scans = scan(session, planned, built, images, cataloger)
        attestations = attest(session, planned, built, images, downloads, started_at, prefetch, git, cataloger)
        written = session.outputs.write(images, planned.tags, session.finish_early_uploads(), attestations)
        for attested in written.attestations:
            events.info(f"attestations for {attested.platform} ({attested.summary}): {attested.image.digest}")
        # --cache-to: every platform's steps (the same step of several targets is exported once).
        session.outputs.export_caches(built[0].plan, [entry for b in built for entry in b.cache_entries],
                                      written.pushed)
        # As BuildKit: a build arg is unused when no ARG of any platform's stages consumed it.
        unused = unused_build_args(planned.build_args, planned.used_args)
        warnings = []
        if unused:
            warnings.append(f"build arguments were not consumed by any ARG: {', '.join(unused)}")
            events.warning(warnings[-1])
        # The images as written (Docker media types when asked); `image` is the first platform's.
        result = BuildResult(digest=written.digest, image=written.images[0], images=written.images,
                             index=written.index, tags=planned.tags,
                             steps=tuple(step for b in built for step in b.steps), pushed=tuple(written.pushed),
                             duration=time.monotonic() - started, warnings=tuple(warnings),
                             signatures=written.signatures,
                             attestations=tuple(a.metadata() for a in written.attestations),
                             scans=tuple(report_to_json(r) for r in scans) if scans else (),
                             started=started_at.timestamp())
        session.outputs.write_result_files(result)
        events.emit(BuildFinished(digest=written.digest, duration=result.duration))
        return result


def start_sbom_prefetch(session: BuildSession, stack: ExitStack) -> LayerPrefetch | None:
    """With --sbom: base layers are read for the SBOM while the steps run (attest/prefetch.py)."""
    from .attest.spec import SBOM, find

    if find(session.options.attestations, SBOM) is None and not session.options.sbom_outputs \
            and session.options.scan is None:
        return None
    from .attest.prefetch import LayerPrefetch

    prefetch = LayerPrefetch(session.options.cache_root, session.store)
    stack.callback(prefetch.cancel)
    session.bases.on_pulled = prefetch.add
    session.on_final_layer = prefetch.built
    session.layer_cache.observer = prefetch.observer
    return prefetch


def start_git_lookup(options: BuildOptions, stack: ExitStack) -> Future[GitSource | None] | None:
    """With provenance: the context's git checkout (four runs of git) looked up on a thread while the steps run."""
    from .attest.spec import PROVENANCE, find

    if find(options.attestations, PROVENANCE) is None:
        return None
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from .attest.records import git_source

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provenance-git")
    stack.callback(pool.shutdown, wait=False)
    return pool.submit(git_source, Path(options.context))


def attest(session: BuildSession, planned: PlannedBuild, built: list[BuiltPlatform], images: list[Image],
           downloads: list[tuple[str, str]], started: dt.datetime,
           prefetched: LayerPrefetch | None = None,
           git: Future[GitSource | None] | None = None,
           cataloger: Cataloger | None = None) -> list[PlatformAttestations]:
    """The attestations --sbom/--provenance/--attest ask for, one manifest per image (none asked: none)."""
    options = session.options
    if not options.attestations and not options.sbom_outputs:
        return []
    from .attest.build import attest_build
    from .attest.spec import SBOM, find

    if find(options.attestations, SBOM) is not None or options.sbom_outputs:
        # The SBOM reads every layer: a registry cache hit's blob is fetched now rather than mounted.
        session.cached_layers.fetch([layer for image in images for layer in image.layers])
    from .attest.compose import declares_scan

    declared = frozenset(p.stage.display_name for b in built for p in b.plan.stages
                         if declares_scan(p.stage.instructions))
    return attest_build(options, images=images, stages=[b.stages for b in built],
                        names=planned.tags or options.push_targets, build_args=planned.build_args,
                        bases=session.bases.resolved, downloads=downloads, started=started,
                        store=session.store, events=session.events, declared=declared, prefetched=prefetched,
                        git=git, **({"cataloger": cataloger} if cataloger is not None else {}))


def scan_cataloger(session: BuildSession, images: list[Image], prefetched: LayerPrefetch | None) -> Cataloger | None:
    """With --scan: the catalog maker the scan and the SBOM share (each image is catalogued once)."""
    if session.options.scan is None:
        return None
    from .attest.build import cached_cataloger

    # The catalog reads every layer: a registry cache hit's blob is fetched now rather than mounted.
    session.cached_layers.fetch([layer for image in images for layer in image.layers])
    return cached_cataloger(session.options.cache_root, prefetched)


def scan(session: BuildSession, planned: PlannedBuild, built: list[BuiltPlatform], images: list[Image],
         cataloger: Cataloger | None) -> list[ScanReport]:
    """--scan: each image's vulnerability report; the gate (--fail-on-vuln) is checked here, before anything is
    pushed or written (a failing build still writes the reports and the metadata file's dockyard.scan)."""
    options = session.options
    if options.scan is None or cataloger is None:
        return []
    from .scan.build import scan_images, write_failed_metadata
    from .scan.scanner import check_gate
    from .errors import VulnerabilitiesFound

    reports = scan_images(options, images=images, steps=[b.steps for b in built],
                          names=planned.tags or options.push_targets, blobs=session.store, cataloger=cataloger,
                          events=session.events)
    try:
        check_gate(reports, options.scan.fail_on)
    except VulnerabilitiesFound:
        write_failed_metadata(options.metadata_file, reports)
        raise
    return reports


def build_platforms(session: BuildSession, planned: PlannedBuild) -> list[BuiltPlatform]:
    """Each target's stages, in --platform order. With several targets the steps are numbered across them all,
    and a step one target built is reused by the others (session.build_platform)."""
    if len(planned.plans) == 1:
        return [session.build_platform(planned.plans[0], planned.platforms[0], planned.build_args,
                                       planned.used_args)]
    total = sum(plan.step_count for plan in planned.plans)
    built: list[BuiltPlatform] = []
    before = 0
    for plan, platform in zip(planned.plans, planned.platforms):
        built.append(session.build_platform(plan, platform, planned.build_args, planned.used_args,
                                            steps=StepNumbers(before, total)))
        before += plan.step_count
    return built
