"""Per-RUN overhead and small-build start-up, against issue 5's targets.

    .venv/bin/python benchmarks/run_overhead.py [--runs N]

Starts its own registry on loopback (tests/support/registry.py), pushes two bases made like the test suite's
(tests/support/images.py): the busybox base, and a "big" base with the busybox layer plus a layer of 20,000
files. Then it measures the `dockyard` command of a regular install of this checkout in a scratch virtualenv
(benchmarks/installed.py: what the GitHub Action and the builder image have, not .venv's editable install):

* per-RUN overhead: what each `RUN true` step adds to the wall time of a build with ten of them, against the
  same build without them, on each base: everything a RUN costs besides the command itself (overlay mount,
  sandbox, namespaces, pivot_root, the layer snapshot). The target is <= 0.03 s on both bases;
* `dockyard --version`: wall time of the process (target < 0.15 s);
* five small RUN steps on busybox, built and pushed to the registry: wall time of the process (target < 0.3 s);
  cold (steps not cached) and warm (the same build again: every step from the layer cache).

Each figure is the median of --runs runs; the blob store is warm (the base is pulled once beforehand), as on
a CI runner's second build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.compare_buildah import make_state, remove_state  # noqa: E402  (the root must be importable)
from benchmarks.installed import install  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

RUN_STEPS = 10
BIG_BASE_FILES = 20_000
TARGETS = {"per-RUN overhead, busybox": 0.03, "per-RUN overhead, big base": 0.03,
           "dockyard --version": 0.15, "5 RUNs built and pushed": 0.3, "5 RUNs pushed, all cached": 0.3}


def push_big_base(registry_host: str, workdir: Path) -> str:
    """The busybox layer plus one layer of BIG_BASE_FILES small files (200 directories of 100)."""
    ref = f"{registry_host}/base/big:1"
    writer = images._LayerWriter()
    writer.dir("data")
    for d in range(BIG_BASE_FILES // 100):
        writer.dir(f"data/{d}")
        for f in range(100):
            writer.file(f"data/{d}/{f}", f"{d}/{f}\n".encode())
    layout = images._Layout(workdir / "big-oci")
    history = [images._BUSYBOX_HISTORY, {"created": images.CREATED, "created_by": "20,000 files"}]
    layout.tag(layout.image([images.busybox_layer(), writer.finish()], images._config("amd64", None, history)),
               "1")
    images._skopeo_push(layout.root, "1", ref, all_images=False, workdir=workdir)
    return ref


class Dockyard:
    """The dockyard CLI, installed as users get it (benchmarks/installed.py), with a private blob store and work
    directory (HOME and the work dir in `scratch`)."""

    def __init__(self, scratch: Path, isolation: str = "auto"):
        self.scratch = scratch
        self.isolation = isolation
        self.script = install(scratch / "dockyard-venv")
        self.env = {**os.environ, "HOME": str(scratch / "home"), "CI": "true"}
        self.env.pop("XDG_CACHE_HOME", None)

    def run(self, *args: str) -> float:
        """Wall time of one dockyard command; raises if it fails."""
        start = time.perf_counter()
        proc = subprocess.run([str(self.script), *args], env=self.env, capture_output=True,
                              text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"dockyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return elapsed

    def build(self, dockerfile: str, *extra: str) -> tuple[float, dict]:
        """Builds `dockerfile`; returns the wall time and the metadata file's contents."""
        context = Path(tempfile.mkdtemp(dir=self.scratch, prefix="ctx-"))
        (context / "Dockerfile").write_text(dockerfile)
        metadata = context.parent / (context.name + ".json")
        elapsed = self.run("build", "-q", "--progress=plain", "--isolation", self.isolation,
                           "--work-dir", str(self.scratch / "work"),
                           "--metadata-file", str(metadata), *extra, str(context))
        return elapsed, json.loads(metadata.read_text())


