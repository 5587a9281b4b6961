"""dockyard against buildah, side by side, on the five workloads of issue 5.

    .venv/bin/python benchmarks/compare_buildah.py [--runs 3] [--quick] [--only 1,3] [--json results.json]

Starts Debian's docker-registry on loopback, pushes one base image to it (tests/support/debian_base.py: python3 and
coreutils from this host's Debian files), then builds every workload with both tools, alternating, and pushes
each result to the same registry (a repository per run, so no run finds the blobs of an earlier one):

* dockyard: the CLI, `dockyard build --push`, with a fresh XDG_CACHE_HOME (blob store) and --work-dir per cold
  run;
* buildah: `buildah bud --isolation chroot --layers --storage-driver overlay` with a fresh --root/--runroot per
  cold run, then `buildah push`.

Every run's state lives on an ext4 filesystem of its own, made for it on a sparse loop file: deleting the
previous run's tens of thousands of files left ext4's inode allocator skipping "recently deleted" inodes for
minutes (file creation measured 10x slower: 7.0 s instead of 0.69 s for 20,000 small files), which slowed
whichever run came next, of either tool.

Each build (with its push) runs under a wrapper child that reports its wall time and the peak resident set of
the tool's processes (ru_maxrss of RUSAGE_CHILDREN: the largest single process, not a sum).  The warm rebuild
(workload 5) changes one file of workload 2's context and builds again with the cache dir / storage of the last
cold run of workload 2.  Prints the median time, the peak memory and the dockyard/buildah ratio per workload.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

WORKLOADS = REPO_ROOT / "benchmarks" / "workloads"
TOOLS = ("dockyard", "buildah")
BUILD_TIMEOUT = 900


@dataclass(frozen=True)
class Sizes:
    """How big the workloads are: the issue's figures by default, a fraction of them with --quick."""

    context_files: int = 5000
    created_dirs: int = 20
    created_files_per_dir: int = 1000
    random_mb: int = 256
    zero_mb: int = 200
    stage_dirs: int = 20
    stage_files_per_dir: int = 100


QUICK = Sizes(context_files=1000, created_dirs=4, created_files_per_dir=1000, random_mb=64, zero_mb=50,
              stage_dirs=5, stage_files_per_dir=100)


@dataclass(frozen=True)
class Workload:
    number: int
    name: str
    description: str
    directory: str  # under benchmarks/workloads/
    target: float  # the goal for the dockyard/buildah time ratio

    def build_args(self, sizes: Sizes) -> dict[str, str]:
        return {
            "many-files": {"DIRS": str(sizes.created_dirs), "FILES": str(sizes.created_files_per_dir)},
            "big-files": {"RANDOM_MB": str(sizes.random_mb), "ZERO_MB": str(sizes.zero_mb)},
            "multi-stage": {"DIRS": str(sizes.stage_dirs), "FILES": str(sizes.stage_files_per_dir)},
        }.get(self.directory, {})

    def describe(self, sizes: Sizes) -> str:
        return self.description.format(**asdict(sizes),
                                       created=sizes.created_dirs * sizes.created_files_per_dir,
                                       staged=sizes.stage_dirs * sizes.stage_files_per_dir)


WORKLOAD_LIST = (
    Workload(1, "five-runs", "five small RUN steps on Debian with python3", "five-runs", 0.5),
    Workload(2, "many-files", "COPY {context_files} files, RUN creating {created}, RUN deleting some",
             "many-files", 0.5),
    Workload(3, "big-files", "RUN {random_mb} MB from /dev/urandom, RUN {zero_mb} MB from /dev/zero",
             "big-files", 0.5),
    Workload(4, "multi-stage", "two stages, COPY --from of {staged} files", "multi-stage", 0.5),
    Workload(5, "warm-rebuild", "workload 2 again after changing one context file", "many-files", 0.3),
)


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float
    error: str = ""


