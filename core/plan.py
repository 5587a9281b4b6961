"""From a parsed Dockerfile to what must be built: stages, their bases, and what the target needs."""

from __future__ import annotations

from dataclasses import dataclass

from .dockerfile import instructions as ins
from .dockerfile.expand import Expander
from .errors import DockerfileError, UsageError


@dataclass(frozen=True)
class StagePlan:
    stage: ins.Stage
    base_stage: int | None  # FROM an earlier stage
    base_image: str | None  # FROM an image reference (expanded), or "scratch"
    platform: str | None  # FROM --platform, expanded


@dataclass(frozen=True)
class BuildPlan:
    dockerfile: ins.Dockerfile
    stages: tuple[StagePlan, ...]  # only the stages the target needs, in Dockerfile order
    target_index: int
    global_args: dict[str, str]

    @property
    def step_count(self) -> int:
        return sum(len(p.stage.instructions) + 1 for p in self.stages)


def global_arg_values(dockerfile: ins.Dockerfile, build_args: dict[str, str], used: set[str]) -> dict[str, str]:
    expander = Expander(escape=dockerfile.escape)
    values: dict[str, str] = {}
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
              used_args: set[str]) -> BuildPlan:
    expander = Expander(escape=dockerfile.escape)
    global_args = global_arg_values(dockerfile, build_args, used_args)

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
        platform = expand(stage.base, stage.base.platform) if stage.base.platform else None
        base_stage = names.get(image.lower())
        plans.append(StagePlan(stage, base_stage, None if base_stage is not None else image, platform))
        if stage.name:
            names[stage.name] = stage.index

    if target:
        chosen = dockerfile.stage_by_name(target)
        if chosen is None:
            known = ", ".join(s.display_name for s in dockerfile.stages if s.name) or "none are named"
            raise UsageError(f"target stage {target!r} not found in {dockerfile.path}",
                             hint=f"named stages: {known}")
        target_index = chosen.index
    else:
        target_index = len(dockerfile.stages) - 1

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
        for inst in plan.stage.instructions:
            ref = inst.flag("from") if isinstance(inst, ins.Copy) else None
            if ref is None:
                continue
            ref = expand(inst, ref)
            if ref.lower() in names and names[ref.lower()] < index:
                pending.append(names[ref.lower()])
            elif ref.isdigit():
                if int(ref) >= index:
                    raise DockerfileError(f"--from={ref} must name an earlier stage", location=inst.location)
                pending.append(int(ref))
            elif ref.lower() in names:
                raise DockerfileError(f"--from={ref} names this stage or a later one", location=inst.location)
    return BuildPlan(dockerfile, tuple(p for p in plans if p.stage.index in needed), target_index, global_args)
