"""The SBOM's per-layer cache: what each layer does to the files a catalog reads (layers.LayerRecord), kept by
diff_id under the cache directory (CACHE_ROOT/sbom/layers), so that the layers of a base image are read once
per machine rather than on every build with --sbom. `dockyard cache prune` removes records not used for the
given time (a record's mtime is its last use), `--all` every record.

A record is stored as zlib-compressed JSON (file contents base64), written whole under a temporary name and
renamed into place, so a reader sees a whole record or none; one that cannot be read is read from the layer
again."""

from __future__ import annotations

import base64
import json
import os
import zlib
from pathlib import Path

from .layers import FILE, LayerRecord

# Bumped when what a catalog reads (catalog.wanted) or the record format changes: older records go unused.
RECORD_VERSION = "1"
CACHE_DIR = Path("sbom") / "layers"


def records_dir(cache_root: Path) -> Path:
    return cache_root / CACHE_DIR


class LayerRecordCache:
    """LayerRecords kept in `directory`, one file per diff_id. Failures to write are ignored: the cache is an
    optimization, never a reason for an SBOM to fail."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, diff_id: str) -> Path:
        algorithm, _, hex_digest = diff_id.partition(":")
        return self.directory / f"{algorithm}-{hex_digest}.v{RECORD_VERSION}"

    def get(self, diff_id: str) -> LayerRecord | None:
        path = self._path(diff_id)
        try:
            data = json.loads(zlib.decompress(path.read_bytes()))
            os.utime(path)  # its last use, for `dockyard cache prune --older-than`
        except (OSError, ValueError, zlib.error):
            return None
        return [(e[0], e[1], base64.b64decode(e[2]) if e[0] == FILE else e[2]) if len(e) == 3 else (e[0], e[1])
                for e in data]

    def put(self, diff_id: str, record: LayerRecord) -> None:
        encoded = [[e[0], e[1], base64.b64encode(e[2]).decode() if e[0] == FILE else e[2]] if len(e) == 3
                   else [e[0], e[1]] for e in record]
        path = self._path(diff_id)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(zlib.compress(json.dumps(encoded, separators=(",", ":")).encode(), 1))
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)
