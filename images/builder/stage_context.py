"""Writes the builder image's build context from the Python environment running this script.

    python3 images/builder/stage_context.py DIR
    python3 images/builder/stage_context.py --extras     # the extras to install first, e.g. pip install ".[$(...)]"

DIR/site-packages gets the `dockyard` package (from this checkout's core/), the CI adapters (`dockyard_integrations`,
from integrations/) and every installed distribution dockyard and its IMAGE_EXTRAS require, recursively (their
files as installed, without byte-code caches); DIR/bin gets the launchers. The image then needs no package index:
what it runs is what this environment was tested with (compiled extensions without their debug sections).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# pyproject.toml's extras the image ships: `keyless` (sigstore-python), so `--sign keyless` (the GitLab component's
# `sign: keyless`, a kaniko-style job's own `dockyard build --sign keyless`) works in the image as it does in a
# venv with the extra. It adds 15 distributions, 18.9 MB installed and 6.2 MB compressed, to the 18.9 MB (executor)
# the image adds to its base without it (25.1 MB with it): a user could not add it to an image without pip.
# `gitlab` (python-gitlab and requests-toolbelt, pure Python, a few hundred KB): the GitLab component's merge-request
# note, which runs in this image.
IMAGE_EXTRAS = ("keyless", "gitlab")
LAUNCHERS = {
    "dockyard": '#!/bin/sh\nexec /dockyard/venv/bin/python3 -m dockyard "$@"\n',
    # /kaniko/executor links here: kaniko's executor path, kaniko's flags.
    "kaniko-executor": '#!/bin/sh\nexec /dockyard/venv/bin/python3 -m dockyard kaniko "$@"\n',
}


def installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def required_distributions(name: str, extras: tuple[str, ...] = ()) -> set[str]:
    """`name`'s runtime requirements and those of its `extras`, recursively (other extras are left out). A
    requirement under an environment marker (sigstore's `importlib-resources ; python_full_version < '3.11'`) counts
    where it is installed: pip left out those whose marker does not hold for this Python, which nothing here
    evaluates (packaging's marker parser is not a dependency)."""
    found: set[str] = set()
    pending = [(name, extras)]
    while pending:
        parent, wanted = pending.pop()
        for requirement in metadata.requires(parent) or []:
            marker = requirement.partition(";")[2]
            extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
            if extra is not None and extra.group(1) not in wanted:
                continue
            dist = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
            if not installed(dist):
                if marker.strip() and extra is None:
                    continue
                sys.exit(f"stage_context.py: {parent} requires {dist}, which is not installed in this environment "
                         f"(install dockyard with its extras: pip install -e '.[{','.join(IMAGE_EXTRAS)}]')")
            key = dist.lower().replace("_", "-")
            if key not in found:
                found.add(key)
                pending.append((dist, ()))
    return found


def copy_distribution(name: str, dest: Path) -> None:
    dist = metadata.distribution(name)
    for file in dist.files or []:
        # Console scripts (../../bin/...) and byte-code are not needed: the launchers call `python -m`.
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue
        target = dest / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.locate_file(file), target)


def strip_debug_info(site: Path) -> None:
    """Drops the debug sections of compiled extensions, where binutils' strip is installed: a wheel built from
    source keeps them (zstandard's two extensions are 12 MB each with them, 1 MB without), and nothing in the
    image reads them."""
    strip = shutil.which("strip")
    if strip is None:
        return
    for library in sorted(site.rglob("*.so")):
        subprocess.run([strip, "--strip-debug", str(library)], check=True)


def stage(out: Path) -> None:
    site = out / "site-packages"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(REPO / "core", site / "dockyard", ignore=shutil.ignore_patterns("__pycache__"))
    # The CI adapters run inside the image too (the GitLab component: `python3 -m dockyard_integrations.gitlab`).
    shutil.copytree(REPO / "integrations", site / "dockyard_integrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in sorted(required_distributions("dockyard", IMAGE_EXTRAS)):
        copy_distribution(name, site)
    strip_debug_info(site)
    (out / "bin").mkdir(parents=True)
    for name, text in LAUNCHERS.items():
        (out / "bin" / name).write_text(text)
        (out / "bin" / name).chmod(0o755)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: stage_context.py DIR | --extras")
    if sys.argv[1] == "--extras":  # what an environment to stage from installs: `pip install ".[EXTRAS]"`
        print(",".join(IMAGE_EXTRAS))
    else:
        stage(Path(sys.argv[1]))
