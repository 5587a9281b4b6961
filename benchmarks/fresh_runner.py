"""The CI case: a warm build on a fresh runner, whose only cache is the registry cache of the last pipeline.

    .venv/bin/python benchmarks/fresh_runner.py [--runs 3] [--quick] [--json results.json]

Starts Debian's docker-registry on loopback and pushes the Debian python3 base to it (as compare_buildah.py), then
per run and tool, with the tools alternating which goes first:

* cold: a build of workloads/fresh-runner (a lock file, a RUN creating 20,000 small files [4,000 with --quick],
  the sources, a RUN building them) on a fresh state filesystem, pushed, exporting its cache to the registry;
* one source file changes;
* warm: the same build on another fresh state filesystem (nothing local: a new runner), importing the cache the
  cold build exported (and exporting it again, as a pipeline does).

dockyard: `--cache-from/--cache-to type=registry,ref=...,mode=max`; buildah: `bud --layers --cache-from REPO
--cache-to REPO` (its cache is a repository of layer images). Every run has cache and image repositories of its
own. Prints per tool the median cold and warm times and warm / cold, and dockyard / buildah for both; the
issue's goals: the warm build never slower than the cold one, and dockyard / buildah <= 0.3 warm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.compare_buildah import (BuildahRunner, DockyardRunner, Measurement, make_state,  # noqa: E402
                                        measure, remove_state)

WORKLOAD = REPO_ROOT / "benchmarks" / "workloads" / "fresh-runner"
TOOLS = ("dockyard", "buildah")
SOURCE_FILES = 200
CHANGED = "src/f0042.txt"
WARM_TARGET = 0.3  # dockyard / buildah, warm


def make_context(dest: Path) -> Path:
    """The workload's context: the Dockerfile, a lock file and SOURCE_FILES small source files."""
    (dest / "src").mkdir(parents=True)
    (dest / "Dockerfile").write_text((WORKLOAD / "Dockerfile").read_text())
    (dest / "requirements.txt").write_text("".join(f"package-{n}==1.{n}\n" for n in range(40)))
    for index in range(SOURCE_FILES):
        (dest / "src" / f"f{index:04d}.txt").write_text(f"source file {index}\n" * (1 + index % 50))
    return dest


def edit(context: Path, text: str) -> None:
    """One source file gets `text` as its last line (a developer's one-line edit)."""
    path = context / CHANGED
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.startswith("edit ")) + f"edit {text}\n")


def dockyard_build(runner: DockyardRunner, context: Path, tag: str, cache: str,
                   build_args: dict[str, str], warm: bool, metadata: Path) -> Measurement:
    env = {**os.environ, "XDG_CACHE_HOME": str(runner.state / "cache"),
           "HOME": str(runner.state / "home")}
    command = [str(runner.script), "build", "--push", "-q", "-t", tag, "-f", str(context / "Dockerfile"),
               "--work-dir", str(runner.state / "work"), "--cache-to", f"type=registry,ref={cache},mode=max",
               "--metadata-file", str(metadata)]
    if warm:
        command += ["--cache-from", f"type=registry,ref={cache}"]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    return measure([command + [str(context)]], env, runner.state)


def buildah_build(runner: BuildahRunner, context: Path, tag: str, cache: str,
                  build_args: dict[str, str], warm: bool) -> Measurement:
    policy = str(runner.env.policy)
    repo = cache.rsplit(":", 1)[0]  # buildah's cache is a repository: one image per cached layer
    bud = runner.env.cmd("bud", "--isolation", "chroot", "--layers", "--tls-verify=false",
                         "--signature-policy", policy, "-f", str(context / "Dockerfile"), "-t", tag,
                         "--cache-to", repo)
    if warm:
        bud += ["--cache-from", repo]
    for key, value in build_args.items():
        bud += ["--build-arg", f"{key}={value}"]
    push = runner.env.cmd("push", "--tls-verify=false", "--signature-policy", policy, tag, f"docker://{tag}")
    return measure([bud + [str(context)], push], runner.env.env, runner.state)


