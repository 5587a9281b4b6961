"""BUILDKIT_SBOM_SCAN_CONTEXT=true: the build context's own package manifests in the SBOM, as BuildKit's scanner
adds the context it was sent: the files a catalog reads (Python distributions' METADATA, node_modules'
package.json, package databases, os-release), found in the context as COPY sees it (.dockerignore applied),
cataloged as if the context were one layer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from ..context import BuildContext, DockerIgnore
from ..image.model import Descriptor, HistoryEntry, Image, Layer, sha256_digest
from ..sbom.catalog import catalog, wanted
from ..sbom.layers import FILE, MAX_FILE_SIZE, SYMLINK, LayerRecord
from ..sbom.model import Catalog

_SKIPPED_DIRS = frozenset({".git"})


class _OneRecord:
    """LayerRecords holding the context's record (nothing is cached: the context changes build to build)."""

    def __init__(self, record: LayerRecord):
        self._record = record

    def get(self, diff_id: str) -> LayerRecord | None:
        return self._record

    def put(self, diff_id: str, record: LayerRecord) -> None:
        pass


def context_record(context: Path, dockerfile: Path) -> LayerRecord:
    """The wanted files of the context, .dockerignore applied, as a layer record."""
    visible = BuildContext(context, DockerIgnore.load(context, dockerfile))
    record: LayerRecord = []
    for top, dirs, files in os.walk(visible.root):
        # A directory .dockerignore hides is still walked when an exception could bring something inside back.
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS
                         and (visible.visible(os.path.join(top, d)) or visible.walk_into(os.path.join(top, d))))
        for name in sorted(files):
            path = os.path.join(top, name)
            rel = visible.rel(path)
            if not wanted(rel) or not visible.visible(path):
                continue
            if os.path.islink(path):
                record.append((SYMLINK, rel, os.readlink(path)))
            elif os.path.isfile(path) and os.path.getsize(path) <= MAX_FILE_SIZE:
                with open(path, "rb") as f:
                    record.append((FILE, rel, f.read()))
    return record


def context_catalog(context: Path, dockerfile: Path, name: str) -> Catalog:
    """The catalog of the context's package manifests, named `name`."""
    record = context_record(context, dockerfile)
    marker = sha256_digest(repr([(e[0], e[1]) for e in record]).encode())
    layer = Layer(Descriptor("application/vnd.oci.image.layer.v1.tar", marker, 0), marker)
    image = Image(layers=(layer,), history=(HistoryEntry("the build context"),))
    return catalog(image, _NoBlobs(), name=name, digest=marker, records=_OneRecord(record))


class _NoBlobs:
    """The context has no layer blob: its record is all there is."""

    def open(self, digest: str) -> BinaryIO:
        raise FileNotFoundError(digest)