def run_steps(base: str, count: int, tag: str = "") -> str:
    """A Dockerfile of `count` RUN steps that do nothing measurable; `tag` keeps each build's steps distinct."""
    return f"FROM {base}\n" + "".join(f"RUN true {tag}{i}\n" for i in range(count))


def per_run_overhead(dockyard: Dockyard, base: str, runs: int) -> float:
    """What a `RUN true` step adds to a build's wall time: (a build of RUN_STEPS steps - the same build without
    them) / RUN_STEPS, median over `runs` pairs. Wall time, not the durations in the metadata file: a step's
    layer is written while the next RUN runs, so those durations overlap."""
    per_step = []
    for attempt in range(runs):
        with_steps, _ = dockyard.build(run_steps(base, RUN_STEPS, f"#{attempt}-"))
        without, _ = dockyard.build(f"FROM {base}\nLABEL attempt=\"{attempt}\"\n")
        per_step.append((with_steps - without) / RUN_STEPS)
    return statistics.median(per_step)


def five_runs_pushed(dockyard: Dockyard, base: str, registry_host: str, runs: int) -> float:
    times = []
    for attempt in range(runs):
        elapsed, _ = dockyard.build(run_steps(base, 5, f"#{attempt}-"), "--push", "-t",
                                    f"{registry_host}/bench/five:{attempt}")
        times.append(elapsed)
    return statistics.median(times)


def five_runs_cached(dockyard: Dockyard, base: str, registry_host: str, runs: int) -> float:
    """The same five-RUN build again and again: every step is a cache hit."""
    dockerfile = run_steps(base, 5, "cached-")
    dockyard.build(dockerfile, "--push", "-t", f"{registry_host}/bench/cached:0")
    return statistics.median(dockyard.build(dockerfile, "--push", "-t", f"{registry_host}/bench/cached:{n}")[0]
                             for n in range(1, runs + 1))


def measure(runs: int, scratch: Path, isolation: str = "auto") -> dict[str, float]:
    server = RegistryServer.start(scratch / "registry")
    try:
        busybox = images.push_busybox_base(server.host, scratch / "bases")
        big = push_big_base(server.host, scratch / "bases")
        dockyard = Dockyard(scratch, isolation)
        for base in (busybox, big):  # warm the blob store: the figures are for builds, not pulls
            dockyard.build(run_steps(base, 1, "warm"))
        return {
            "per-RUN overhead, busybox": per_run_overhead(dockyard, busybox, runs),
            "per-RUN overhead, big base": per_run_overhead(dockyard, big, runs),
            "dockyard --version": statistics.median(dockyard.run("--version") for _ in range(runs * 2)),
            "5 RUNs built and pushed": five_runs_pushed(dockyard, busybox, server.host, runs),
            "5 RUNs pushed, all cached": five_runs_cached(dockyard, busybox, server.host, runs),
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is printed)")
    parser.add_argument("--isolation", choices=("auto", "namespaces", "proot"), default="auto",
                        help="the builds' --isolation (proot: the figures of the unprivileged mode)")
    args = parser.parse_args()
    # Everything (registry, blob store, work dir) on a fresh ext4 filesystem, as compare_buildah.py gives each
    # run: on a disk with a history of deletions, ext4's inode allocator made a mkdir cost 0.2-0.4 ms in some
    # directories of this machine (/var/tmp among them) and 0.02 ms in others.
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-", dir="/var/tmp") as parent:
        scratch = make_state(Path(parent) / "state")
        try:
            figures = measure(args.runs, scratch, args.isolation)
        finally:
            remove_state(scratch)
    met = True
    print(f"{'measure':<28}{'median':>10}{'target':>10}  result")
    for name, value in figures.items():
        ok = value <= TARGETS[name]
        met &= ok
        print(f"{name:<28}{value:>9.4f}s{TARGETS[name]:>9.2f}s  {'ok' if ok else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
