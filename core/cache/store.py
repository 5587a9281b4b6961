"""The step cache: CACHE_ROOT/steps/<key hex>.json, one entry per step result.

An entry records the step's layer (descriptor and diff_id: the blob itself stays in the blob store), its history
entry and the image config after it. Entries are written to a temporary file and renamed into place, so a
reader sees a whole entry or none, and two builds writing the same key write the same content. The last use
is the entry file's mtime (touched on every hit); --cache-ttl is measured from when the entry was made.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..files import replace_file
from ..image.blobs import BlobStore
from ..image.model import Descriptor, HistoryEntry, Layer


@dataclass(frozen=True)
class StepEntry:
    """A step cache entry: under the step's key, the layer it made, its history entry and the image config after it."""

    key: str
    layer: Layer | None  # None: the step changed no file (e.g. a WORKDIR that already existed)
    history: HistoryEntry | None
    config: dict[str, Any]
    created: float
    instruction: str = ""

    def to_json(self) -> dict[str, Any]:
        layer = None if self.layer is None else {"mediaType": self.layer.media_type, "digest": self.layer.digest,
                                                   "size": self.layer.size, "diff_id": self.layer.diff_id}
        return {"key": self.key, "created": self.created, "instruction": self.instruction, "layer": layer,
                "history": self.history.to_json() if self.history else None, "config": self.config}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StepEntry:
        layer = doc.get("layer")
        return cls(key=doc["key"], created=float(doc["created"]), instruction=doc.get("instruction", ""),
                   layer=None if layer is None else Layer(Descriptor(layer["mediaType"], layer["digest"],
                                                                     int(layer["size"])), layer["diff_id"]),
                   history=HistoryEntry.from_json(doc["history"]) if doc.get("history") else None,
                   config=doc.get("config") or {})


class StepCache:
    def __init__(self, root: Path, *, ttl: float | None = None):
        self.root = Path(root)
        self.ttl = ttl

    def _path(self, key: str) -> Path:
        return self.root / (key.partition(":")[2] + ".json")

    def lookup(self, key: str, store: BlobStore) -> StepEntry | None:
        """The entry for `key`, if there is one, younger than the TTL, whose layer blob is still in `store`."""
        path = self._path(key)
        try:
            entry = StepEntry.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no entry, or one cut short by a crash before the rename (never: it is atomic)
        if entry.key != key or (self.ttl is not None and time.time() - entry.created > self.ttl):
            return None
        if entry.layer is not None and not store.has(entry.layer.digest):
            return None  # the blob was pruned: the step runs again
        try:
            os.utime(path)  # the last use, for `cache ls` and `cache prune --older-than`
        except OSError:
            pass
        return entry

    def record(self, entry: StepEntry) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        replace_file(self._path(entry.key), json.dumps(entry.to_json(), sort_keys=True).encode(), 0o600)

    def entries(self) -> Iterator[tuple[Path, StepEntry]]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*.json")):
            try:
                yield path, StepEntry.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue


def new_entry(key: str, layer: Layer | None, history: HistoryEntry | None, config: dict[str, Any],
              instruction: str) -> StepEntry:
    return StepEntry(key=key, layer=layer, history=history, config=config, created=time.time(),
                     instruction=instruction)
