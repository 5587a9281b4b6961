"""Two independent heavy stages, built by dockyard and buildah side by side: does the build take about the longer
stage, not the sum of both?

    .venv/bin/python benchmarks/parallel_stages.py [--runs 3] [--rounds 4000000] [--json results.json]

The workload (benchmarks/workloads/parallel-stages): stage `left` hashes ROUNDS times in python3, stage `right`
three quarters of that, each writes 300 files; the last stage copies from both. Every build is cold (fresh state
on an ext4 filesystem of its own, as compare_buildah.py's) and pushes to Debian's docker-registry on loopback:

* dockyard with its default --jobs (stages at the same time), and with `--jobs 1` (one stage at a time);
* buildah with its default (one stage at a time) and with `--jobs 2` (its stages at the same time).

Prints the medians and the ratios: dockyard against each buildah run and against its own `--jobs 1`, and, from
dockyard's metadata timeline, the build's time against the two heavy stages' (longer, sum). Writes the chart as
a PNG next to the table (benchmarks/chart.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.compare_buildah import (WORKLOADS, BuildahRunner, DockyardRunner, Measurement,  # noqa: E402
                                        make_state, remove_state)

DOCKERFILE = WORKLOADS / "parallel-stages" / "Dockerfile"
CONFIGS = ("dockyard", "dockyard --jobs 1", "buildah", "buildah --jobs 2")


def stage_times(metadata: Path) -> tuple[float, float, float] | None:
    """From dockyard's metadata file: (longer heavy stage, both summed, the build's stages end to end)."""
    try:
        timeline = json.loads(metadata.read_text())["timeline"]
    except (OSError, KeyError, ValueError):
        return None
    stages = {s["stage"]: s["end"] - s["start"] for s in timeline["stages"]}
    heavy = [stages.get("left", 0.0), stages.get("right", 0.0)]
    span = max(s["end"] for s in timeline["stages"]) - min(s["start"] for s in timeline["stages"])
    return max(heavy), sum(heavy), span


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4_000_000, help="sha256 rounds of the longer stage")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--chart", type=Path, default=Path("parallel_stages.png"))
    args = parser.parse_args(argv)
    from benchmarks.chart import write_chart
    from benchmarks.installed import install
    from tests.support.debian_base import push_debian_python_base
    from tests.support.registry import RegistryServer

    root = Path(tempfile.mkdtemp(prefix="dockyard-parallel-stages-", dir="/var/tmp"))
    dockyard = install(root / "dockyard-venv")
    registry = RegistryServer.start(root / "registry")
    results: dict[str, list[Measurement]] = {config: [] for config in CONFIGS}
    stages: list[tuple[float, float, float]] = []
    try:
        base = push_debian_python_base(registry.host, root / "base")
        build_args = {"BASE": base, "ROUNDS": str(args.rounds)}
        serial = 0
        for run in range(args.runs):
            for config in CONFIGS:
                serial += 1
                state = make_state(root / f"state-{serial}")
                tool, _, flags = config.partition(" ")
                metadata = state / "metadata.json"
                if tool == "dockyard":
                    runner = DockyardRunner(state, dockyard, ("--metadata-file", str(metadata), *flags.split()))
                else:
                    runner = BuildahRunner(state, registry.host, tuple(flags.split()))
                tag = f"{registry.host}/bench/parallel-{serial}:latest"
                measured = runner.measure(DOCKERFILE.parent, DOCKERFILE, tag, build_args)
                results[config].append(measured)
                if config == "dockyard" and not measured.error:
                    times = stage_times(metadata)
                    if times is not None:
                        stages.append(times)
                status = f"FAILED: {measured.error}" if measured.error else f"{measured.seconds:.2f} s"
                print(f"  run {run + 1} {config:>18}: {status}", flush=True)
                remove_state(state)
    finally:
        registry.stop()
        remove_state(root)

    medians = {c: statistics.median(m.seconds for m in ms if not m.error) if any(not m.error for m in ms) else None
               for c, ms in results.items()}
    print(f"\ntwo independent heavy stages ({args.rounds} and {args.rounds * 3 // 4} sha256 rounds), "
          f"median of {args.runs}, build + push:")
    print("| build | seconds | dockyard / this |\n| --- | ---: | ---: |")
    ours = medians["dockyard"]
    for config in CONFIGS:
        value = medians[config]
        ratio = f"{ours / value:.2f}" if ours is not None and value else "-"
        print(f"| {config} | {value:.2f} | {ratio} |" if value is not None else f"| {config} | failed | - |")
    if stages:
        longer, total, span = (statistics.median(t[i] for t in stages) for i in range(3))
        print(f"\ndockyard's timeline (median): longer heavy stage {longer:.2f} s, both summed {total:.2f} s, "
              f"stages end to end {span:.2f} s: {span / longer:.2f}x the longer stage, {span / total:.2f}x the sum")
    groups = [{"name": config, "seconds": {"build + push": medians[config]},
               "note": f"dockyard / this {ours / medians[config]:.2f}" if ours and medians[config] else ""}
              for config in CONFIGS]
    write_chart(args.chart, "two independent heavy stages: median seconds, build + push", ["build + push"], groups)
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "runs": args.runs, "medians": medians,
                                         "stage_times": stages,
                                         "measurements": {c: [m.__dict__ for m in ms] for c, ms in results.items()}},
                                        indent=2) + "\n")
    return 1 if any(m.error for ms in results.values() for m in ms) else 0


if __name__ == "__main__":
    sys.exit(main())
