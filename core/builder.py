"""A whole build: the Dockerfile read and planned, then a build session runs the stages and writes the outputs.
`build()` is what the public API wraps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bases import parse_platform
from .build_args import unused_build_args
from .context import check_context
from .display import display_path
from .dockerfile import instructions as ins
from .dockerfile.parser import load_dockerfile
from .errors import UsageError
from .events import NULL_EVENTS, BuildFinished, BuildStarted, Events, Message
from .image.model import Platform
from .image.reference import parse_reference
from .isolation import Runner
from .named_contexts import NamedContexts
from .options import EPOCH_ARG, BuildOptions, check_compression
from .outputs import check_outputs, finalize
from .plan import BuildPlan, make_plan
from .result import BuildResult
from .session import BuildSession

if TYPE_CHECKING:
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
    """What reading the Dockerfile and the options gave: the plan for the target platform, the checked tags, and
    the build args (`used_args` fills with the names the ARGs consume as the stages run)."""

    plan: BuildPlan
    platform: Platform
    tags: tuple[str, ...]
    build_args: dict[str, str]
    used_args: set[str]


def plan_build(options: BuildOptions, contexts: NamedContexts, events: Events) -> PlannedBuild:
    """Checks the options, reads the Dockerfile and plans the build; says the build started, with notes on the
    Dockerfile's directives."""
    platform = parse_platform(options.platform)
    check_context(options.context)
    check_compression(options.compression, options.compression_level)
    tags = check_tags(options)
    dockerfile_path = options.dockerfile_path
    dockerfile = load_dockerfile(dockerfile_path, display_path(dockerfile_path))
    build_args = build_args_with_epoch(options)
    used_args: set[str] = set()
    plan = make_plan(dockerfile, options.target, build_args, used_args, platform=platform, contexts=contexts)
    events.emit(BuildStarted(dockerfile=dockerfile.path, context=str(options.context), stages=len(plan.stages),
                             steps=plan.step_count))
    for note in directive_notes(dockerfile):
        events.emit(Message(level="info", text=note))
    return PlannedBuild(plan, platform, tags, build_args, used_args)


def run_platforms(plan: BuildPlan, target: Platform) -> frozenset[Platform]:
    """The platforms of the stages that have a RUN: a stage's FROM --platform, else the target's; a stage FROM
    an earlier stage has that stage's."""
    platforms: list[Platform] = []
    for stage in plan.stages:
        if stage.base_stage is not None:
            platform = platforms[[p.stage.index for p in plan.stages].index(stage.base_stage)]
        else:
            platform = parse_platform(stage.platform) if stage.platform else target
        platforms.append(platform)
    return frozenset(platform for stage, platform in zip(plan.stages, platforms)
                     if not stage.replaced and any(isinstance(i, ins.Run) for i in stage.stage.instructions))


def check_tags(options: BuildOptions) -> tuple[str, ...]:
    """The --tag's, each a valid reference; --push needs one."""
    for tag in options.tags:
        parse_reference(tag)  # raises UsageError naming the bad tag
    check_outputs(options, (options.platform,))
    return tuple(options.tags)


def build(options: BuildOptions, *, events: Events = NULL_EVENTS, runner: Runner | None = None,
          client: RegistryClient | None = None) -> BuildResult:
    """Build an image as `options` say. Raises a DockyardError subclass (with a location) on failure."""
    started = time.monotonic()
    session = BuildSession(options, events=events, runner=runner, client=client)  # checks the registry options
    planned = plan_build(options, session.contexts, events)
    session.run_platforms = run_platforms(planned.plan, planned.platform)
    with session:
        built = session.build_platform(planned.plan, planned.platform, planned.build_args, planned.used_args)
        session.finish_steps()
        image = finalize(built.image, options)
        written = session.outputs.write([image], planned.tags, session.finish_early_uploads())
        digest, pushed = written.digest, written.pushed
        session.outputs.export_caches(built.plan, list(built.cache_entries), pushed)
        unused = unused_build_args(planned.build_args, planned.used_args)
        warnings = []
        if unused:
            warnings.append(f"build arguments were not consumed by any ARG: {', '.join(unused)}")
            events.warning(warnings[-1])
        result = BuildResult(digest=digest, image=written.images[0], tags=planned.tags, steps=built.steps,
                             pushed=tuple(pushed), duration=time.monotonic() - started, warnings=tuple(warnings),
                             images=written.images, index=written.index)
        session.outputs.write_result_files(result)
        events.emit(BuildFinished(digest=digest, duration=result.duration))
        return result
