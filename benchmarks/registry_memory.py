"""Peak memory of pushing and pulling a 1 GB layer through the real registry (issue 4: target < 150 MB).

    .venv/bin/python benchmarks/registry_memory.py [--size-mb 1024]

Starts Debian's docker-registry on loopback, writes a random (incompressible) blob of the given size into a
blob store without holding it in memory, then runs each transfer in a child process of its own (so that the
parent's buffers do not count) and reports the child's peak resident set size (VmHWM, and ru_maxrss) and
throughput. A child that only imports dockyard gives the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from dockyard.image.blobs import BlobStore  # noqa: E402
from dockyard.image.reference import parse_reference  # noqa: E402
from dockyard.registry import RegistryClient  # noqa: E402

TARGET_MB = 150
WRITE_CHUNK = 1 << 20


def make_random_blob(store: BlobStore, size: int) -> str:
    with store.writer() as writer:
        for _ in range(size // WRITE_CHUNK):
            writer.write(os.urandom(WRITE_CHUNK))
        writer.write(os.urandom(size % WRITE_CHUNK))
        return writer.commit()


def peak_rss_mb() -> dict[str, float]:
    hwm = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return {"vmhwm_mb": round(hwm, 1), "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                            / 1024, 1)}


def child(mode: str, store_root: str, image: str, digest: str, size: int) -> None:
    """One transfer in this process; prints its figures as JSON."""
    client = RegistryClient(environ={"HOME": "/nonexistent"})
    repo = parse_reference(image)
    started = time.monotonic()
    if mode == "push":
        client.upload_blob(repo, digest, size, BlobStore(store_root))
    elif mode == "pull":
        client.fetch_blob(repo, digest, BlobStore(store_root), size=size)
    seconds = time.monotonic() - started
    print(json.dumps({"mode": mode, "seconds": round(seconds, 2), **peak_rss_mb()}))


def run_child(mode: str, store: Path, image: str, digest: str, size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(store), image, digest, str(size)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--child", nargs=5, metavar=("MODE", "STORE", "IMAGE", "DIGEST", "SIZE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, store_root, image, digest, size = args.child
        child(mode, store_root, image, digest, int(size))
        return 0

    from tests.support.registry import RegistryServer

    size = args.size_mb << 20
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        registry = RegistryServer.start(Path(tmp) / "registry")
        try:
            print(f"writing a random {args.size_mb} MB blob ...", flush=True)
            source = BlobStore(Path(tmp) / "source")
            digest = make_random_blob(source, size)
            image = f"{registry.host}/bench/big:1"
            results = [run_child("baseline", source.root, image, digest, size),
                       run_child("push", source.root, image, digest, size),
                       run_child("pull", Path(tmp) / "pulled", image, digest, size)]
        finally:
            registry.stop()
    worst = 0.0
    for r in results:
        rate = f"{args.size_mb / r['seconds']:.0f} MB/s" if r["mode"] != "baseline" else "-"
        print(f"{r['mode']:>8}: peak RSS {r['vmhwm_mb']:.1f} MB (ru_maxrss {r['ru_maxrss_mb']:.1f} MB), "
              f"{r['seconds']:.1f} s, {rate}")
        worst = max(worst, r["vmhwm_mb"])
    verdict = "OK" if worst < TARGET_MB else "OVER"
    print(f"worst peak RSS {worst:.1f} MB for a {args.size_mb} MB layer: {verdict} (target < {TARGET_MB} MB)")
    return 0 if worst < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
