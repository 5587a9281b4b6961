"""A Debian package repository on loopback, for tests that run apt-get (and for anyone who needs to install
.deb files into an image without the internet).

``build_deb(directory, name, version, files, ...) -> Path`` makes a small binary package with dpkg-deb (package
dpkg-dev): the files, owners and maintainer scripts a test needs. ``make_repo(directory, debs) -> Path`` lays
.deb files out as a flat repository (``deb [trusted=yes] URL ./``): the packages, a Packages index written by
dpkg-scanpackages (and its .gz), and an unsigned Release file listing their hashes, as apt-ftparchive would.
``serve(directory)`` serves any directory over HTTP on 127.0.0.1 at a free port (a context manager yielding
the base URL); the pip index and npm registry of the package-manager tests use it too.

``cached_debs(names)`` finds .deb files of Debian packages fetched beforehand (scripts/install.sh runs `apt-get
download` into DEB_CACHE, which git ignores; apt's own /var/cache/apt/archives is looked at too), so that
tests never reach Debian's mirror themselves.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Iterator, Mapping

# Where scripts/install.sh puts the .deb files it downloads (git-ignored).
DEB_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "debs"
APT_ARCHIVES = Path("/var/cache/apt/archives")
# A fixed date, so the Release file (and any image that copies it) is the same every run.
RELEASE_DATE = "Mon, 01 Jan 2024 00:00:00 UTC"


def build_deb(directory: Path, name: str, version: str, files: Mapping[str, bytes | tuple[bytes, int]], *,
              depends: str = "", scripts: Mapping[str, str] | None = None, architecture: str = "all") -> Path:
    """A .deb holding `files` (image path -> content, or (content, mode)), owned by root as Debian's packages
    are (dpkg-deb --root-owner-group); `scripts` are maintainer scripts by name (postinst, preinst, ...)."""
    tree = directory / f"{name}-tree"
    if tree.exists():
        shutil.rmtree(tree)
    control_dir = tree / "DEBIAN"
    control_dir.mkdir(parents=True)
    for path, spec in files.items():
        content, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
    control = [f"Package: {name}", f"Version: {version}", f"Architecture: {architecture}",
               "Maintainer: dockyard tests <tests@dockyard.invalid>", "Section: misc", "Priority: optional"]
    if depends:
        control.append(f"Depends: {depends}")
    control.append(f"Description: {name}, made by dockyard's tests")
    (control_dir / "control").write_text("\n".join(control) + "\n")
    for script, text in (scripts or {}).items():
        (control_dir / script).write_text(text)
        os.chmod(control_dir / script, 0o755)
    for made in tree.rglob("*"):
        if made.is_dir():
            os.chmod(made, 0o755)  # whatever the umask: dpkg-deb refuses a DEBIAN directory others can write
    deb = directory / f"{name}_{version}_{architecture}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                   capture_output=True)
    shutil.rmtree(tree)
    return deb


def cached_debs(names: tuple[str, ...]) -> list[Path] | None:
    """The newest cached .deb of each package in `names` (this machine's architecture or `all`), or None if
    one is missing (the caller skips: scripts/install.sh fetches them)."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    found = []
    for name in names:
        candidates = [p for d in (DEB_CACHE, APT_ARCHIVES) for a in (arch, "all")
                      for p in glob.glob(str(d / f"{name}_*_{a}.deb"))]
        if not candidates:
            return None
        found.append(Path(max(candidates, key=os.path.getmtime)))
    return found


def make_repo(directory: Path, debs: list[Path]) -> Path:
    """A flat repository of `debs` in `directory`: apt's line for it is `deb [trusted=yes] URL ./`."""
    directory.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        shutil.copyfile(deb, directory / deb.name)
    # -m: every version of a package is listed, as a real archive's pool does.
    packages = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=directory, capture_output=True,
                              check=True).stdout
    (directory / "Packages").write_bytes(packages)
    (directory / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = ["Origin: dockyard-tests", "Label: dockyard-tests", "Suite: ./", f"Date: {RELEASE_DATE}"]
    for field, algorithm in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
        lines.append(f"{field}:")
        for name in ("Packages", "Packages.gz"):
            data = (directory / name).read_bytes()
            lines.append(f" {algorithm(data).hexdigest()} {len(data)} {name}")
    (directory / "Release").write_text("\n".join(lines) + "\n")
    return directory


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # `format`: the base class's name
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """`directory` served read-only over HTTP on 127.0.0.1 (a free port) while the block runs; yields the
    base URL, ending in a slash."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="debian-repo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
