"""Which stages of a plan can run at the same time, and running them so: each stage starts as soon as every
stage it reads (its FROM, COPY --from, RUN --mount from=) is built, up to `jobs` stages at once, as BuildKit
solves independent vertices concurrently. What a stage produces does not depend on when it ran, so the images
are the same as a build of one stage at a time; only the order of the progress lines differs.

A failure in one stage stops the others: no new stage starts, a running stage stops before its next step, and
the RUN steps running now are killed (`stop_running`); the first failure is the build's error."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from ..dockerfile import instructions as ins
from ..dockerfile.mounts import mount_from_refs
from ..plan import BuildPlan

# Without --jobs: as many stages at once as there are cores, at least two (a stage often waits on the network
# or the disk), at most four (each running stage holds a root mounted and a step's files in flight).
MIN_DEFAULT_JOBS, MAX_DEFAULT_JOBS = 2, 4


class StageStopped(Exception):
    """A stage gave up before its next step because another stage failed (or the build was interrupted)."""


def default_jobs() -> int:
    return max(MIN_DEFAULT_JOBS, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def instruction_refs(inst: ins.Instruction) -> list[str]:
    """The stages or images an instruction reads besides its own root: COPY --from, RUN --mount from=."""
    if isinstance(inst, ins.Copy):
        ref = inst.flag("from")
        return [ref] if ref is not None else []
    return mount_from_refs(inst) if isinstance(inst, ins.Run) else []


def stage_dependencies(plan: BuildPlan) -> dict[int, frozenset[int]]:
    """For each planned stage (by index), the planned stages it reads. A reference that could name a stage is
    taken as one (a named context of the same name only makes the stage wait needlessly: never wrongly)."""
    planned = {p.stage.index for p in plan.stages}
    names = {stage.name.lower(): stage.index for stage in plan.dockerfile.stages if stage.name}
    dependencies: dict[int, frozenset[int]] = {}
    for stage_plan in plan.stages:
        index = stage_plan.stage.index
        needs: set[int] = set()
        if stage_plan.base_stage is not None:
            needs.add(stage_plan.base_stage)
        for inst in () if stage_plan.replaced else stage_plan.stage.instructions:
            for ref in instruction_refs(inst):
                named = names.get(ref.lower())
                if named is not None and named < index:
                    needs.add(named)
                elif ref.isdigit() and int(ref) < index:
                    needs.add(int(ref))
        dependencies[index] = frozenset(needs & planned)
    return dependencies


def first_step_numbers(plan: BuildPlan, before: int) -> dict[int, int]:
    """The number of each stage's first step (its FROM): the steps are numbered in Dockerfile order, after the
    `before` steps of the platforms built before this one, whatever order the stages run in."""
    numbers: dict[int, int] = {}
    number = before + 1
    for stage_plan in plan.stages:
        numbers[stage_plan.stage.index] = number
        number += 1 if stage_plan.replaced else len(stage_plan.stage.instructions) + 1
    return numbers


def run_stages(order: Sequence[int], dependencies: Mapping[int, frozenset[int]], run: Callable[[int], None], *,
               jobs: int, stop: threading.Event, stop_running: Callable[[], None] = lambda: None) -> None:
    """Runs `run(index)` for every stage of `order` (Dockerfile order), each once its dependencies ran, up to
    `jobs` at once on worker threads (one job: in order, on this thread). On the first failure `stop` is set (a
    stage checks it before each step) and `stop_running` kills what runs now; once every started stage has
    ended, that failure is raised. An interruption of this thread (a signal) stops the stages the same way."""
    if jobs <= 1 or len(order) <= 1:
        for index in order:
            run(index)
        return
    position = {index: n for n, index in enumerate(order)}
    pending = list(order)
    done: set[int] = set()
    running: dict[Future[None], int] = {}
    failure: BaseException | None = None

    def halt() -> None:
        if not stop.is_set():
            stop.set()
            stop_running()

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stage")
    try:
        while pending or running:
            if not stop.is_set():
                for index in [i for i in pending if dependencies.get(i, frozenset()) <= done]:
                    if len(running) >= jobs:
                        break
                    pending.remove(index)
                    # In a copy of this thread's context: what the build records through context variables
                    # (the downloads provenance lists, the ownership ledger) sees the stages' steps too.
                    running[pool.submit(contextvars.copy_context().run, run, index)] = index
            if not running:
                break  # stopped, or (never for a plan) a stage waiting on one that is not planned
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: position[running[f]]):
                index = running.pop(future)
                error = future.exception()
                if error is None:
                    done.add(index)
                elif failure is None and not isinstance(error, StageStopped):
                    failure = error
                    halt()
    except BaseException:  # this thread interrupted (Ctrl-C, a stop signal): the stages end before we leave
        halt()
        wait(running)
        raise
    finally:
        pool.shutdown(wait=True)
    if failure is not None:
        raise failure
    if pending:  # only a stop without a failure (never for a plan): say so rather than build half the stages
        raise StageStopped(f"stages {sorted(pending)} did not run")