@dataclass
class ToolResult:
    runs: list[Measurement] = field(default_factory=list)

    @property
    def ok(self) -> list[Measurement]:
        return [run for run in self.runs if not run.error]

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(r.seconds for r in self.ok) if self.ok else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(r.peak_rss_mb for r in self.ok) if self.ok else None

    def summary(self) -> dict:
        return {"median_seconds": self.median_seconds, "peak_rss_mb": self.peak_rss_mb,
                "runs": [asdict(r) for r in self.runs]}


# ---------------------------------------------------------------------------------------------- measuring


def measure_child(spec_json: str) -> None:
    """The wrapper child: runs the commands of `spec_json` in order; prints wall time and the children's peak RSS.

    Running in a process of its own keeps the benchmark's own memory out of RUSAGE_CHILDREN.
    """
    spec = json.loads(spec_json)
    started = time.monotonic()
    error = ""
    for command in spec["commands"]:
        result = subprocess.run(command, env=spec["env"], cwd=spec["cwd"], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, errors="replace", timeout=BUILD_TIMEOUT)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            error = f"{Path(command[0]).name} exited with {result.returncode}:\n" + "\n".join(tail)
            break
    seconds = time.monotonic() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mb": round(peak_kb / 1024, 1), "error": error}))


def measure(commands: list[list[str]], env: dict[str, str], cwd: Path) -> Measurement:
    spec = json.dumps({"commands": commands, "env": env, "cwd": str(cwd)})
    out = subprocess.run([sys.executable, __file__, "--measure-child", spec], check=True, capture_output=True,
                         text=True).stdout
    return Measurement(**json.loads(out.strip().splitlines()[-1]))


# ---------------------------------------------------------------------------------------------- the two tools


class DockyardRunner:
    """`dockyard build --push` with its blob store and work dir under `state` (fresh state = a cold build)."""

    def __init__(self, state: Path, script: Path, flags: tuple[str, ...] = ()) -> None:
        self.state = state
        self.script = script  # benchmarks/installed.py: dockyard installed as users get it
        self.flags = flags  # more `dockyard build` flags (e.g. --jobs 1)

    def measure(self, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str]) -> Measurement:
        env = {**os.environ, "XDG_CACHE_HOME": str(self.state / "cache"), "HOME": str(self.state / "home")}
        command = [str(self.script), "build", "--push", "-q", "-t", tag, "-f", str(dockerfile),
                   "--work-dir", str(self.state / "work"), *self.flags]
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        return measure([command + [str(context)]], env, self.state)


class BuildahRunner:
    """buildah bud + push with overlay storage under `state` (fresh state = a cold build, no layer cache)."""

    def __init__(self, state: Path, registry_host: str, flags: tuple[str, ...] = ()) -> None:
        from tests.support.oracle import _BuildahEnv  # storage, run root and config files all under `state`

        self.state = state
        self.env = _BuildahEnv(state, "overlay", [registry_host])
        self.flags = flags  # more `buildah bud` flags (e.g. --jobs 2)

    def measure(self, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str]) -> Measurement:
        policy = str(self.env.policy)
        bud = self.env.cmd("bud", "--isolation", "chroot", "--layers", "--tls-verify=false",
                           "--signature-policy", policy, "-f", str(dockerfile), "-t", tag, *self.flags)
        for key, value in build_args.items():
            bud += ["--build-arg", f"{key}={value}"]
        push = self.env.cmd("push", "--tls-verify=false", "--signature-policy", policy, tag, f"docker://{tag}")
        return measure([bud + [str(context)], push], self.env.env, self.state)


STATE_FS_SIZE = "16G"  # sparse: only what a run writes takes disk space


def make_state(path: Path) -> Path:
    """A fresh, empty ext4 filesystem mounted at `path` (see the module docstring for why)."""
    image = path.with_name(path.name + ".ext4")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["truncate", "-s", STATE_FS_SIZE, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(path)], check=True)
    return path


