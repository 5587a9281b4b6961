"""Writing a small file so that readers see the old content or the new, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes, mode: int = 0o644, *, sync: bool = False) -> None:
    """Write `data` to a temporary file next to `path`, then rename it over `path` (atomic on one filesystem;
    a unique temporary name, so concurrent writers never share one). `sync` flushes it to disk first, for
    files whose loss would hurt (credentials). Raises OSError; the temporary file never stays behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
