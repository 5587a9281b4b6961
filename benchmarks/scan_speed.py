"""How long a vulnerability scan takes warm: a 200-package Debian 12 image against a generated Debian archive the
size of osv.dev's (~77,000 records); the target is under 2 seconds.

    .venv/bin/python benchmarks/scan_speed.py [--runs 5] [--records 77000] [--packages 200]

The archive: `--records` OSV records shaped as osv.dev's Debian export (DEBIAN-CVE-*/DSA-*/DLA-* ids, a CVE alias,
one affected entry per release Debian:10..13 with introduced/fixed events, references), spread over ~25,000
source package names; a fifth of them name the image's own source packages (~130 records per source package,
more than most real packages have: glibc and openssl have a few hundred, most packages a handful), 90% with a fixed
version, 95% of which lie below the installed version (old advisories, long fixed) and the rest above it; the
others are unfixed. That leaves a few thousand vulnerabilities found: more than a real image shows, so the
matching's share is, if anything, overstated.
The image: an OCI layout (tests/support/sbom_images.py) whose dpkg status holds the first --packages installed
stanzas of this host's own status, with a Debian 12 os-release.

It prints the cold run (the archive's index made once: what the first scan after a download pays), then per warm
run `dockyard scan oci:DIR --vuln-db ZIP --format json` as a fresh process (interpreter start included: what a CI
step sees), its CPU time, and an in-process breakdown (catalog, database open, matching). Nothing leaves the
machine. The figures swing with the machine's load: the CPU time column is the steadier one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dockyard.image.model import Platform  # noqa: E402
from dockyard.sbom.catalog import catalog  # noqa: E402
from dockyard.sbom.source import open_image  # noqa: E402
from dockyard.scan.database import open_database  # noqa: E402
from dockyard.scan.matching import match  # noqa: E402
from dockyard.scan.scanner import history_origin  # noqa: E402
from tests.support.sbom_images import LayerTar, write_layout  # noqa: E402

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
RELEASES = ("10", "11", "12", "13")


def host_stanzas(count: int) -> list[str]:
    text = Path("/var/lib/dpkg/status").read_text()
    stanzas = [s.strip("\n") for s in text.split("\n\n") if "Status: install ok installed" in s]
    return stanzas[:count]


def field(stanza: str, name: str) -> str | None:
    for line in stanza.splitlines():
        if line.startswith(name + ": "):
            return line.split(": ", 1)[1]
    return None


def sources(stanzas: list[str]) -> list[tuple[str, str]]:
    """(source name, source version) of each stanza, as the advisories name them."""
    found = []
    for stanza in stanzas:
        version = field(stanza, "Version") or "0"
        source = field(stanza, "Source") or field(stanza, "Package") or ""
        if " (" in source:
            source, _, rest = source.partition(" (")
            version = rest.rstrip(")")
        found.append((source, version))
    return found


def generated_archive(count: int, image_sources: list[tuple[str, str]], seed: int = 21) -> bytes:
    rng = random.Random(seed)
    others = [f"pkg{n:05d}" for n in range(25000)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for number in range(count):
            if rng.random() < 0.2:
                name, installed = rng.choice(image_sources)
                # Fixed just below the installed version (not affected) or above it (affected).
                fixed = f"{installed}~old{number}" if rng.random() < 0.95 else f"{installed}+fix{number}"
            else:
                name, fixed = rng.choice(others), f"{rng.randint(1, 9)}.{rng.randint(0, 20)}-{rng.randint(1, 5)}"
            cve = f"CVE-{rng.randint(2005, 2025)}-{number:05d}"
            kind = rng.choice(("DEBIAN", "DSA", "DLA"))
            ident = f"DEBIAN-{cve}" if kind == "DEBIAN" else f"{kind}-{number}-1"
            affected = []
            for release in RELEASES:
                events: list[dict[str, str]] = [{"introduced": "0"}]
                if rng.random() < 0.9:
                    events.append({"fixed": fixed})
                affected.append({"package": {"ecosystem": f"Debian:{release}", "name": name,
                                             "purl": f"pkg:deb/debian/{name}?arch=source"},
                                 "ranges": [{"type": "ECOSYSTEM", "events": events}],
                                 "ecosystem_specific": {"urgency": rng.choice(("low", "medium", "high",
                                                                               "unimportant"))}})
            record = {"id": ident, "aliases": [cve], "modified": "2026-01-01T00:00:00Z",
                      "published": "2025-01-01T00:00:00Z",
                      "summary": f"{name}: security issue {number}",
                      "details": "A generated record of the size of a real one. " * 8,
                      "affected": affected,
                      "references": [{"type": "ADVISORY",
                                      "url": f"https://security-tracker.debian.org/tracker/{cve}"}]}
            archive.writestr(f"{ident}.json", json.dumps(record))
    return buffer.getvalue()


def write_image(directory: Path, stanzas: list[str]) -> None:
    layer = LayerTar()
    layer.file("etc/os-release", OS_RELEASE)
    layer.file("var/lib/dpkg/status", ("\n\n".join(stanzas) + "\n").encode())
    write_layout(directory, [(layer.finish(), "COPY rootfs /")])


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=77000)
    parser.add_argument("--packages", type=int, default=200)
    args = parser.parse_args()
    stanzas = host_stanzas(args.packages)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        archive = work / "Debian" / "all.zip"
        archive.parent.mkdir()
        archive.write_bytes(generated_archive(args.records, sources(stanzas)))
        print(f"generated {args.records} records ({archive.stat().st_size / 1e6:.1f} MB zip) in "
              f"{time.perf_counter() - started:.1f} s; image: {len(stanzas)} packages")
        write_image(work / "image", stanzas)
        cache = work / "cache"

        started = time.perf_counter()
        opened = open_database(["Debian"], cache_root=cache, db=work)
        print(f"cold: index made in {time.perf_counter() - started:.2f} s "
              f"({opened.infos[0].records} records)")

        env = dict(os.environ, XDG_CACHE_HOME=str(work / "xdg"))
        command = [str(ROOT / ".venv/bin/dockyard"), "scan", f"oci:{work / 'image'}", "--vuln-db", str(work),
                   "--cache-dir", str(cache), "--format", "json"]
        subprocess.run(command, env=env, check=True, capture_output=True)  # the layer records cached
        walls, cpus, found = [], [], 0
        for _ in range(args.runs):
            before_cpu, before = child_cpu(), time.perf_counter()
            result = subprocess.run(command, env=env, check=True, capture_output=True)
            walls.append(time.perf_counter() - before)
            cpus.append(child_cpu() - before_cpu)
            found = len(json.loads(result.stdout)["vulnerabilities"])
        breakdown = {"catalog": [], "database": [], "match": []}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            with open_image(f"oci:{work / 'image'}", platform=Platform(), environ={}) as image:
                made = catalog(image.image, image.blobs, name=image.name, digest=image.digest)
            t1 = time.perf_counter()
            database = open_database(["Debian"], cache_root=cache, db=work)
            t2 = time.perf_counter()
            match(made, database, history_origin)
            t3 = time.perf_counter()
            for key, value in zip(breakdown, (t1 - t0, t2 - t1, t3 - t2)):
                breakdown[key].append(value)
        print(f"warm `dockyard scan` ({args.runs} runs): median {statistics.median(walls):.2f} s wall "
              f"(min {min(walls):.2f}), {statistics.median(cpus):.2f} s CPU; {found} vulnerabilities found; "
              f"target < 2 s: wall {'met' if statistics.median(walls) < 2 else 'NOT met'}, CPU "
              f"{'met' if statistics.median(cpus) < 2 else 'NOT met'}")
        print("in process (medians): " + ", ".join(f"{key} {statistics.median(v) * 1000:.0f} ms"
                                                  for key, v in breakdown.items()))
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
