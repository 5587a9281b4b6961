"""Per-step cost of snapshots by scanning (rootfs/scan.py) on the Debian base of tests/support/debian_base.py.

    .venv/bin/python benchmarks/scan_snapshot.py [--runs 5]

Unpacks the base into a directory root, takes its first index (as trees.py does), then times scans after
typical steps: none changed, one config file edited, a package-like tree of 200 files added, and a directory
removed. The base has about 2,000 paths; --min-paths copies its /usr under /srv until the root has at least
that many (10,000 by default, the size of a Debian image with a few packages), since a scan's cost grows
with the number of paths. For scale it also times reading every file's content once (what re-hashing the filesystem
after each step would cost). Prints the medians; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.debian_base import debian_python_layer
from dockyard.cache.digests import hash_file
from dockyard.rootfs.scan import RACY_NS, scan
from dockyard.rootfs.unpack import apply_layer


def _edit_one(root: Path) -> None:
    passwd = root / "etc/passwd"
    passwd.write_text(passwd.read_text() + "app:x:1000:1000::/home/app:/bin/sh\n")


def _add_tree(root: Path) -> None:
    for i in range(200):
        path = root / "opt/pkg" / f"m{i % 20}" / f"f{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"value = {i}\n" * 20)


def _remove_tree(root: Path) -> None:
    shutil.rmtree(root / "opt/pkg")


STEPS = (("no change", lambda root: None), ("edit /etc/passwd", _edit_one), ("add 200 files", _add_tree),
         ("remove those 200", _remove_tree))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--min-paths", type=int, default=10_000)
    args = parser.parse_args()
    layer = debian_python_layer()
    with tempfile.TemporaryDirectory(prefix="dockyard-scan-bench-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        apply_layer(io.BytesIO(gzip.decompress(layer.blob)), str(root))
        base_paths = sum(len(dirs) + len(names) for _, dirs, names in os.walk(root))
        copies = 0
        while base_paths * (copies + 1) < args.min_paths:
            copies += 1
            shutil.copytree(root / "usr", root / "srv" / f"usr{copies}", symlinks=True)
        time.sleep(RACY_NS / 1e9 * 1.5)
        started = time.perf_counter()
        first = scan(str(root), None)
        print(f"Debian base with {copies} extra copies of /usr: {first.stats.paths} paths; "
              f"first index {1000 * (time.perf_counter() - started):.0f} ms")
        timings: dict[str, list[float]] = {name: [] for name, _ in STEPS}
        hashed: dict[str, int] = {}
        changed: dict[str, int] = {}
        index = first.index
        for _ in range(args.runs):
            for name, step in STEPS:
                step(root)
                result = scan(str(root), index)
                index = result.index
                timings[name].append(result.stats.seconds)
                hashed[name], changed[name] = result.stats.hashed, result.stats.changed + result.stats.deleted
        for name, _ in STEPS:
            print(f"  scan after {name:<18} {1000 * statistics.median(timings[name]):6.1f} ms  "
                  f"({changed[name]} entries in the layer, {hashed[name]} files hashed)")
        started = time.perf_counter()
        files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            hash_file(str(path))
        print(f"  for scale: hashing all {len(files)} files once {1000 * (time.perf_counter() - started):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
