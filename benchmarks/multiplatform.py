"""Multi-platform builds, dockyard and buildah side by side.

    .venv/bin/python benchmarks/multiplatform.py [--runs 3] [--files 2000]

Run as root (buildah's RUN of a foreign CPU needs QEMU registered with binfmt_misc, which this registers with
the F flag if it is not: a machine-wide entry, left in place). Starts Debian's docker-registry on loopback and
pushes a two-platform busybox base to it (tests/support/foreign_images.py: linux/amd64 is this machine's
busybox-static, linux/arm64 Debian's arm64 one, in the same layout). Two measurements, each build cold (a
fresh blob store / buildah storage and work directory on an ext4 filesystem of its own, as compare_buildah.py
explains), each pushed to the registry:

(a) one two-platform build against two single-platform builds:
    dockyard `build --platform linux/amd64,linux/arm64 --push` against `build --platform linux/amd64 --push`
    plus the same for linux/arm64; buildah `bud --platform linux/amd64,linux/arm64 --manifest M` + `manifest
    push --all` against two `bud --platform X` + `push`. The Dockerfile is (b)'s, with its RUN.
(b) emulated RUN against native: single-platform builds for linux/amd64 (native) and linux/arm64 (QEMU) of a
    Dockerfile with a COPY of a small context, ENV, LABEL and one RUN (a busybox shell loop writing --files
    files, 100 `cat` processes, a shell loop of 50,000 additions, `cat | md5sum` over the files), and of the
    same Dockerfile without the RUN. The RUN's cost is the
    difference of the two builds' wall times (both tools), and for dockyard also the RUN step's own duration
    in its metadata file; the factor is arm64's over amd64's. The builds without RUN show whether anything but
    the emulated instruction costs more for the foreign platform (their arm64/amd64 ratio should be 1).

Prints medians of --runs runs and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.compare_buildah import Measurement, make_state, measure, remove_state  # noqa: E402
from benchmarks.installed import install  # noqa: E402

NATIVE, FOREIGN = "linux/amd64", "linux/arm64"
BOTH = f"{NATIVE},{FOREIGN}"

DOCKERFILE_HEAD = """\
ARG BASE
FROM ${BASE}
COPY context/ /srv/context/
ENV APP=/srv/app
LABEL org.example.benchmark=multiplatform
"""
RUN_STEP = """\
RUN mkdir -p /srv/app && cd /srv/app && i=0 && while [ $i -lt {files} ]; do echo "file $i" > f$i; i=$((i+1)); done \\
 && for f in f1??; do cat $f > /dev/null; done \\
 && j=0 && while [ $j -lt {loops} ]; do j=$((j+1)); done \\
 && cat f* | md5sum > /srv/sum && ls | wc -l
