"""dockyard's builder image (images/builder/Dockerfile), built by dockyard the way a release builds it, for the
tests that run it under a real container runtime (tests/e2e/test_builder_image.py, test_kubernetes_examples.py).

``debian_repository(workdir)`` serves, on loopback, a Debian repository of the .deb files scripts/install.sh
downloaded (tests/support/debian_repo.py): IMAGE_DEBS and whatever else is cached. ``build_builder_images(
registry_host, workdir, repo_url) -> BuilderImages`` stages the build context (images/builder/stage_context.py),
makes an apt-capable Debian base from this host's files (tests/support/debian_apt_base.py) whose sources point
at that repository, so the Dockerfile's own `apt-get install` runs and no test reaches Debian's mirrors, then
builds and pushes both targets. The default target (the last stage) must be the executor image itself.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.e2e.helpers import dockyard
from tests.support import oracle
from tests.support.debian_apt_base import push_debian_apt_base
from tests.support.debian_repo import cached_debs, make_repo, serve

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "images/builder/Dockerfile"
# What the builder image's apt installs (proot; busybox-static for the debug target) and what they depend on
# beyond the base; qemu-user-static, which its qemu stage downloads for two of its emulators.
IMAGE_DEBS = ("proot", "libtalloc2", "busybox-static", "qemu-user-static")


@dataclass(frozen=True)
class BuilderImages:
    """References of the two targets on the registry they were pushed to, and the base they were built on."""

    executor: str
    debug: str
    base: str  # the apt-capable Debian base, its sources the loopback repository's


@contextmanager
def debian_repository(workdir: Path) -> Iterator[str]:
    """The base URL of a loopback repository holding IMAGE_DEBS (`deb [trusted=yes] URL ./`)."""
    debs = cached_debs(IMAGE_DEBS)
    if debs is None:
        raise AssertionError(f"the .deb files of {', '.join(IMAGE_DEBS)} are not cached: run scripts/install.sh")
    with serve(make_repo(workdir, debs)) as url:
        yield url


def build_builder_images(registry_host: str, workdir: Path, repo_url: str) -> BuilderImages:
    staged = workdir / "context"
    subprocess.run([sys.executable, str(REPO_ROOT / "images/builder/stage_context.py"), str(staged)], check=True,
                   timeout=120)
    base = push_debian_apt_base(registry_host, workdir / "base", f"deb [trusted=yes] {repo_url} ./\n")
    refs = {}
    for target, ref in (("executor", f"{registry_host}/dockyard-builder:test"),
                        ("debug", f"{registry_host}/dockyard-builder:test-debug"),
                        (None, f"{registry_host}/dockyard-builder:test-default")):
        built = dockyard("build", "-f", str(DOCKERFILE), "--build-arg", f"BASE={base}",
                         *(("--target", target) if target else ()), "-t", ref, "--push", str(staged), timeout=900)
        assert built.returncode == 0, built.stderr
        refs[target] = ref
    assert (oracle.inspect_summary(refs[None])["Layers"] == oracle.inspect_summary(refs["executor"])["Layers"]), \
        "the Dockerfile's default target is not the executor image"
    return BuilderImages(refs["executor"], refs["debug"], base)
