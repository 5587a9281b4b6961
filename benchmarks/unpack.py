"""Layer unpacking against GNU tar: the same layer extracted by both, each run on a fresh ext4 filesystem.

    .venv/bin/python benchmarks/unpack.py                 # 3 runs of each layer, a few minutes, as root
    .venv/bin/python benchmarks/unpack.py --runs 5 --only small
    .venv/bin/python benchmarks/unpack.py --quick         # smaller layers, one run

Two uncompressed layer tars (PAX, as image builders write them), made once in a scratch directory:

* small: 20,000 files of 64 B-4 KB (incompressible) in 100 directories [--quick: 4,000];
* big: three 96 MB files of random bytes and one 64 MB file of zeros [--quick: 16 MB each].

Each run extracts the layer with `tar -xf LAYER -C DIR` (GNU tar as root: owners, modes and times kept, as
dockyard keeps them) and with dockyard's unpacking as the layer cache does it (core/cache/layers.py: the stream
hashed on a thread of its own and checked against its diff_id, rootfs/unpack.py's apply_layer into the
directory), alternating which goes first. Every extraction gets an ext4 filesystem of its own on a sparse loop
file (compare_buildah.py's make_state: a directory tree removed just before slows the next one's file creation
by up to 10x). The layer is read once before the runs, so both read it from the page cache.

Prints per layer the median wall time of each, the ratio dockyard / GNU tar (the goal: at most 1.5), and the CPU
time (user + system, all threads) of each, which says what a busy machine makes of the wall times.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.compare_buildah import make_state, remove_state
from dockyard.rootfs.unpack import DiffIdReader, apply_layer

GOAL = 1.5
MB = 1 << 20


@dataclass(frozen=True)
class Layer:
    name: str
    describe: str
    path: Path
    diff_id: str
    entries: int


@dataclass
class Times:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def _write_small(path: Path, files: int) -> int:
    rnd = random.Random(20000)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        def directory(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            archive.addfile(info)
        directory("data")
        for d in range(100):
            directory(f"data/d{d}")
            for i in range(files // 100):
                payload = os.urandom(rnd.randint(64, 4096))
                info = tarfile.TarInfo(f"data/d{d}/file{i}.txt")
                info.size, info.mode, info.mtime = len(payload), 0o644, 1_700_000_000
                archive.addfile(info, io.BytesIO(payload))
    return files + 101


def _write_big(path: Path, random_mb: int, zero_mb: int) -> int:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("blobs")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
        for name, size, chunk in [(f"blobs/random{i}", random_mb, None) for i in range(3)] + \
                                 [("blobs/zeros", zero_mb, bytes(MB))]:
            with tempfile.TemporaryFile() as content:
                for _ in range(size):
                    content.write(chunk if chunk is not None else os.urandom(MB))
                content.seek(0)
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = size * MB, 0o644, 1_700_000_000
                archive.addfile(info, content)
    return 5


def make_layers(scratch: Path, quick: bool, only: set[str]) -> list[Layer]:
    import hashlib
    layers = []
    files = 4000 if quick else 20000
    random_mb, zero_mb = (16, 16) if quick else (96, 64)
    specs = [("small", f"{files:,} files of 64 B-4 KB in 100 directories", lambda p: _write_small(p, files)),
             ("big", f"3 x {random_mb} MB random + {zero_mb} MB zeros", lambda p: _write_big(p, random_mb, zero_mb))]
    for name, describe, write in specs:
        if name not in only:
            continue
        path = scratch / f"{name}.tar"
        entries = write(path)
        digest = hashlib.sha256()
        with open(path, "rb") as layer:  # also brings it into the page cache for both tools
            while chunk := layer.read(MB):
                digest.update(chunk)
        layers.append(Layer(name, describe, path, "sha256:" + digest.hexdigest(), entries))
    return layers


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tar(layer: Layer, dest: Path) -> tuple[float, float]:
    cpu, start = _cpu_children(), time.perf_counter()
    subprocess.run(["tar", "-xf", str(layer.path), "-C", str(dest)], check=True)
    return time.perf_counter() - start, _cpu_children() - cpu


def run_dockyard(layer: Layer, dest: Path) -> tuple[float, float]:
    cpu, start = _cpu_self(), time.perf_counter()
    with open(layer.path, "rb") as raw, DiffIdReader(raw) as stream:
        count = apply_layer(stream, str(dest), layer_name=layer.name)  # type: ignore[arg-type]
        stream.verify(layer.diff_id, layer.name)
    elapsed, used = time.perf_counter() - start, _cpu_self() - cpu
    assert count == layer.entries, (count, layer.entries)
    return elapsed, used


TOOLS = {"GNU tar": run_tar, "dockyard": run_dockyard}


def measure(layers: list[Layer], runs: int, scratch: Path) -> dict[str, dict[str, Times]]:
    results: dict[str, dict[str, Times]] = {layer.name: {tool: Times() for tool in TOOLS} for layer in layers}
    for run in range(runs):
        for layer in layers:
            order = list(TOOLS) if run % 2 == 0 else list(reversed(TOOLS))
            for tool in order:
                state = make_state(scratch / "state")
                try:
                    wall, cpu = TOOLS[tool](layer, state)
                finally:
                    remove_state(state)
                results[layer.name][tool].wall.append(wall)
                results[layer.name][tool].cpu.append(cpu)
                print(f"  run {run + 1} {layer.name:5} {tool:8} {wall:6.2f} s wall {cpu:6.2f} s cpu", flush=True)
    return results


def print_table(layers: list[Layer], results: dict[str, dict[str, Times]]) -> None:
    print()
    print("| layer | GNU tar | dockyard | ratio | goal | CPU s GNU tar / dockyard |")
    print("| --- | --- | --- | --- | --- | --- |")
    for layer in layers:
        tar, ours = results[layer.name]["GNU tar"], results[layer.name]["dockyard"]
        tar_wall, our_wall = statistics.median(tar.wall), statistics.median(ours.wall)
        print(f"| {layer.name} ({layer.describe}) | {tar_wall:.2f} s | {our_wall:.2f} s | "
              f"{our_wall / tar_wall:.2f} | <= {GOAL} | "
              f"{statistics.median(tar.cpu):.2f} / {statistics.median(ours.cpu):.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller layers, one run unless --runs is given")
    parser.add_argument("--only", default="small,big", help="comma-separated: small, big")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: each run mounts an ext4 filesystem of its own", file=sys.stderr)
        return 2
    runs = 1 if args.quick and "--runs" not in (argv or sys.argv) else args.runs
    with tempfile.TemporaryDirectory(prefix="dockyard-unpack-bench-", dir="/var/tmp") as scratch_name:
        scratch = Path(scratch_name)
        print("making the layers...", flush=True)
        layers = make_layers(scratch, args.quick, set(args.only.split(",")))
        results = measure(layers, runs, scratch)
        print_table(layers, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