def run_benchmark(root: Path, registry_host: str, base: str, dockyard: Path, runs: int,
                  files: tuple[int, int], tools: tuple[str, ...] = TOOLS) -> dict[str, dict[str, list[Measurement]]]:
    context = make_context(root / "context")
    build_args = {"BASE": base, "DIRS": str(files[0]), "FILES": str(files[1])}
    results: dict[str, dict[str, list[Measurement]]] = {t: {"cold": [], "warm": []} for t in TOOLS}
    for run in range(runs):
        order = tools if run % 2 == 0 else tuple(reversed(tools))
        for tool in order:
            cache = f"{registry_host}/fresh/{tool}-cache-{run}:cache"
            for phase in ("cold", "warm"):
                edit(context, f"{run} {phase}")
                state = make_state(root / f"state-{tool}-{run}-{phase}")
                tag = f"{registry_host}/fresh/{tool}-{run}-{phase}:latest"
                try:
                    if tool == "dockyard":
                        metadata = root / f"metadata-{run}-{phase}.json"
                        result = dockyard_build(DockyardRunner(state, dockyard), context, tag, cache, build_args,
                                                warm=phase == "warm", metadata=metadata)
                    else:
                        result = buildah_build(BuildahRunner(state, registry_host), context, tag, cache,
                                               build_args, warm=phase == "warm")
                finally:
                    remove_state(state)
                results[tool][phase].append(result)
                status = f"FAILED: {result.error}" if result.error else \
                    f"{result.seconds:.2f} s, peak {result.peak_rss_mb:.0f} MB"
                print(f"  run {run + 1} {tool:>8} {phase}: {status}", flush=True)
                if tool == "dockyard" and not result.error:
                    print(f"    steps: {step_times(metadata)}", flush=True)
    return results


def step_times(metadata: Path) -> str:
    """Where a dockyard build's time went: each filesystem step's duration, `C` for a cache hit. A step's
    duration includes unpacking the layers under it when it is the first to need the root."""
    steps = json.loads(metadata.read_text())["steps"]
    return ", ".join(f"{s['instruction'].split()[0]}{' C' if s['cached'] else ''} {s['duration']:.2f}"
                     for s in steps if s["instruction"].split()[0] in ("RUN", "COPY"))


def median(runs: list[Measurement]) -> float | None:
    ok = [r.seconds for r in runs if not r.error]
    return statistics.median(ok) if ok else None


def print_table(results: dict[str, dict[str, list[Measurement]]], runs: int,
                tools: tuple[str, ...] = TOOLS) -> None:
    def fmt(value: float | None, unit: str = " s") -> str:
        return "failed" if value is None else f"{value:.2f}{unit}"

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    print(f"\nfresh runner + registry cache, one source file changed: medians of {runs} run(s), build + push")
    print(f"{'':>10} {'cold':>9} {'warm':>9} {'warm/cold':>10}")
    for tool in tools:
        cold, warm = median(results[tool]["cold"]), median(results[tool]["warm"])
        print(f"{tool:>10} {fmt(cold):>9} {fmt(warm):>9} {fmt(div(warm, cold), ''):>10}")
    for phase in ("cold", "warm") if tools == TOOLS else ():
        r = div(median(results["dockyard"][phase]), median(results["buildah"][phase]))
        goal = f" (goal <= {WARM_TARGET})" if phase == "warm" else ""
        print(f"dockyard / buildah, {phase}: {fmt(r, '')}{goal}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold + warm pairs per tool (default 3)")
    parser.add_argument("--quick", action="store_true", help="4,000 dependency files instead of 20,000")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this JSON file")
    parser.add_argument("--source", type=Path, default=REPO_ROOT,
                        help="the dockyard sources to measure (default: this checkout), e.g. an older revision's "
                             "`git archive` unpacked")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, of: dockyard, buildah")
    args = parser.parse_args(argv)
    tools = tuple(t for t in TOOLS if t in args.tools.split(","))
    from benchmarks.installed import install
    from tests.support.debian_base import push_debian_python_base
    from tests.support.registry import RegistryServer

    root = Path(tempfile.mkdtemp(prefix="dockyard-fresh-runner-", dir="/var/tmp"))
    dockyard = install(root / "dockyard-venv", args.source.resolve())
    registry = RegistryServer.start(root / "registry")
    try:
        print("pushing the Debian python3 base ...", flush=True)
        base = push_debian_python_base(registry.host, root / "base")
        results = run_benchmark(root, registry.host, base, dockyard, args.runs,
                                (4, 1000) if args.quick else (20, 1000), tools)
    finally:
        registry.stop()
        remove_state(root)
    print_table(results, args.runs, tools)
    if args.json:
        args.json.write_text(json.dumps({tool: {phase: [r.__dict__ for r in runs] for phase, runs in by.items()}
                                         for tool, by in results.items()}, indent=2) + "\n")
    return 1 if any(r.error for by in results.values() for runs in by.values() for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
