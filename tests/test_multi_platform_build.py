"""One build of several target platforms (core/builder.py, session.py): a plan per target with its TARGET* args,
steps numbered across the targets, and a step whose cache key is the same for every target (a
`FROM --platform=$BUILDPLATFORM` stage that reads no TARGET* arg) run once per build and reused by the other
targets, with or without --no-cache, while a target's own steps run for each.

No container runs here: a recording runner stands in for the isolation runner. It runs each RUN's shell command
on the host with the step's root as the working directory (the Dockerfiles below use relative paths only) and
logs the command and environment, so a test counts how often each RUN ran and what it saw. The builds run in a
child process each: entering a build session enters a private mount namespace, never done in the test runner.
The real runners, a registry and the index written and read back are tests/e2e/test_multi_platform_cli.py's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BUILD = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    from dockyard.builder import build
    from dockyard.events import Events
    from dockyard.isolation.runner import RunResult
    from dockyard.options import BuildOptions

    context, cache, log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    platforms, no_cache, build_args = tuple(sys.argv[4].split(",")), sys.argv[5] == "1", json.loads(sys.argv[6])

    class RecordingRunner:
        name = "recording"

        def run(self, spec, on_line):
            env = dict(spec.env)
            with log.open("a") as f:
                f.write(json.dumps({"command": spec.argv[-1], "env": env}) + "\\n")
            done = subprocess.run(["sh", "-c", spec.argv[-1]], cwd=spec.rootfs,
                                  env={**env, "PATH": os.environ["PATH"]}, capture_output=True, text=True)
            for line in done.stdout.splitlines():
                on_line(line)
            return RunResult(exit_code=done.returncode, tail=tuple(done.stderr.splitlines()[-5:]))

    events = []
    options = BuildOptions(context=context, cache_dir=cache, work_dir=cache / "work", platforms=platforms,
                           no_cache=no_cache, isolation="namespaces", build_args=tuple(build_args.items()),
                           environ={})
    result = build(options, events=Events(lambda e: events.append(e.to_json())), runner=RecordingRunner())
    print(json.dumps({
        "digest": result.digest,
        "images": [{"platform": str(i.platform), "digest": i.digest, "layers": [l.digest for l in i.layers]}
                   for i in result.images],
        "steps": [[s.step, s.instruction, s.cached, s.cache_source] for s in result.steps],
        "events": events,
        "warnings": list(result.warnings),
    }, default=str))
""")

CROSS = """\
FROM --platform=$BUILDPLATFORM scratch AS build
ARG TARGETARCH
RUN echo "building on $TARGETARCH" >/dev/null
RUN mkdir -p out/amd64 out/arm64 && echo amd64 > out/amd64/arch && echo arm64 > out/arm64/arch
FROM scratch
ARG TARGETARCH
COPY --from=build /out/$TARGETARCH /
"""


def run_build(tmp_path: Path, dockerfile: str, platforms: str, *, no_cache: bool = False,
              cache: Path | None = None, build_args: dict[str, str] | None = None) -> tuple[dict, list[dict]]:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    log = tmp_path / "runs.jsonl"
    log.write_text("")
    cache = cache or tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", BUILD, str(context), str(cache), str(log), platforms,
                           "1" if no_cache else "0", json.dumps(build_args or {})],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    return json.loads(done.stdout.splitlines()[-1]), runs


@pytest.fixture(autouse=True)
def root_only():
    import os

    if os.geteuid() != 0:
        pytest.skip("the namespaces isolation mode needs root")


def test_target_args_reach_each_targets_run(tmp_path):
    dockerfile = ("FROM scratch\nARG TARGETPLATFORM TARGETARCH TARGETVARIANT BUILDPLATFORM\n"
                  "RUN echo $TARGETARCH > arch\n")
    result, runs = run_build(tmp_path, dockerfile, "linux/amd64,linux/arm/v7")
    assert [(r["env"]["TARGETPLATFORM"], r["env"]["TARGETARCH"], r["env"]["TARGETVARIANT"]) for r in runs] == [
        ("linux/amd64", "amd64", ""), ("linux/arm/v7", "arm", "v7")]
    assert {r["env"]["BUILDPLATFORM"] for r in runs} == {"linux/amd64"}
    assert [i["platform"] for i in result["images"]] == ["linux/amd64", "linux/arm/v7"]
    # Each target's image has its own layer: the RUN wrote a different file for each.
    assert result["images"][0]["layers"] != result["images"][1]["layers"]


