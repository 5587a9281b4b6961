"""A step's layer is written while the next RUN runs (stage/layer_writing.py): each step is still reported once,
with its own layer and duration, the cache still records every step, and a failure is reported after the step
before it finished."""

from __future__ import annotations

import json

from tests.e2e.helpers import dockyard, write_context

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY data /data
RUN echo one > /one
RUN sleep 1 && echo two > /two
ENV DONE=1
"""


def _events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _build(context, cache, *extra):
    return dockyard("build", "--progress", "json", "--build-arg", f"BASE={extra[0]}", *extra[1:], str(context),
                    env={"XDG_CACHE_HOME": str(cache)})


def test_steps_are_reported_once_with_their_layer_and_their_own_duration(busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "data": "some data\n"})
    meta_file = tmp_path / "meta.json"
    result = _build(context, tmp_path / "cache", busybox_base, "--metadata-file", str(meta_file))
    assert result.returncode == 0, result.stderr
    events = _events(result.stderr)
    finished = {e["step"]: e for e in events if e["event"] == "step_finished"}
    started = [e["step"] for e in events if e["event"] == "step_started"]
    assert sorted(finished) == started == [1, 2, 3, 4, 5]  # FROM, COPY, RUN, RUN, ENV
    assert len([e for e in events if e["event"] == "step_finished"]) == 5
    meta = json.loads(meta_file.read_text())
    layers = [layer["digest"] for layer in meta["layers"]]
    for step in (2, 3, 4):  # COPY, RUN, RUN: each its own layer, in order, on top of the base's
        assert finished[step]["layer_digest"] == meta["steps"][step - 1]["layer"]
    assert layers[-3:] == [finished[2]["layer_digest"], finished[3]["layer_digest"], finished[4]["layer_digest"]]
    # `RUN echo one` was written while `RUN sleep 1` ran, and was reported after it: its duration is its own.
    assert finished[3]["duration"] < 0.9 <= finished[4]["duration"]
    # Every step was recorded in the cache: the same build again runs nothing.
    again = _build(context, tmp_path / "cache", busybox_base, "--metadata-file", str(meta_file))
    assert again.returncode == 0, again.stderr
    assert [s["cached"] for s in json.loads(meta_file.read_text())["steps"] if s["layer"]] == [True] * 3


def test_a_failing_run_is_reported_after_the_step_before_it(busybox_base, tmp_path):
    failing = DOCKERFILE.replace("RUN sleep 1 && echo two > /two", "RUN exit 7")
    context = write_context(tmp_path / "ctx", {"Dockerfile": failing, "data": "some data\n"})
    result = _build(context, tmp_path / "cache", busybox_base)
    assert result.returncode == 5
    assert "Dockerfile:5: RUN exited with 7" in result.stderr
    finished = [(e["step"], e["failed"], e["layer_digest"] is not None) for e in _events(result.stderr)
                if e["event"] == "step_finished"]
    assert finished[-2:] == [(3, False, True), (4, True, False)]
