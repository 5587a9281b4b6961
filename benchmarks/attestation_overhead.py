"""What --sbom --provenance mode=max adds to a build's wall time (the supply-chain issue's 10% budget).

    .venv/bin/python benchmarks/attestation_overhead.py [--runs 3] [--packages 400] [--json results.json]

Starts Debian's docker-registry on loopback and pushes the Debian base of tests/support/debian_base.py (this
host's dash, coreutils, findutils and python3 with their libraries, ~69 MB in one layer) with a real dpkg
database: /var/lib/dpkg/status holding the first --packages installed stanzas of this host's own status, their
copyright files and /etc/os-release. Then builds workloads 1 (five-runs) and 4 (multi-stage) of
benchmarks/workloads, and `apt-install` (`apt-get update && apt-get install -y busybox-static dockyard-demo`
from a loopback repository, on tests/support/debian_apt_base.py's base with a working apt and its dpkg database)
with `dockyard build --push`, alternating plain builds and builds with `--sbom --provenance mode=max`, each
pushed to a repository of its own:

* cold: a fresh cache directory per build (the base is pulled and unpacked every time; the SBOM reads every
  layer);
* warm: `--no-cache` with the cache directory of an earlier build of the same kind (the base is cached, every
  step runs again; the SBOM's base-layer records come from the cache, only the new layers are read).

Every build's cache directory and work directory are on an ext4 filesystem made for it (compare_buildah.py's
make_state: a deleted run's files slow the next run's file creation otherwise). Prints the fastest and the
median wall time of each and the overhead in percent. Run as root; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from compare_buildah import make_state, remove_state  # noqa: E402  (one way to give each run a fresh filesystem)

WORKLOADS = {"five-runs": REPO_ROOT / "benchmarks" / "workloads" / "five-runs",
             "multi-stage": REPO_ROOT / "benchmarks" / "workloads" / "multi-stage"}
ATTEST = ("--sbom", "--provenance=mode=max")


def host_stanzas(count: int) -> list[str]:
    text = Path("/var/lib/dpkg/status").read_text()
    return [s.strip("\n") for s in text.split("\n\n") if "Status: install ok installed" in s][:count]


def push_base(registry_host: str, workdir: Path, packages: int) -> str:
    from tests.support.debian_base import push_debian_python_base

    stanzas = host_stanzas(packages)
    names = [s.split("\n", 1)[0].removeprefix("Package: ") for s in stanzas]
    copyrights = tuple(f"/usr/share/doc/{n}/copyright" for n in names
                       if Path(f"/usr/share/doc/{n}/copyright").is_file())
    status = ("\n\n".join(stanzas) + "\n").encode()
    return push_debian_python_base(registry_host, workdir, tag="attest",
                                   files=(("/var/lib/dpkg/status", status, 0o644),
                                          ("/etc/os-release", Path("/usr/lib/os-release").read_bytes(), 0o644)),
                                   host_paths=copyrights)


APT_DOCKERFILE = ("ARG BASE\nFROM ${BASE}\n"
                  "RUN apt-get update && apt-get install -y --no-install-recommends busybox-static dockyard-demo\n")


def apt_workload(root: Path, registry_host: str, stack: contextlib.ExitStack) -> str:
    """A loopback Debian repository (busybox-static from the host's apt cache, a small built package), the apt
    base pointing at it, and the workload's context; returns the base's reference."""
    from tests.support.debian_apt_base import push_debian_apt_base
    from tests.support.debian_repo import build_deb, cached_debs, make_repo, serve

    real = cached_debs(("busybox-static",))
    if real is None:
        raise SystemExit("no busybox-static .deb cached: run scripts/install.sh")
    debs = [build_deb(root / "debs", "dockyard-demo", "1.0", {"usr/share/dockyard-demo/hello": b"hello\n"})]
    make_repo(root / "repo" / "debian", debs + real)
    url = stack.enter_context(serve(root / "repo"))
    context = root / "apt-install"
    context.mkdir()
    (context / "Dockerfile").write_text(APT_DOCKERFILE)
    WORKLOADS["apt-install"] = context
    return push_debian_apt_base(registry_host, root / "apt-base", f"deb [trusted=yes] {url}debian ./")


def build(workload: str, base: str, target: str, cache_dir: Path, work_dir: Path, extra: tuple[str, ...]) -> float:
    cmd = [sys.executable, "-m", "dockyard", "build", "-q", "--push", "-t", target, "--build-arg", f"BASE={base}",
           "--cache-dir", str(cache_dir), "--work-dir", str(work_dir), *extra, str(WORKLOADS[workload])]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CI": "true"})
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build failed: {' '.join(cmd)}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packages", type=int, default=400)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--only", action="append", choices=("five-runs", "multi-stage", "apt-install"))
    args = parser.parse_args()
    from tests.support.registry import RegistryServer

    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        server = RegistryServer.start(root / "registry")
        try:
            bases = {"five-runs": push_base(server.host, root / "base", args.packages)}
            bases["multi-stage"] = bases["five-runs"]
            bases["apt-install"] = apt_workload(root, server.host, stack)
            counter = 0
            for workload in args.only or WORKLOADS:
                base = bases[workload]
                warm_caches: dict[str, Path] = {}
                for scenario in ("cold", "warm"):
                    for run in range(args.runs):
                        for kind, extra in (("plain", ()), ("attested", ATTEST)):
                            counter += 1
                            target = f"{server.host}/bench/{workload}-{counter}:1"
                            state = make_state(root / f"state-{counter}")
                            stack.callback(remove_state, state)  # also when a build fails (idempotent)
                            if scenario == "cold":
                                seconds = build(workload, base, target, state / "cache", state / "work", extra)
                                if kind not in warm_caches:
                                    warm_caches[kind] = state  # the warm runs' cache: kept
                            else:
                                seconds = build(workload, base, target, warm_caches[kind] / "cache",
                                                state / "work", ("--no-cache", *extra))
                            if state not in warm_caches.values():
                                remove_state(state)
                            results.setdefault(f"{workload} {scenario}", {}).setdefault(kind, []).append(seconds)
                            print(f"{workload:<12} {scenario:<5} {kind:<9} run {run + 1}: {seconds:6.2f} s",
                                  flush=True)
                for state in warm_caches.values():
                    remove_state(state)
        finally:
            server.stop()
    # The fastest run of each is the least disturbed by whatever else the machine runs (a shared CI machine's
    # other jobs only ever add time); the median is printed beside it.
    print(f"\n{'workload':<20} {'plain':>8} {'attested':>9} {'overhead':>9}   (medians: plain, attested, overhead)")
    for name, figures in results.items():
        plain, attested = min(figures["plain"]), min(figures["attested"])
        plain_m, attested_m = statistics.median(figures["plain"]), statistics.median(figures["attested"])
        print(f"{name:<20} {plain:7.2f}s {attested:8.2f}s {100 * (attested - plain) / plain:8.1f}%   "
              f"({plain_m:.2f}s, {attested_m:.2f}s, {100 * (attested_m - plain_m) / plain_m:.1f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
