"""A Debian base image made from this host's own Debian files (no internet here), for the builder image test
(tests/e2e/test_builder_image.py) and the buildah comparison (benchmarks/compare_buildah.py).

``push_debian_python_base(registry_host, workdir[, packages, tag, apt_sources])
-> "HOST/base/debian-python:TAG"`` writes a one-layer image holding the files of a few installed Debian packages
(by default dash as /bin/sh, coreutils, findutils, python3) plus every shared library their ELF files need (found
with ldd), laid out merged-/usr as Debian 12 is, and pushes it with skopeo.  The layer is written by
tests/support/images.py's helpers (deterministic tar, numeric owners, fixed mtimes), so neither builder under test
makes the base both of them start from.

With ``apt_sources`` (a sources.list line, such as tests/support/debian_repo.py's loopback repository gives) the
base also carries apt and dpkg as Debian's images do: their files, dpkg's status listing the packages the base holds
and everything they depend on (from the host's status, so apt finds nothing broken), apt's sandbox user ``_apt``,
and that line as its only package source (the builder image's test installs proot from it).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Mapping

from tests.support.images import GROUP, PASSWD, LayerBlob, _config, _Layout, _LayerWriter, _skopeo_push

DEBIAN_PYTHON_REPO = "base/debian-python"
DEBIAN_PYTHON_TAG = "1"
# What the workloads run: a POSIX shell, the usual file tools, and python3 with its standard library.
PACKAGES = ("dash", "coreutils", "findutils", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
            "python3-minimal", "python3", "libpython3-stdlib")
# Debian 12 is merged-/usr: these top-level names are symlinks into /usr, on the host and in the image.
MERGED_USR = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
ELF_MAGIC = b"\x7fELF"
# What `apt-get install` needs: apt with its download methods, dpkg, ldconfig and the tools dpkg requires in PATH
# (it refuses to run without them), and the C library's whole package (apt's libraries need all of it).
APT_PACKAGES = ("apt", "dpkg", "libc-bin", "libc6", "tar", "sed", "grep", "diffutils", "base-passwd")
APT_DIRS = ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d", "etc/apt/sources.list.d",
            "etc/dpkg/dpkg.cfg.d", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers",
            "var/lib/dpkg/alternatives", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt")
# Debian's base images have apt's sandbox user: apt downloads as _apt (uid 42), not as root.
APT_PASSWD = PASSWD + "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
HOST_DPKG_STATUS = Path("/var/lib/dpkg/status")
HOST_DPKG_INFO = Path("/var/lib/dpkg/info")
HISTORY = {"created": "2024-01-01T00:00:00Z",
           "created_by": "tests/support/debian_base.py: dash, coreutils, findutils, python3 from the host's "
                         "Debian files"}


def package_files(package: str) -> list[str]:
    """The paths dpkg installed for `package` (directories included; the caller keeps files and symlinks)."""
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("/")]


def shared_libraries(elf: str) -> list[str]:
    """The libraries ldd resolves for `elf` (the loader included); nothing for static binaries."""
    result = subprocess.run(["ldd", elf], capture_output=True, text=True)
    libraries = []
    for line in result.stdout.splitlines():
        path = line.split("=>", 1)[-1].strip().split(" (", 1)[0].strip()
        if path.startswith("/"):
            libraries.append(path)
    return libraries


def canonical(path: str) -> str:
    """`path` with its parent directories resolved, so /lib/x/libc.so.6 becomes /usr/lib/x/libc.so.6: the image
    has the merged-/usr symlinks once, at the top, and no entry may go through them."""
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name)


def is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ELF_MAGIC


class RootfsCollector:
    """The host files an image needs: each path with its symlink chain and the libraries of its ELF files."""

    def __init__(self) -> None:
        self.files: dict[str, os.stat_result] = {}
        self.symlinks: dict[str, str] = {}

    def add(self, path: str) -> None:
        path = canonical(path)
        if path in self.files or path in self.symlinks or not os.path.lexists(path):
            return
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)
            self.symlinks[path] = target
            self.add(os.path.join(os.path.dirname(path), target))
        elif stat.S_ISREG(info.st_mode):
            self.files[path] = info
            self._add_companions(path)

    def _add_companions(self, path: str) -> None:
        if is_elf(path):
            for library in shared_libraries(path):
                self.add(library)
        if path.endswith(".py"):
            # The byte-compiled module Debian generated at install time: without it, python3 in every RUN would
            # compile its standard library again.
            directory, name = os.path.split(path)
            self.add(os.path.join(directory, "__pycache__", name[:-3] + ".cpython-311.pyc"))


def collect_packages(packages: tuple[str, ...] = PACKAGES) -> RootfsCollector:
    collector = RootfsCollector()
    for package in packages:
        for path in package_files(package):
            # Directories (and symlinks to them, such as the merged-/usr /bin) come from the layer writer.
            if not os.path.isdir(path):
                collector.add(path)
    return collector


def debian_python_layer(packages: tuple[str, ...] = PACKAGES, extra_files: Mapping[str, bytes] | None = None,
                        extra_dirs: tuple[str, ...] = ()) -> LayerBlob:
    """The base's only layer: merged-/usr symlinks, the collected files (dash's /bin/sh among them), passwd, group,
    then `extra_dirs` and `extra_files` (paths without the leading /; an extra etc/passwd replaces the default)."""
    extra_files = dict(extra_files or {})
    collector = collect_packages(packages)
    w = _LayerWriter()
    written_dirs: set[str] = set()

    def parents(path: str) -> None:
        # Every parent directory gets its own entry before its children, as in real distribution layers.
        parent = os.path.dirname(path.strip("/"))
        if parent and parent not in written_dirs:
            parents(parent)
            w.dir(parent)
            written_dirs.add(parent)

    for name, target in MERGED_USR.items():
        w.symlink(name, target)
    for directory, mode in (("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("root", 0o700), ("tmp", 0o1777),
                            ("etc", 0o755), ("var/tmp", 0o1777), ("usr/local/bin", 0o755)):
        parents(directory)
        w.dir(directory, mode=mode)
        written_dirs.add(directory)
    w.file("etc/passwd", extra_files.pop("etc/passwd", PASSWD.encode()))
    w.file("etc/group", extra_files.pop("etc/group", GROUP.encode()))
    for directory in extra_dirs:
        parents(directory)
        w.dir(directory)
        written_dirs.add(directory)
    entries = sorted([(p, None) for p in collector.files] + [(p, t) for p, t in collector.symlinks.items()])
    for path, link_target in entries:
        parents(path)
        if link_target is not None:
            w.symlink(path.lstrip("/"), link_target)
        else:
            w.file(path.lstrip("/"), Path(path).read_bytes(), mode=stat.S_IMODE(collector.files[path].st_mode))
    for path, data in sorted(extra_files.items()):
        parents(path)
        w.file(path, data)
    return w.finish()


def push_debian_python_base(registry_host: str, workdir: Path, packages: tuple[str, ...] = PACKAGES,
                            tag: str = DEBIAN_PYTHON_TAG, apt_sources: str | None = None) -> str:
    """Writes the base as an OCI layout under `workdir` and pushes it; returns its reference.

    With `apt_sources` (a sources.list line, e.g. tests/support/debian_repo.py's ServedRepo.sources_line) the base
    also has apt and dpkg, as Debian's images do: APT_PACKAGES' files, dpkg's database listing the packages the
    base holds, and `apt_sources` as its only package source."""
    ref = f"{registry_host}/{DEBIAN_PYTHON_REPO}:{tag}"
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _Layout(workdir / "debian-python-oci")
    if apt_sources is None:
        layer = debian_python_layer(packages)
    else:
        packages = tuple(dict.fromkeys(packages + APT_PACKAGES))
        layer = debian_python_layer(packages, apt_files(packages, apt_sources), APT_DIRS)
    layout.tag(layout.image([layer], _config("amd64", None, [HISTORY])), tag)
    _skopeo_push(layout.root, tag, ref, all_images=False, workdir=workdir)
    return ref


def dpkg_stanzas(status: str) -> dict[str, str]:
    """The installed packages of a dpkg status file: name (with :arch for multi-arch "same") -> its stanza."""
    stanzas = {}
    for stanza in status.strip().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, re.M))
        if fields.get("Status", "").endswith(" installed"):
            stanzas[fields["Package"]] = stanza
    return stanzas


def _dependency_names(stanza: str, installed: Mapping[str, str], provided_by: Mapping[str, str]) -> list[str]:
    """The installed package that satisfies each Depends/Pre-Depends item (the first alternative present)."""
    names = []
    for field in ("Pre-Depends", "Depends"):
        match = re.search(rf"^{field}: (.*)$", stanza, re.M)
        for item in (match.group(1).split(",") if match else []):
            for alternative in item.split("|"):
                name = re.split(r"[ (:]", alternative.strip(), maxsplit=1)[0]
                if name in installed or name in provided_by:
                    names.append(name if name in installed else provided_by[name])
                    break
    return names


def dpkg_status_closure(packages: tuple[str, ...], status: str) -> dict[str, str]:
    """The stanzas of `packages` and everything they depend on, recursively, from the host's dpkg status: a
    database in which nothing is broken, so apt installs only what a new package itself needs."""
    installed = dpkg_stanzas(status)
    provided_by = {}
    for name, stanza in installed.items():
        match = re.search(r"^Provides: (.*)$", stanza, re.M)
        for item in (match.group(1).split(",") if match else []):
            provided_by.setdefault(item.strip().split(" ")[0], name)
    closure: dict[str, str] = {}
    pending = list(packages)
    while pending:
        name = pending.pop()
        if name in closure or name not in installed:
            continue
        closure[name] = installed[name]
        pending.extend(_dependency_names(installed[name], installed, provided_by))
    return closure


def apt_files(packages: tuple[str, ...], sources_line: str) -> dict[str, bytes]:
    """dpkg's database for an image holding `packages` (status, and each package's file list), apt's sources, and
    a passwd with apt's sandbox user."""
    closure = dpkg_status_closure(packages, HOST_DPKG_STATUS.read_text())
    files: dict[str, bytes] = {
        "var/lib/dpkg/status": ("\n\n".join(closure[name] for name in sorted(closure)) + "\n").encode(),
        "var/lib/dpkg/available": b"",
        "etc/apt/sources.list.d/tests.list": sources_line.encode(),
        "etc/passwd": APT_PASSWD.encode(),
    }
    for name in closure:
        for suffix in (f"{name}.list", f"{name}:amd64.list"):
            if (HOST_DPKG_INFO / suffix).exists():
                files[f"var/lib/dpkg/info/{suffix}"] = (HOST_DPKG_INFO / suffix).read_bytes()
    return files
