"""A Debian package repository on loopback, made from .deb files (no test may reach Debian's mirrors).

* ``cached_debs(names) -> [Path]`` finds the .deb files of Debian packages that scripts/install.sh downloaded into
  ``.ci/debs/`` (falling back to apt's own cache, /var/cache/apt/archives); a missing one fails with what to run.
* ``make_repo(debs, dest) -> dest`` writes a flat repository (``deb [trusted=yes] URL ./``): the .deb files,
  ``Packages`` and ``Packages.gz`` made by ``dpkg-scanpackages`` (dpkg-dev), and a ``Release`` file with their
  checksums, which apt needs before it reads a repository at all.
* ``ServedRepo.start(directory)`` serves that directory over HTTP on 127.0.0.1 (a free port, a thread of this
  process); ``.url``, ``.sources_line`` (the line for ``/etc/apt/sources.list.d/*.list``) and ``.stop()``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import subprocess
import threading
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
DEB_CACHE = REPO_ROOT / ".ci" / "debs"  # filled by scripts/install.sh (`apt-get download ...`)
APT_ARCHIVES = Path("/var/cache/apt/archives")


def cached_debs(names: Iterable[str], arch: str = "amd64") -> list[Path]:
    """The newest cached .deb of each package name (architecture `arch` or all)."""
    found = []
    for name in names:
        candidates = sorted(p for directory in (DEB_CACHE, APT_ARCHIVES) if directory.is_dir()
                            for suffix in (arch, "all") for p in directory.glob(f"{name}_*_{suffix}.deb"))
        if not candidates:
            raise FileNotFoundError(f"no .deb of {name} in {DEB_CACHE} or {APT_ARCHIVES}: run scripts/install.sh "
                                    "(it downloads the packages the tests serve from a loopback repository)")
        found.append(candidates[-1])
    return found


def make_repo(debs: Iterable[Path], dest: Path) -> Path:
    """A flat repository in `dest` holding `debs`, with Packages, Packages.gz and Release."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        shutil.copy2(deb, dest / deb.name)
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=dest,
                              capture_output=True, check=True, timeout=120).stdout
    (dest / "Packages").write_bytes(packages)
    (dest / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = ["Origin: dockyard-tests", "Label: dockyard-tests", "Suite: tests", "Codename: tests",
             f"Date: {formatdate(usegmt=True)}", "SHA256:"]
    for index in ("Packages", "Packages.gz"):
        data = (dest / index).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {index}")
    (dest / "Release").write_text("\n".join(lines) + "\n")
    return dest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # apt's requests would flood the test output


@dataclass
class ServedRepo:
    directory: Path
    server: http.server.ThreadingHTTPServer
    thread: threading.Thread

    @classmethod
    def start(cls, directory: Path) -> "ServedRepo":
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, name="debian-repo", daemon=True)
        thread.start()
        return cls(directory, server, thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def sources_line(self) -> str:
        # trusted=yes: the Release file is not signed (there is no key to sign it with that apt would trust).
        return f"deb [trusted=yes] {self.url} ./\n"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
