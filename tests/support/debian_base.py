"""A Debian base image made from this host's own Debian files (no internet here), for the builder image test
(tests/e2e/test_kaniko.py) and the buildah comparison (benchmarks/compare_buildah.py).

``push_debian_python_base(registry_host, workdir[, packages, tag]) -> "HOST/base/debian-python:TAG"`` writes a
one-layer image holding the files of a few installed Debian packages (by default dash as /bin/sh, coreutils,
findutils, python3) plus every shared library their ELF files need (found with ldd), laid out merged-/usr as
Debian 12 is, and pushes it with skopeo.  The layer is written by tests/support/images.py's helpers
(deterministic tar, numeric owners, fixed mtimes), so neither builder under test makes the base both of them start from.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.support.images import GROUP, PASSWD, LayerBlob, _config, _Layout, _LayerWriter, _skopeo_push

DEBIAN_PYTHON_REPO = "base/debian-python"
DEBIAN_PYTHON_TAG = "1"
# What the workloads run: a POSIX shell, the usual file tools, and python3 with its standard library.
PACKAGES = ("dash", "coreutils", "findutils", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
            "python3-minimal", "python3", "libpython3-stdlib")
# Debian 12 is merged-/usr: these top-level names are symlinks into /usr, on the host and in the image.
MERGED_USR = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
ELF_MAGIC = b"\x7fELF"
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


def collect_packages(packages: tuple[str, ...] = PACKAGES, host_paths: tuple[str, ...] = ()) -> RootfsCollector:
    """The files of `packages`, and of `host_paths` (files, symlinks, or directories taken whole: what no
    Debian package of this machine holds, such as a Node.js installed from elsewhere)."""
    collector = RootfsCollector()
    for package in packages:
        for path in package_files(package):
            # Directories (and symlinks to them, such as the merged-/usr /bin) come from the layer writer.
            if not os.path.isdir(path):
                collector.add(path)
    for path in host_paths:
        if os.path.isdir(path) and not os.path.islink(path):
            for directory, _, names in os.walk(path):
                for name in names:
                    collector.add(os.path.join(directory, name))
        else:
            collector.add(path)
    return collector


def debian_python_layer(packages: tuple[str, ...] = PACKAGES, *, passwd: str = PASSWD, group: str = GROUP,
                        directories: tuple[tuple[str, int, int, int], ...] = (),
                        files: tuple[tuple[str, bytes, int], ...] = (), host_paths: tuple[str, ...] = ()
                        ) -> LayerBlob:
    """The base's only layer: merged-/usr symlinks, the collected files (dash's /bin/sh among them), passwd, group.
    `directories` (path, mode, uid, gid) and `files` (path, content, mode) are written too: what a package
    manager finds in a Debian image and no package's file list has (apt's partial directories, dpkg's status).
    `host_paths` are added as collect_packages says."""
    collector = collect_packages(packages, host_paths)
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
    for directory, mode, uid, gid in directories:
        parents(directory)
        w.dir(directory, mode=mode, uid=uid, gid=gid)
        written_dirs.add(directory.strip("/"))
    w.file("etc/passwd", passwd.encode())
    w.file("etc/group", group.encode())
    for path, content, mode in files:
        parents(path)
        w.file(path.lstrip("/"), content, mode=mode)
    entries = sorted([(p, None) for p in collector.files] + [(p, t) for p, t in collector.symlinks.items()])
    for path, link_target in entries:
        parents(path)
        if link_target is not None:
            w.symlink(path.lstrip("/"), link_target)
        else:
            w.file(path.lstrip("/"), Path(path).read_bytes(), mode=stat.S_IMODE(collector.files[path].st_mode))
    return w.finish()


def push_debian_python_base(registry_host: str, workdir: Path, packages: tuple[str, ...] = PACKAGES,
                            tag: str = DEBIAN_PYTHON_TAG, **layer_options) -> str:
    """Writes the base as an OCI layout under `workdir` and pushes it; returns its reference. `layer_options`
    go to debian_python_layer (passwd, group, directories, files, host_paths)."""
    ref = f"{registry_host}/{DEBIAN_PYTHON_REPO}:{tag}"
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _Layout(workdir / "debian-python-oci")
    layout.tag(layout.image([debian_python_layer(packages, **layer_options)], _config("amd64", None, [HISTORY])),
               tag)
    _skopeo_push(layout.root, tag, ref, all_images=False, workdir=workdir)
    return ref
