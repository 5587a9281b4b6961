"""Images with package databases for the SBOM tests, written here with tarfile, gzip and json (not by dockyard).

The package databases are real ones or follow their formats exactly (tests/sbom_data/): stanzas copied from a
Debian 12 machine's dpkg status (Multi-Arch, Source with and without a version, an epoch), Debian's DEP-5
copyright files, an Alpine installed database written by hand after apk's format, two pip-installed
METADATA files, and an RPM sqlite database made at test time by rpmbuild and rpm.

``debian_image_layers() -> [(LayerBlob, created_by)]``: the busybox base plus
  2. dpkg: os-release (Debian 12, /etc/os-release a symlink as in Debian), the status of base-files, libc6,
     libssl3, openssl, zlib1g, tzdata and bash, and copyright files (libssl3's doc directory a symlink to
     openssl's);
  3. python: requests (dist-packages) and attrs (site-packages) METADATA;
  4. upgrade: openssl and libssl3 upgraded (status rewritten), bash removed from the status and its doc
     directory whited out, attrs' dist-info directory whited out.
``write_layout(directory, layers, tag)`` writes an OCI layout (``write_index_layout``: an image index of several
platforms); ``push_layout`` pushes it with skopeo.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.support.images import LayerBlob, busybox_layer
from tests.support.oracle import run_tool

DATA = Path(__file__).resolve().parent.parent / "sbom_data"
MTIME = 1704067200
CREATED = "2024-01-01T00:00:00Z"
UPGRADED_OPENSSL = "3.0.19-1~deb12u3"
BUSYBOX_CREATED_BY = "tests/support/images.py: busybox-static rootfs (hand-written layer)"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


class LayerTar:
    """A deterministic layer: parent directories first, fixed mtimes, numeric owners."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)
        self._dirs: set[str] = set()

    def _info(self, path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        path = path.strip("/")
        parent = path.rpartition("/")[0]
        if parent and parent not in self._dirs:
            self.dir(parent)
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime = kind, mode, MTIME
        return info

    def dir(self, path: str) -> None:
        path = path.strip("/")
        if path in self._dirs:
            return
        info = self._info(path, tarfile.DIRTYPE, 0o755)
        self._dirs.add(path)
        self._tar.addfile(info)

    def file(self, path: str, content: bytes) -> None:
        info = self._info(path, tarfile.REGTYPE, 0o644)
        info.size = len(content)
        self._tar.addfile(info, io.BytesIO(content))

    def symlink(self, path: str, target: str) -> None:
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def whiteout(self, path: str) -> None:
        parent, _, name = path.strip("/").rpartition("/")
        self.file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"")

    def opaque(self, directory: str) -> None:
        self.file(f"{directory.strip('/')}/.wh..wh..opq", b"")

    def finish(self) -> LayerBlob:
        self._tar.close()
        raw = self._buffer.getvalue()
        return LayerBlob(gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest())


def status_stanzas() -> dict[str, str]:
    """The real stanzas of tests/sbom_data/dpkg-status, by package name."""
    stanzas = [s for s in data("dpkg-status").decode().split("\n\n") if s.strip()]
    return {s.split("\n", 1)[0].removeprefix("Package: "): s.strip("\n") for s in stanzas}


def status_text(stanzas: dict[str, str]) -> bytes:
    return ("\n\n".join(stanzas.values()) + "\n").encode()


def upgraded_status() -> dict[str, str]:
    """Layer 4's status: openssl and libssl3 upgraded, bash removed."""
    stanzas = status_stanzas()
    for name in ("openssl", "libssl3"):
        version = next(l for l in stanzas[name].splitlines() if l.startswith("Version: "))
        stanzas[name] = stanzas[name].replace(version, f"Version: {UPGRADED_OPENSSL}")
    del stanzas["bash"]
    return stanzas


def debian_image_layers() -> list[tuple[LayerBlob, str]]:
    dpkg = LayerTar()
    dpkg.symlink("etc/os-release", "../usr/lib/os-release")
    dpkg.file("usr/lib/os-release", data("os-release-debian"))
    dpkg.file("var/lib/dpkg/status", status_text(status_stanzas()))
    for package in ("openssl", "zlib1g", "tzdata", "libc6"):
        dpkg.file(f"usr/share/doc/{package}/copyright", data(f"copyright-{package}"))
    dpkg.file("usr/share/doc/bash/copyright", data("copyright-tzdata"))
    dpkg.symlink("usr/share/doc/libssl3", "openssl")  # as Debian links a binary's docs to its sibling's
    python = LayerTar()
    python.file("usr/lib/python3/dist-packages/requests-2.34.2.dist-info/METADATA", data("METADATA-requests"))
    python.file("usr/local/lib/python3.11/site-packages/attrs-26.1.0.dist-info/METADATA", data("METADATA-attrs"))
    upgrade = LayerTar()
    upgrade.file("var/lib/dpkg/status", status_text(upgraded_status()))
    upgrade.whiteout("usr/share/doc/bash")
    upgrade.whiteout("usr/local/lib/python3.11/site-packages/attrs-26.1.0.dist-info")
    return [(busybox_layer(), BUSYBOX_CREATED_BY),
            (dpkg.finish(), "RUN /bin/sh -c apt-get install -y openssl tzdata # buildkit"),
            (python.finish(), "RUN /bin/sh -c pip install requests attrs # buildkit"),
            (upgrade.finish(), "RUN /bin/sh -c apt-get upgrade -y && apt-get remove bash && pip uninstall attrs")]