def remove_state(path: Path) -> None:
    """Deletes a run's state: the mounts buildah's overlay driver can leave under it, its filesystem, its file."""
    with open("/proc/self/mountinfo") as mountinfo:
        mounts = [line.split()[4] for line in mountinfo]
    prefix = str(path.resolve()) + "/"
    for mountpoint in reversed(mounts):
        if mountpoint.startswith(prefix):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
    if str(path.resolve()) in mounts:
        subprocess.run(["umount", str(path)], capture_output=True)
    path.with_name(path.name + ".ext4").unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- the benchmark


class Benchmark:
    def __init__(self, root: Path, registry_host: str, base: str, sizes: Sizes, runs: int, dockyard: Path) -> None:
        self.root = root
        self.dockyard = dockyard
        self.registry_host = registry_host
        self.base = base
        self.sizes = sizes
        self.runs = runs
        self.results: dict[int, dict[str, ToolResult]] = {}
        self._serial = 0
        self._warm_states: dict[str, Path] = {}  # the last cold state of workload 2, per tool

    def run(self, workloads: list[Workload]) -> None:
        for workload in workloads:
            context = self._context(workload)
            print(f"workload {workload.number} ({workload.describe(self.sizes)}):", flush=True)
            if workload.name == "warm-rebuild":
                self._warm(workload, context)
            else:
                self._cold(workload, context, keep_last=workload.name == "many-files")

    def _context(self, workload: Workload) -> Path:
        if workload.directory == "many-files":
            from benchmarks.workloads.contexts import many_files_context

            context = self.root / "context-many-files"
            # Made once: the warm rebuild (5) edits the very context workload 2 was built from.
            return context if context.exists() else many_files_context(context, self.sizes.context_files)
        return WORKLOADS / workload.directory

    def _cold(self, workload: Workload, context: Path, keep_last: bool) -> None:
        for run in range(self.runs):
            for tool in TOOLS:
                state = self.root / f"state-{workload.number}-{tool}-{run}"
                self._record(workload, tool, self._runner(tool, state), context)
                if keep_last and run == self.runs - 1:
                    self._warm_states[tool] = state
                else:
                    remove_state(state)

    def _warm(self, workload: Workload, context: Path) -> None:
        from benchmarks.workloads.contexts import touch_one_file

        if set(self._warm_states) != set(TOOLS):
            raise SystemExit("the warm rebuild (5) needs workload 2 in the same invocation (--only 2,5)")
        for run in range(self.runs):
            touch_one_file(context, run)
            for tool in TOOLS:
                self._record(workload, tool, self._runner(tool, self._warm_states[tool]), context)
        for state in self._warm_states.values():
            remove_state(state)

    def _runner(self, tool: str, state: Path) -> DockyardRunner | BuildahRunner:
        if not state.exists():
            make_state(state)
        return DockyardRunner(state, self.dockyard) if tool == "dockyard" else BuildahRunner(state, self.registry_host)

    def _record(self, workload: Workload, tool: str, runner, context: Path) -> None:
        self._serial += 1
        tag = f"{self.registry_host}/bench/{workload.name}-{tool}-{self._serial}:latest"
        build_args = {"BASE": self.base, **workload.build_args(self.sizes)}
        measurement = runner.measure(context, WORKLOADS / workload.directory / "Dockerfile", tag, build_args)
        self.results.setdefault(workload.number, {t: ToolResult() for t in TOOLS})[tool].runs.append(measurement)
        status = f"FAILED: {measurement.error}" if measurement.error else \
            f"{measurement.seconds:.2f} s, peak {measurement.peak_rss_mb:.0f} MB"
        print(f"  {tool:>8}: {status}", flush=True)


# ---------------------------------------------------------------------------------------------- reporting


def ratio(results: dict[str, ToolResult]) -> float | None:
    ours, theirs = results["dockyard"].median_seconds, results["buildah"].median_seconds
    return ours / theirs if ours is not None and theirs else None


