"""From a parsed Dockerfile to what must be built: stages, their bases, and what the target needs; and the
global ARG scope (the ARGs before the first FROM and the args BuildKit predefines there)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .dockerfile import instructions as ins
from .dockerfile.expand import Expander
from .dockerfile.mounts import mount_from_refs
from .errors import DockerfileError, UsageError
from .image.model import Platform
from .named_contexts import NamedContexts


@dataclass(frozen=True)
class StagePlan:
    """A stage the target needs, and what it is built FROM: an earlier stage, or an image (expanded)."""

    stage: ins.Stage
    base_stage: int | None  # FROM an earlier stage
    base_image: str | None  # FROM an image reference (expanded), or "scratch"
    platform: str | None  # FROM --platform, expanded
    base_context: str | None = None  # FROM a named context (--build-context), by its name
    # The stage's own name is a named context: the stage is that context, its instructions are not run
    # (BuildKit replaces a stage by a context of its name).
    replaced: bool = False


@dataclass(frozen=True)
class BuildPlan:
    """What a build must do: the stages its target needs, in Dockerfile order, and the global ARG scope."""

    dockerfile: ins.Dockerfile
    stages: tuple[StagePlan, ...]  # only the stages the target needs, in Dockerfile order
    target_index: int
    global_args: dict[str, str]  # the global scope: predefined args, then the ARGs before the first FROM

    @property
    def step_count(self) -> int:
        return sum(1 if p.replaced else len(p.stage.instructions) + 1 for p in self.stages)


def host_platform() -> Platform:
    """The platform RUN steps execute on: BuildKit's build platform (BUILDPLATFORM)."""
    return Platform.parse(os.uname().machine or "amd64")


def predefined_args(target: Platform, build: Platform, target_stage: str) -> dict[str, str]:
    """The args BuildKit defines in the global scope before reading any ARG (frontend/dockerfile
    dockerfile2llb defaultArgs). Inside a stage they are visible only after `ARG NAME`."""
    return {
        "BUILDPLATFORM": str(build), "BUILDOS": build.os, "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant or "",
        "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant or "",
        "TARGETSTAGE": target_stage,
    }


def global_arg_values(dockerfile: ins.Dockerfile, build_args: dict[str, str], used: set[str],
                      predefined: dict[str, str] | None = None) -> dict[str, str]:
    """The global scope as BuildKit builds it: predefined args (a --build-arg of the same name replaces the
    value), then each ARG before the first FROM: its --build-arg, else its default expanded with the values
    defined so far. An ARG with neither stays undefined (a predefined one keeps its value)."""
    expander = Expander(escape=dockerfile.escape)
    values: dict[str, str] = {}
    for name, value in (predefined or {}).items():
        if name in build_args:
            used.add(name)
        values[name] = build_args.get(name, value)
    for arg in dockerfile.global_args:
        for definition in arg.args:
            if definition.name in build_args:
                values[definition.name] = build_args[definition.name]
                used.add(definition.name)
            elif definition.default is not None:
                try:
                    values[definition.name] = expander.expand_word(definition.default, values)
                except ValueError as exc:
                    raise DockerfileError(str(exc), location=arg.location) from None
    return values