def distroless_layers() -> list[tuple[LayerBlob, str]]:
    """status.d as distroless images have it: one file per package (with its md5sums beside it), and a file
    holding a malformed stanza."""
    stanzas = status_stanzas()
    layer = LayerTar()
    layer.file("etc/os-release", data("os-release-debian"))
    for name in ("base-files", "libssl3", "tzdata"):
        # Distroless' status.d stanzas carry no Status field.
        body = "\n".join(l for l in stanzas[name].splitlines() if not l.startswith("Status:")) + "\n"
        layer.file(f"var/lib/dpkg/status.d/{name}", body.encode())
        layer.file(f"var/lib/dpkg/status.d/{name}.md5sums", b"0123456789abcdef0123456789abcdef  usr/x\n")
    layer.file("var/lib/dpkg/status.d/broken", b"Package: broken\nthis line has no colon\nVersion: 1\n")
    layer.file("usr/share/doc/tzdata/copyright", data("copyright-tzdata"))
    return [(layer.finish(), "COPY distroless rootfs /")]


def alpine_layers() -> list[tuple[LayerBlob, str]]:
    layer = LayerTar()
    layer.file("etc/os-release", data("os-release-alpine"))
    layer.file("lib/apk/db/installed", data("apk-installed"))
    return [(busybox_layer(), BUSYBOX_CREATED_BY), (layer.finish(), "RUN /bin/sh -c apk add zlib ssl_client")]


def rpm_database(workdir: Path) -> bytes:
    """An rpmdb.sqlite holding one package (hello-sbom 2:1.2-3, noarch), made with rpmbuild and rpm."""
    top = workdir / "rpmbuild"
    (top / "SPECS").mkdir(parents=True, exist_ok=True)
    (top / "SPECS" / "hello.spec").write_text(
        "Name: hello-sbom\nVersion: 1.2\nRelease: 3\nEpoch: 2\nSummary: A test package for dockyard's SBOM\n"
        "License: MIT or GPL-2.0-or-later\nURL: https://example.org/hello\nVendor: Dockyard Tests\n"
        "BuildArch: noarch\n%description\nA package with no files.\n%files\n")
    run_tool(["rpmbuild", "-bb", "--define", f"_topdir {top}", str(top / "SPECS" / "hello.spec")], timeout=120)
    root = workdir / "rpmroot"
    run_tool(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "--initdb"], timeout=60)
    package = next((top / "RPMS" / "noarch").glob("hello-sbom-*.rpm"))
    run_tool(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--justdb",
              "--noscripts", str(package)], timeout=60)
    return (root / "var/lib/rpm/rpmdb.sqlite").read_bytes()


def write_layout(directory: Path, layers: list[tuple[LayerBlob, str]], tag: str = "1") -> str:
    """An OCI layout of one linux/amd64 image of `layers` tagged `tag`; returns the manifest's digest."""
    _new_layout(directory)
    descriptor = _write_image(directory, layers, "amd64")
    _tag(directory, descriptor, tag)
    return descriptor["digest"]


def write_index_layout(directory: Path, images: list[tuple[list[tuple[LayerBlob, str]], str]], tag: str = "1"
                       ) -> list[str]:
    """An OCI layout whose `tag` is an image index of one image per (layers, architecture); returns the
    manifests' digests."""
    _new_layout(directory)
    descriptors = []
    for layers, architecture in images:
        descriptor = _write_image(directory, layers, architecture)
        descriptor["platform"] = {"architecture": architecture, "os": "linux"}
        descriptors.append(descriptor)
    index_type = "application/vnd.oci.image.index.v1+json"
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": descriptors}
    _tag(directory, _blob(directory, json.dumps(index, sort_keys=True).encode(), index_type), tag)
    return [d["digest"] for d in descriptors]


def _new_layout(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "blobs" / "sha256").mkdir(parents=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


def _blob(directory: Path, content: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(content).hexdigest()
    (directory / "blobs" / "sha256" / digest).write_bytes(content)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(content)}


def _write_image(directory: Path, layers: list[tuple[LayerBlob, str]], architecture: str) -> dict:
    config = {"created": CREATED, "architecture": architecture, "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer, _ in layers]},
              "history": [{"created": CREATED, "created_by": created_by} for _, created_by in layers]}
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": manifest_type,
                "config": _blob(directory, json.dumps(config, sort_keys=True).encode(),
                                "application/vnd.oci.image.config.v1+json"),
                "layers": [_blob(directory, layer.blob, "application/vnd.oci.image.layer.v1.tar+gzip")
                           for layer, _ in layers]}
    return _blob(directory, json.dumps(manifest, sort_keys=True).encode(), manifest_type)


def _tag(directory: Path, descriptor: dict, tag: str) -> None:
    descriptor = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))


def push_layout(directory: Path, tag: str, reference: str) -> None:
    run_tool(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{directory}:{tag}",
              f"docker://{reference}"], timeout=300)


def docker_archive(directory: Path, tag: str, archive: Path, name: str) -> None:
    """The layout's image as a `docker save` tarball (skopeo writes the same format)."""
    run_tool(["skopeo", "--insecure-policy", "copy", f"oci:{directory}:{tag}", f"docker-archive:{archive}:{name}"],
             timeout=300)


def dpkg_query(status: bytes, workdir: Path) -> set[tuple[str, str, str]]:
    """(package, version, architecture) of what dpkg-query lists as present in `status` (an admin directory
    made for it)."""
    admin = workdir / "dpkg-admin"
    (admin / "updates").mkdir(parents=True, exist_ok=True)
    (admin / "info").mkdir(exist_ok=True)
    (admin / "status").write_bytes(status)
    out = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W",
                          "-f=${Package} ${Version} ${Architecture} ${db:Status-Status}\n"],
                         capture_output=True, text=True, check=True).stdout
    present = set()
    for line in out.splitlines():
        package, version, arch, state = line.split(" ")
        if state not in ("not-installed", "config-files"):
            present.add((package, version, arch))
    return present