def report_json(bench: Benchmark, workloads: list[Workload]) -> dict:
    return {
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
        "runs": bench.runs,
        "sizes": asdict(bench.sizes),
        "workloads": [{"number": w.number, "name": w.name, "description": w.describe(bench.sizes),
                       "target_ratio": w.target, "ratio": ratio(bench.results[w.number]),
                       **{tool: bench.results[w.number][tool].summary() for tool in TOOLS}}
                      for w in workloads],
    }


def print_table(bench: Benchmark, workloads: list[Workload]) -> None:
    from rich.console import Console
    from rich.table import Table

    def seconds(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "failed"

    def megabytes(value: float | None) -> str:
        return f"{value:.0f}" if value is not None else "-"

    table = Table(title=f"dockyard vs buildah: median of {bench.runs} run(s), build + push")
    for column in ("workload", "dockyard s", "buildah s", "ratio", "target", "dockyard MB", "buildah MB"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for w in workloads:
        results = bench.results[w.number]
        r = ratio(results)
        verdict = "-" if r is None else f"{r:.2f} {'ok' if r <= w.target else 'MISSED'}"
        table.add_row(f"{w.number} {w.name}", seconds(results["dockyard"].median_seconds),
                      seconds(results["buildah"].median_seconds), verdict, f"<= {w.target}",
                      megabytes(results["dockyard"].peak_rss_mb), megabytes(results["buildah"].peak_rss_mb))
    Console(width=max(100, shutil.get_terminal_size().columns)).print(table)
    print("MB: peak resident set of the largest process of the build and push (ru_maxrss)")


def write_comparison_chart(path: Path, bench: Benchmark, workloads: list[Workload]) -> None:
    from benchmarks.chart import write_chart

    groups = []
    for w in workloads:
        r = ratio(bench.results[w.number])
        groups.append({"name": f"{w.number} {w.name}", "note": f"ratio {r:.2f}" if r is not None else "",
                       "seconds": {tool: bench.results[w.number][tool].median_seconds for tool in TOOLS}})
    write_chart(path, f"dockyard vs buildah: median of {bench.runs} run(s), build + push", TOOLS, groups)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="builds per tool and workload (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (about a fifth of the files and bytes)")
    parser.add_argument("--only", default="", help="comma-separated workload numbers (default: all five)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--chart", type=Path, default=Path("compare_buildah.png"),
                        help="the comparison as a PNG bar chart (default compare_buildah.png)")
    parser.add_argument("--measure-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def selected(only: str) -> list[Workload]:
    if not only:
        return list(WORKLOAD_LIST)
    numbers = {int(n) for n in only.split(",")}
    if 5 in numbers:
        numbers.add(2)  # the warm rebuild reuses workload 2's cold state
    return [w for w in WORKLOAD_LIST if w.number in numbers]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure_child:
        measure_child(args.measure_child)
        return 0
    from benchmarks.installed import install
    from tests.support.debian_base import push_debian_python_base
    from tests.support.registry import RegistryServer

    workloads = selected(args.only)
    sizes = QUICK if args.quick else Sizes()
    # /var/tmp, not /tmp: several GB of layers and registry blobs, and overlayfs needs a real filesystem.
    root = Path(tempfile.mkdtemp(prefix="dockyard-vs-buildah-", dir="/var/tmp"))
    dockyard = install(root / "dockyard-venv")
    registry = RegistryServer.start(root / "registry")
    try:
        print("pushing the Debian python3 base ...", flush=True)
        base = push_debian_python_base(registry.host, root / "base")
        bench = Benchmark(root, registry.host, base, sizes, args.runs, dockyard)
        bench.run(workloads)
    finally:
        registry.stop()
        remove_state(root)
    print_table(bench, workloads)
    write_comparison_chart(args.chart, bench, workloads)
    if args.json:
        args.json.write_text(json.dumps(report_json(bench, workloads), indent=2) + "\n")
    failed = any(run.error for result in bench.results.values() for tool in result.values() for run in tool.runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
