"""How messages and findings name a file: relative to the working directory when it is below it, as the user
most likely typed it."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else as given."""
    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("..") else str(path)
    except ValueError:
        return str(path)
