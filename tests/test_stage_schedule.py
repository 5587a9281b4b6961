"""Scheduling a plan's stages (core/stage/schedule.py): which stages wait for which, the steps' numbers, and
running them on worker threads: a stage starts once the stages it reads are done, a failure stops the rest and
is the one raised, and the caller's context variables reach the stages. The stages here are Python callables
that record what they saw (no build runs: the real builds are tests/e2e/test_parallel_stages.py's)."""

from __future__ import annotations

import contextvars
import threading

import pytest

from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.plan import make_plan
from dockyard.stage.schedule import StageStopped, first_step_numbers, run_stages, stage_dependencies

DOCKERFILE = """\
FROM busybox AS tools
RUN make tools
FROM busybox AS data
RUN fetch
FROM tools AS build
COPY --from=data /d /d
RUN --mount=type=bind,from=1,target=/x true
FROM busybox AS unused
FROM busybox
COPY --from=build /out /out
"""


def plan():
    return make_plan(parse_dockerfile(DOCKERFILE, "Dockerfile"), None, {}, set())


def test_dependencies_follow_from_copy_from_and_mounts_and_numbers_follow_the_dockerfile():
    deps = stage_dependencies(plan())
    assert deps == {0: frozenset(), 1: frozenset(), 2: frozenset({0, 1}), 4: frozenset({2})}  # 3 is not needed
    assert first_step_numbers(plan(), 0) == {0: 1, 1: 3, 2: 5, 4: 8}
    assert first_step_numbers(plan(), 10) == {0: 11, 1: 13, 2: 15, 4: 18}


def test_a_stage_starts_once_what_it_reads_is_done_and_independent_ones_overlap():
    deps = stage_dependencies(plan())
    both_running = threading.Barrier(2, timeout=60)  # stages 0 and 1 each wait for the other: they must overlap
    finished: list[int] = []
    seen: dict[int, list[int]] = {}

    def run(index: int) -> None:
        seen[index] = list(finished)
        if index in (0, 1):
            both_running.wait()
        finished.append(index)

    run_stages([0, 1, 2, 4], deps, run, jobs=2, stop=threading.Event())
    assert sorted(seen[2]) == [0, 1] and seen[4][-1] == 2 and finished[-1] == 4


def test_one_job_runs_the_stages_in_order_on_this_thread():
    order: list[tuple[int, str]] = []
    run_stages([0, 1, 2, 4], stage_dependencies(plan()), lambda i: order.append((i, threading.current_thread().name)),
               jobs=1, stop=threading.Event())
    assert order == [(i, threading.current_thread().name) for i in (0, 1, 2, 4)]


def test_a_failure_stops_the_other_stages_and_is_the_error_raised():
    stop, stopped_running = threading.Event(), []
    started: list[int] = []
    failing_may_fail = threading.Event()

    def run(index: int) -> None:
        started.append(index)
        if index == 0:  # a long stage: stops when told (as a stage's next step does)
            failing_may_fail.set()
            assert stop.wait(60)
            raise StageStopped("tools")
        if index == 1:
            assert failing_may_fail.wait(60)
            raise ValueError("data failed")

    with pytest.raises(ValueError, match="data failed"):
        run_stages([0, 1, 2, 4], stage_dependencies(plan()), run, jobs=2, stop=stop,
                   stop_running=lambda: stopped_running.append(True))
    assert stop.is_set() and stopped_running == [True]
    assert sorted(started) == [0, 1]  # the stages that read them never started


def test_the_stages_see_the_callers_context_variables():
    recorded: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("recorded", default=None)
    found: list[int] = []
    recorded.set(found)

    def run(index: int) -> None:
        into = recorded.get()
        assert into is not None
        into.append(index)

    run_stages([0, 1, 2, 4], stage_dependencies(plan()), run, jobs=3, stop=threading.Event())
    assert sorted(found) == [0, 1, 2, 4]
