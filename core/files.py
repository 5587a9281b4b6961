"""Writing a file so that readers see the old content or the new, never half of either."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

_COPY_CHUNK = 1 << 20


def replace_file(path: Path, data: bytes | BinaryIO, mode: int = 0o644, *, sync: bool = False) -> None:
    """Write `data` (bytes, or a stream read to its end) to a temporary file next to `path`, then rename it over
    `path` (atomic on one filesystem; a unique temporary name, so concurrent writers never share one). `sync`
    flushes it to disk first, for files whose loss would hurt (credentials). Raises OSError; the temporary file
    never stays behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, _COPY_CHUNK)
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