def make_plan(dockerfile: ins.Dockerfile, target: str | None, build_args: dict[str, str],
              used_args: set[str], platform: Platform | None = None,
              build_platform: Platform | None = None, contexts: NamedContexts | None = None) -> BuildPlan:
    """`platform` is the target platform (--platform; linux/amd64 by default), `build_platform` where RUN
    executes (the host by default): they give TARGETPLATFORM, BUILDPLATFORM and the rest. `contexts` are the
    named contexts, in BuildKit's order: a context named as a stage replaces the stage; FROM an earlier stage
    is that stage; else FROM a context's name is the context; else an image."""
    contexts = contexts or NamedContexts()
    expander = Expander(escape=dockerfile.escape)
    target_index = _target_index(dockerfile, target)
    predefined = predefined_args(platform or Platform(), build_platform or host_platform(),
                                 dockerfile.stages[target_index].name or "")
    global_args = global_arg_values(dockerfile, build_args, used_args, predefined)

    def expand(inst: ins.Instruction, text: str) -> str:
        try:
            return expander.expand_word(text, global_args)
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None

    plans: list[StagePlan] = []
    names: dict[str, int] = {}
    for stage in dockerfile.stages:
        image = expand(stage.base, stage.base.image)
        if not image:
            raise DockerfileError("FROM names no image (did a build arg expand to nothing?)",
                                  location=stage.base.location)
        stage_platform = expand(stage.base, stage.base.platform) if stage.base.platform else None
        for inst in stage.instructions:  # every stage, as BuildKit, not only the ones the target needs
            copy_from = inst.flag("from") if isinstance(inst, ins.Copy) else None
            if copy_from is not None:
                _check_from_is_literal(expander, inst, copy_from)
        own_context = contexts.lookup(stage.name) if stage.name else None
        base_stage = names.get(image.lower())
        context = contexts.lookup(image) if own_context is None and base_stage is None else None
        if own_context is not None:
            plans.append(StagePlan(stage, None, None, stage_platform, base_context=own_context.name, replaced=True))
        elif context is not None:
            plans.append(StagePlan(stage, None, None, stage_platform, base_context=context.name))
        else:
            plans.append(StagePlan(stage, base_stage, None if base_stage is not None else image, stage_platform))
        if stage.name:
            names[stage.name] = stage.index

    needed: set[int] = set()
    pending = [target_index]
    while pending:
        index = pending.pop()
        if index in needed:
            continue
        needed.add(index)
        plan = plans[index]
        if plan.base_stage is not None:
            pending.append(plan.base_stage)
        for inst in () if plan.replaced else plan.stage.instructions:
            for ref in _from_refs(inst):
                if ref.lower() in names and names[ref.lower()] < index:
                    pending.append(names[ref.lower()])
                elif contexts.lookup(ref) is not None:
                    continue  # a named context, read by the step itself
                elif ref.isdigit():
                    if int(ref) >= index:
                        raise DockerfileError(f"--from={ref} must name an earlier stage", location=inst.location)
                    pending.append(int(ref))
                elif ref.lower() in names:
                    raise DockerfileError(f"--from={ref} names this stage or a later one", location=inst.location)
    return BuildPlan(dockerfile, tuple(p for p in plans if p.stage.index in needed), target_index, global_args)


def stage_platforms(plan: BuildPlan, target: Platform) -> dict[int, Platform]:
    """The platform each planned stage is built for, by stage index: its FROM --platform (expanded), else the
    target's; a stage FROM an earlier stage has that stage's (as BuildKit, which ignores a --platform there)."""
    platforms: dict[int, Platform] = {}
    for stage_plan in plan.stages:
        if stage_plan.base_stage is not None and stage_plan.base_stage in platforms:
            platforms[stage_plan.stage.index] = platforms[stage_plan.base_stage]
        elif stage_plan.platform:
            try:
                platforms[stage_plan.stage.index] = Platform.parse(stage_plan.platform)
            except ValueError as exc:
                raise DockerfileError(f"FROM --platform: {exc}", location=stage_plan.stage.base.location,
                                      hint="e.g. FROM --platform=$BUILDPLATFORM or --platform=linux/arm64") from None
        else:
            platforms[stage_plan.stage.index] = target
    return platforms


def run_platforms(plan: BuildPlan, target: Platform) -> frozenset[Platform]:
    """The platforms the build's RUN steps execute for when building `plan` for `target`: those of the planned
    stages that have a RUN (a stage a named context replaces runs nothing). What the emulation check needs
    before any work starts. (A RUN among a base image's ONBUILD triggers is not known before the pull.)"""
    platforms = stage_platforms(plan, target)
    return frozenset(platforms[p.stage.index] for p in plan.stages
                     if not p.replaced and any(isinstance(inst, ins.Run) for inst in p.stage.instructions))


def _from_refs(inst: ins.Instruction) -> list[str]:
    """The stages/images an instruction reads: COPY --from, RUN --mount from=."""
    if isinstance(inst, ins.Copy):
        copy_from = inst.flag("from")
        return [copy_from] if copy_from is not None else []
    return mount_from_refs(inst) if isinstance(inst, ins.Run) else []


def _target_index(dockerfile: ins.Dockerfile, target: str | None) -> int:
    if not target:
        return len(dockerfile.stages) - 1
    chosen = dockerfile.stage_by_name(target)
    if chosen is None:
        known = ", ".join(s.display_name for s in dockerfile.stages if s.name) or "none are named"
        raise UsageError(f"target stage {target!r} not found in {dockerfile.path}", hint=f"named stages: {known}")
    return chosen.index


def _check_from_is_literal(expander: Expander, inst: ins.Instruction, ref: str) -> None:
    """BuildKit resolves --from before any ARG has a value, so it refuses variables (and quotes) there."""
    try:
        literal = expander.expand_word(ref, {}) == ref
    except ValueError:
        literal = False
    if not literal:
        raise DockerfileError(f"variable expansion is not supported for --from ({ref})", location=inst.location,
                              hint="define a stage with `FROM ${ARG} AS name` (global ARGs work in FROM) and "
                                   "copy --from=name")