"""
CONTEXT_FILES = 200
LOOPS = 50_000  # iterations of a shell loop of arithmetic only: the emulated CPU's own cost


def write_context(root: Path, files: int) -> tuple[Path, Path, Path]:
    """The build context (CONTEXT_FILES small files) and the two Dockerfiles: with the RUN, without it."""
    context = root / "context"
    (context / "context").mkdir(parents=True)
    for n in range(CONTEXT_FILES):
        (context / "context" / f"c{n}.txt").write_text(f"context file {n}\n" * 8)
    with_run = root / "with-run.Dockerfile"
    with_run.write_text(DOCKERFILE_HEAD + RUN_STEP.format(files=files, loops=LOOPS))
    without_run = root / "without-run.Dockerfile"
    without_run.write_text(DOCKERFILE_HEAD)
    return context, with_run, without_run


class Tools:
    """Builds with either tool, each on a fresh state filesystem; every result goes to the registry."""

    def __init__(self, root: Path, registry_host: str, base: str, dockyard: Path) -> None:
        self.root = root
        self.registry_host = registry_host
        self.base = base
        self.dockyard = dockyard
        self.serial = 0

    def _fresh(self, name: str) -> Path:
        self.serial += 1
        return make_state(self.root / f"state-{self.serial}-{name}")

    def _tag(self, name: str) -> str:
        return f"{self.registry_host}/bench/{name}-{self.serial}:1"

    def dockyard_build(self, context: Path, dockerfile: Path, platforms: list[str]) -> list[tuple[Measurement, dict]]:
        """One cold `dockyard build --push` per entry of `platforms` (each a --platform value), all on one state
        (a second single-platform build shares the first one's blob store, as it would on one runner); the
        measurement and the metadata file of each."""
        state = self._fresh("dockyard")
        env = {**os.environ, "XDG_CACHE_HOME": str(state / "cache"), "HOME": str(state / "home"), "CI": "true"}
        results = []
        try:
            for platform in platforms:
                metadata = state / f"metadata-{len(results)}.json"
                command = [str(self.dockyard), "build", "--push", "-q", "--platform", platform,
                           "-t", self._tag("dockyard"), "-f", str(dockerfile), "--work-dir", str(state / "work"),
                           "--metadata-file", str(metadata), "--build-arg", f"BASE={self.base}", str(context)]
                measured = measure([command], env, state)
                document = json.loads(metadata.read_text()) if not measured.error else {}
                if document.get("cache", {}).get("hits"):  # a cold build must run every step
                    raise SystemExit(f"a cold build took steps from a cache: {document['steps']}")
                results.append((measured, document))
        finally:
            remove_state(state)
        return results

    def buildah_build(self, context: Path, dockerfile: Path, platforms: list[str]) -> list[Measurement]:
        """buildah's builds: a --platform value with a comma makes a manifest list pushed with --all."""
        from tests.support.oracle import buildah_world

        state = self._fresh("buildah")
        world = buildah_world(state, [self.registry_host], driver="overlay")
        policy = str(world.policy)
        results = []
        try:
            for platform in platforms:
                tag = self._tag("buildah")
                bud = world.cmd("bud", "--isolation", "chroot", "--layers", "--tls-verify=false",
                                "--signature-policy", policy, "--platform", platform, "-f", str(dockerfile),
                                "--build-arg", f"BASE={self.base}")
                if "," in platform:
                    name = f"localhost/bench-list-{self.serial}-{len(results)}"
                    push = world.cmd("manifest", "push", "--all", "--tls-verify=false", "--signature-policy",
                                     policy, name, f"docker://{tag}")
                    commands = [bud + ["--manifest", name, str(context)], push]
                else:
                    push = world.cmd("push", "--tls-verify=false", "--signature-policy", policy, tag,
                                     f"docker://{tag}")
                    commands = [bud + ["-t", tag, str(context)], push]
                results.append(measure(commands, world.env, state))
        finally:
            remove_state(state)
        return results


def run_step_seconds(metadata: dict) -> float:
    return sum(step["duration"] for step in metadata["steps"] if step["instruction"].startswith("RUN"))


def other_steps_seconds(metadata: dict) -> float:
    """The COPY, ENV and LABEL steps (FROM's pull is in neither: its time is the blob store's)."""
    return sum(step["duration"] for step in metadata["steps"]
               if step["instruction"].split()[0] in ("COPY", "ENV", "LABEL"))


def check(measurement: Measurement) -> float:
    if measurement.error:
        raise SystemExit(f"a build failed:\n{measurement.error}")
    return measurement.seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def benchmark(tools: Tools, context: Path, with_run: Path, without_run: Path, runs: int,
              parts: str) -> dict[str, float]:
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    for run in range(runs):
        print(f"run {run + 1} of {runs}", flush=True)
        if "a" in parts:
            one_against_two(tools, context, with_run, add)
        if "b" in parts:
            emulated_against_native(tools, context, with_run, without_run, add)
        for name, values in sorted(figures.items()):
            print(f"  {name}: {values[-1]:.2f} s", flush=True)
    return {name: median(values) for name, values in figures.items()}


def one_against_two(tools: Tools, context: Path, with_run: Path, add: Callable[[str, float], None]) -> None:
    """(a) one build of two platforms against two builds of one."""
    [(both, _)] = tools.dockyard_build(context, with_run, [BOTH])
    singles = tools.dockyard_build(context, with_run, [NATIVE, FOREIGN])
    add("dockyard two-platform build", check(both))
    add("dockyard two single builds", sum(check(m) for m, _ in singles))
    [both_b] = tools.buildah_build(context, with_run, [BOTH])
    singles_b = tools.buildah_build(context, with_run, [NATIVE, FOREIGN])
    add("buildah two-platform build", check(both_b))
    add("buildah two single builds", sum(check(m) for m in singles_b))


def emulated_against_native(tools: Tools, context: Path, with_run: Path, without_run: Path,
                            add: Callable[[str, float], None]) -> None:
    """(b) emulated RUN against native, and the steps without RUN on both."""
    for platform, short in ((NATIVE, "amd64"), (FOREIGN, "arm64")):
        [(ours_run, meta)] = tools.dockyard_build(context, with_run, [platform])
        [(ours_plain, meta_plain)] = tools.dockyard_build(context, without_run, [platform])
        [theirs_run] = tools.buildah_build(context, with_run, [platform])
        [theirs_plain] = tools.buildah_build(context, without_run, [platform])
        add(f"dockyard build with RUN, {short}", check(ours_run))
        add(f"dockyard build without RUN, {short}", check(ours_plain))
        add(f"dockyard RUN step, {short}", run_step_seconds(meta))
        add(f"dockyard COPY+ENV+LABEL steps, {short}", other_steps_seconds(meta_plain))
        add(f"buildah build with RUN, {short}", check(theirs_run))
        add(f"buildah build without RUN, {short}", check(theirs_plain))


def report(m: dict[str, float]) -> None:
    def ratio(a: str, b: str) -> float:
        return m[a] / m[b]

    if "dockyard two-platform build" in m:
        one_against_two_report(m, ratio)
    if "dockyard RUN step, amd64" in m:
        emulated_report(m, ratio)


def one_against_two_report(m: dict[str, float], ratio: Callable[[str, str], float]) -> None:
    print("\n(a) one two-platform build against two single-platform builds (median wall time, build + push)")
    for tool in ("dockyard", "buildah"):
        print(f"  {tool:<9} two-platform {m[f'{tool} two-platform build']:6.2f} s   two singles "
              f"{m[f'{tool} two single builds']:6.2f} s   ratio "
              f"{ratio(f'{tool} two-platform build', f'{tool} two single builds'):.2f}")
    print(f"  dockyard/buildah, two-platform build: "
          f"{ratio('dockyard two-platform build', 'buildah two-platform build'):.2f}")


def emulated_report(m: dict[str, float], ratio: Callable[[str, str], float]) -> None:
    print("\n(b) emulated RUN (linux/arm64 under QEMU) against native (linux/amd64)")
    for tool in ("dockyard", "buildah"):
        run_cost = {short: m[f"{tool} build with RUN, {short}"] - m[f"{tool} build without RUN, {short}"]
                    for short in ("amd64", "arm64")}
        print(f"  {tool:<9} RUN by difference: amd64 {run_cost['amd64']:6.2f} s   arm64 {run_cost['arm64']:6.2f} s"
              f"   factor {run_cost['arm64'] / run_cost['amd64']:.1f}")
        print(f"  {tool:<9} build without RUN: amd64 {m[f'{tool} build without RUN, amd64']:6.2f} s   arm64 "
              f"{m[f'{tool} build without RUN, arm64']:6.2f} s   ratio "
              f"{ratio(f'{tool} build without RUN, arm64', f'{tool} build without RUN, amd64'):.2f}")
    print(f"  dockyard  RUN step (metadata): amd64 {m['dockyard RUN step, amd64']:6.2f} s   arm64 "
          f"{m['dockyard RUN step, arm64']:6.2f} s   factor "
          f"{ratio('dockyard RUN step, arm64', 'dockyard RUN step, amd64'):.1f}")
    print(f"  dockyard  COPY+ENV+LABEL steps: amd64 {m['dockyard COPY+ENV+LABEL steps, amd64']:6.3f} s   arm64 "
          f"{m['dockyard COPY+ENV+LABEL steps, arm64']:6.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of every measurement (medians are printed)")
    parser.add_argument("--files", type=int, default=2000, help="files the RUN's shell loop writes")
    parser.add_argument("--only", choices=("a", "b"), help="only measurement (a) or (b)")
    parser.add_argument("--json", type=Path, help="also write the medians to this JSON file")
    args = parser.parse_args()
    from tests.support.binfmt import ensure_registered
    from tests.support.foreign_images import push_busybox_index
    from tests.support.registry import RegistryServer

    reason = ensure_registered((FOREIGN,))
    if reason is not None:
        raise SystemExit(f"buildah cannot run {FOREIGN} here: {reason}")
    root = Path(tempfile.mkdtemp(prefix="dockyard-multiplatform-", dir="/var/tmp"))
    dockyard = install(root / "dockyard-venv")
    registry = RegistryServer.start(root / "registry")
    try:
        base = push_busybox_index(registry.host, root / "bases", (NATIVE, FOREIGN))
        context, with_run, without_run = write_context(root / "inputs", args.files)
        medians = benchmark(Tools(root, registry.host, base, dockyard), context, with_run, without_run, args.runs,
                            args.only or "ab")
    finally:
        registry.stop()
        remove_state(root)
    report(medians)
    if args.json:
        args.json.write_text(json.dumps(medians, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