@pytest.mark.parametrize("no_cache", [False, True], ids=["cache", "no-cache"])
def test_a_buildplatform_stage_runs_once_for_every_target(tmp_path, no_cache):
    result, runs = run_build(tmp_path, CROSS, "linux/amd64,linux/arm64", no_cache=no_cache)
    commands = [r["command"] for r in runs]
    # `ARG TARGETARCH` in the build stage: its first RUN sees each target's value, so it runs per target ...
    assert sum("building on" in c for c in commands) == 2
    # ... and so does the step after it (its parent key differs): a stage that reads a TARGET* arg is per target.
    assert sum("mkdir" in c for c in commands) == 2
    shared = CROSS.replace('ARG TARGETARCH\nRUN echo "building on $TARGETARCH" >/dev/null\n', "", 1)
    result, runs = run_build(tmp_path, shared, "linux/amd64,linux/arm64", no_cache=no_cache,
                             cache=tmp_path / "cache-shared")
    assert [r["command"].startswith("mkdir") for r in runs] == [True]  # once, for both targets
    amd64, arm64 = result["images"]
    assert (amd64["platform"], arm64["platform"]) == ("linux/amd64", "linux/arm64")
    assert amd64["layers"] != arm64["layers"]  # each copied its own /out/$TARGETARCH
    # The second target's RUN is reported as taken from the first target's, not as run nor as a cache hit.
    mkdirs = [s for s in result["steps"] if s[1].startswith("RUN mkdir")]
    assert [(s[2], s[3]) for s in mkdirs] == [(False, None),
                                               (True, "this build, for linux/amd64")]


def test_a_stage_of_the_target_platform_runs_per_target_even_without_target_args(tmp_path):
    dockerfile = "FROM scratch AS tools\nRUN echo x > x\nFROM scratch\nCOPY --from=tools /x /x\n"
    _, runs = run_build(tmp_path, dockerfile, "linux/amd64,linux/arm64", no_cache=True)
    assert len(runs) == 2  # its base key has the target's platform: an arm64 root is not an amd64 one


def test_steps_are_numbered_across_targets_and_show_their_platform(tmp_path):
    result, _ = run_build(tmp_path, CROSS, "linux/amd64,linux/arm64")
    started = [e for e in result["events"] if e["event"] == "step_started"]
    per_platform = len(started) // 2
    assert [e["step"] for e in started] == list(range(1, 2 * per_platform + 1))
    assert {e["total"] for e in started} == {2 * per_platform}
    assert [e["platform"] for e in started] == ["linux/amd64"] * per_platform + ["linux/arm64"] * per_platform
    stages = [e for e in result["events"] if e["event"] == "stage_started"]
    assert [e["platform"] for e in stages] == ["linux/amd64", "linux/amd64", "linux/arm64", "linux/arm64"]
    build_started = next(e for e in result["events"] if e["event"] == "build_started")
    assert build_started["steps"] == 2 * per_platform


def test_one_platform_is_built_and_reported_as_before(tmp_path):
    result, runs = run_build(tmp_path, CROSS, "linux/arm64")
    assert len(runs) == 2
    assert [i["platform"] for i in result["images"]] == ["linux/arm64"]
    assert result["digest"] == result["images"][0]["digest"]  # a plain image manifest, no index
    assert not any("platform" in e for e in result["events"] if e["event"] in ("step_started", "stage_started"))


def test_a_build_arg_is_unused_only_when_no_targets_stages_consume_it(tmp_path):
    dockerfile = ("FROM scratch AS base-amd64\nARG FOR_AMD64\nFROM scratch AS base-arm64\nARG FOR_ARM64\n"
                  "FROM base-${TARGETARCH}\n")
    args = {"FOR_AMD64": "1", "FOR_ARM64": "2", "FOR_NONE": "3"}
    both, _ = run_build(tmp_path, dockerfile, "linux/amd64,linux/arm64", build_args=args)
    assert both["warnings"] == ["build arguments were not consumed by any ARG: FOR_NONE"]
    one, _ = run_build(tmp_path, dockerfile, "linux/arm64", build_args=args, cache=tmp_path / "cache-one")
    assert one["warnings"] == ["build arguments were not consumed by any ARG: FOR_AMD64, FOR_NONE"]
