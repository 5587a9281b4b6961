"""Build contexts the workloads need that are too big to keep in the repository.

``many_files_context(dest, files)`` writes the Dockerfile of workloads/many-files and ``files`` small files
under ``src/dNN/`` (100 per directory) with deterministic, varied content (sizes 64 B to 4 KB), so every run
and both builders read the same bytes.  ``touch_one_file(context, generation)`` changes one of them, as a
developer's one-line edit before the warm rebuild.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

WORKLOADS = Path(__file__).resolve().parent
FILES_PER_DIR = 100
CHANGED_FILE = "src/d01/f0042.txt"


def _content(index: int) -> bytes:
    # A hash chain gives text that gzip cannot shrink to nothing, like real source files, without randomness.
    seed = hashlib.sha256(str(index).encode()).hexdigest()
    size = 64 + int(seed[:4], 16) % 4032
    return (seed * (size // len(seed) + 1))[:size].encode()


def many_files_context(dest: Path, files: int) -> Path:
    """Creates `dest` with the many-files Dockerfile and `files` source files; returns `dest`."""
    dest.mkdir(parents=True)
    shutil.copy(WORKLOADS / "many-files" / "Dockerfile", dest / "Dockerfile")
    for index in range(files):
        directory = dest / "src" / f"d{index // FILES_PER_DIR:02d}"
        if index % FILES_PER_DIR == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index % FILES_PER_DIR:04d}.txt").write_bytes(_content(index))
    return dest


def touch_one_file(context: Path, generation: int) -> Path:
    """Rewrites one context file with content unique to `generation`; returns its path."""
    path = context / CHANGED_FILE
    path.write_bytes(path.read_bytes() + f"edit {generation}\n".encode())
    return path
