"""Busybox base images for other CPUs, made from Debian's own busybox-static of that architecture (the .debs
scripts/install.sh downloads into .cache/debs), laid out as tests/support/images.py's busybox base (same
directories, users and applet links): only the program, and the config's architecture and variant, differ.

* ``FOREIGN_PLATFORMS``: linux/arm64 (Debian's arm64) and linux/arm/v7 (Debian's armhf)
* ``push_foreign_busybox_base(registry_host, workdir, platform) -> "HOST/base/busybox-ARCH:1"``: one image
  manifest of that platform
* ``push_busybox_index(registry_host, workdir, platforms) -> "HOST/base/busybox-multi:amd64-arm64"`` (a tag per
  set of platforms): an OCI index with a real busybox image per platform (linux/amd64 is this machine's busybox)
* ``UNAME_MACHINE``: what `uname -m` prints on each platform (QEMU says the same)

The applet list of a foreign busybox is read by running it through its QEMU emulator directly (no binfmt_misc
needed); building from these images with a RUN needs an emulator as dockyard does (tests/support/binfmt.py).
"""

from __future__ import annotations

import functools
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tests.support.images import busybox_applets, busybox_layer, push_platform_images

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBS = REPO_ROOT / ".cache" / "debs"
# Docker's platform -> Debian's architecture, and QEMU's name of that CPU.
FOREIGN_PLATFORMS = {"linux/arm64": ("arm64", "aarch64"), "linux/arm/v7": ("armhf", "arm")}
UNAME_MACHINE = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}
TAG = "1"


def debian_busybox(platform: str) -> bytes:
    """The static busybox program of Debian's busybox-static package for `platform`'s architecture."""
    arch = FOREIGN_PLATFORMS[platform][0]
    debs = sorted(DEBS.glob(f"busybox-static_*_{arch}.deb"))
    if not debs:
        raise RuntimeError(f"no busybox-static .deb for {arch} in {DEBS}: run scripts/install.sh")
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], capture_output=True, check=True,
                          timeout=60).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("./bin/busybox")
        assert member is not None
        return member.read()


@functools.cache
def foreign_busybox_layer(platform: str) -> tuple:
    """(layer, the busybox program) for `platform`; the applets are the foreign busybox's own."""
    program = debian_busybox(platform)
    qemu = f"/usr/bin/qemu-{FOREIGN_PLATFORMS[platform][1]}-static"
    with tempfile.TemporaryDirectory(prefix="dockyard-busybox-") as scratch:
        path = Path(scratch) / "busybox"
        path.write_bytes(program)
        path.chmod(0o755)
        applets = busybox_applets((qemu, str(path)))
    return busybox_layer(program, applets), program


def push_foreign_busybox_base(registry_host: str, workdir: Path, platform: str) -> str:
    """The busybox base for `platform` (one image manifest), pushed; returns its reference."""
    repo = "base/busybox-" + platform.split("/", 1)[1].replace("/", "")
    return push_platform_images(registry_host, workdir, repo, TAG, [(platform, [foreign_busybox_layer(platform)[0]])])


def push_busybox_index(registry_host: str, workdir: Path, platforms: tuple[str, ...]) -> str:
    """An OCI index of busybox images, one per platform (linux/amd64 is this machine's), pushed."""
    images = [(p, [busybox_layer() if p == "linux/amd64" else foreign_busybox_layer(p)[0]]) for p in platforms]
    tag = "-".join(p.split("/", 1)[1].replace("/", "") for p in platforms)  # one tag per set of platforms
    return push_platform_images(registry_host, workdir, "base/busybox-multi", tag, images)
