"""The SBOM's reading of base image layers, started as soon as a base is pulled and done on a thread of its own while
the build's steps run: when the build ends, the base layers' records (sbom/record_cache.py) are there and the SBOM
reads only the layers the build made, and those too are read as the steps make them. A base layer a step unpacks
(cache/layers.py) is recorded from that unpacking's tar stream (one decompression of the layer, not two); the thread
reads a base layer itself only once the build is past unpacking it without a record (or the steps are done). Each
base is then catalogued on that thread too, which leaves in the build's CatalogMemo what the final image's catalog
would otherwise compute after the steps (its package databases parsed, its copyright files' licenses, its package
URLs, its packages' SPDX entries), and the modules the attestations are made with are imported there first. A
failure here is ignored: the SBOM reads the layer itself then, and reports what is wrong with it."""

from __future__ import annotations

import tarfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..image.blobs import BlobStore
from ..image.model import Image, Layer
from ..sbom.layers import LayerInfo, LayerRecord


class LayerPrefetch:
    """Records each pulled image's layers that the record cache lacks, one layer at a time."""

    def __init__(self, cache_root: Path, store: BlobStore):
        from ..sbom.catalog import CatalogMemo
        from ..sbom.record_cache import LayerRecordCache, records_dir

        self.records = LayerRecordCache(records_dir(cache_root), keep=True)
        self.memo = CatalogMemo()
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sbom-prefetch")
        self._started: dict[str, Future[None]] = {}
        self._catalogued: set[str] = set()
        self._unpacks_over: set[str] = set()  # diff_ids whose unpacking (recorded or not) is over
        self._unpacked_records: dict[str, LayerRecord] = {}  # made while unpacking, not yet in the cache
        self._changed = threading.Condition()
        self._steps_done = False
        self._pool.submit(_import_attestation_modules)

    def observer(self, layer: Layer) -> _RecordingUnpack:
        """LayerCache's observer of the unpacking of `layer`: its record made from the unpacked tar."""
        return _RecordingUnpack(self, layer)

    def _unpack_over(self, layer: Layer, record: LayerRecord | None) -> None:
        with self._changed:
            if record is not None:  # stored (compressed, written) by the prefetch thread, not the step's
                self._unpacked_records[layer.diff_id] = record
            self._unpacks_over.add(layer.diff_id)
            self._changed.notify_all()

    def _wait_for_unpack(self, diff_id: str) -> None:
        """Until the build has unpacked the layer (its record made there) or the steps are done."""
        with self._changed:
            self._changed.wait_for(lambda: self._steps_done or diff_id in self._unpacks_over)

    def add(self, image: Image) -> None:
        from ..sbom.layers import layer_infos

        for info, layer in zip(layer_infos(image), image.layers):
            if layer.diff_id not in self._started:
                self._started[layer.diff_id] = self._pool.submit(self._record, layer, info)
        chain = tuple(layer.diff_id for layer in image.layers)
        if str(chain) not in self._catalogued:
            self._catalogued.add(str(chain))
            self._pool.submit(self._catalog, image)

    def built(self, layer: Layer) -> None:
        """A layer of the final image a step has just made: recorded while the next steps run."""
        if layer.diff_id not in self._started:
            self._started[layer.diff_id] = self._pool.submit(self._record_built, layer)

    def _record_built(self, layer: Layer) -> None:
        from ..sbom.catalog import wanted
        from ..sbom.layers import read_layer

        if self.records.get(layer.diff_id) is not None or not self._store.has(layer.digest):
            return
        try:  # its position and history are only named in errors, which the final image's SBOM reports itself
            self.records.put(layer.diff_id, read_layer(layer, LayerInfo(0, layer.digest, layer.diff_id, ""),
                                                       self._store, wanted))
        except Exception:
            return

    def _catalog(self, image: Image) -> None:
        from ..sbom.catalog import catalog
        from ..sbom.spdx import prepare_packages

        try:
            prepare_packages(catalog(image, self._store, records=self.records, memo=self.memo))
        except Exception:  # the final image's catalog meets the same problem and reports it
            return

    def _record(self, layer: Layer, info: LayerInfo) -> None:
        from ..sbom.catalog import wanted
        from ..sbom.layers import read_layer

        if self.records.get(layer.diff_id) is not None:
            return
        self._wait_for_unpack(layer.diff_id)
        with self._changed:
            made = self._unpacked_records.pop(layer.diff_id, None)
        if made is not None:
            self.records.put(layer.diff_id, made)
            return
        if self.records.get(layer.diff_id) is not None or not self._store.has(layer.digest):
            return
        try:
            self.records.put(layer.diff_id, read_layer(layer, info, self._store, wanted))
        except Exception:  # the SBOM reads the layer again and reports the problem itself
            return

    def steps_done(self) -> None:
        with self._changed:
            self._steps_done = True
            self._changed.notify_all()

    def finish(self) -> None:
        """Waits for the layers under way (the SBOM is made next)."""
        self.steps_done()
        self._pool.shutdown(wait=True)
        for diff_id, record in self._unpacked_records.items():  # layers no base pull named (none, usually)
            self.records.put(diff_id, record)
        self._unpacked_records.clear()

    def cancel(self) -> None:
        self.steps_done()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _RecordingUnpack:
    """The record of one layer made as LayerCache unpacks it; handed to the prefetch once the layer matched its
    diff_id. Whatever happens, the prefetch hears that the unpacking is over."""

    def __init__(self, prefetch: LayerPrefetch, layer: Layer):
        from ..sbom.catalog import wanted
        from ..sbom.layers import UnpackRecorder

        self._prefetch = prefetch
        self._layer = layer
        self._recorder = UnpackRecorder(wanted)
        self._verified = False

    def member(self, member: tarfile.TarInfo, written: str | None) -> None:
        self._recorder.member(member, written)

    def verified(self) -> None:
        self._verified = True

    def close(self) -> None:
        self._prefetch._unpack_over(self._layer, self._recorder.record if self._verified else None)


def _import_attestation_modules() -> None:
    """What attest/build.py imports when the steps are done, imported while they run (a tenth of a second; build.py
    itself is left to the builder: it names this module, and this one naming it would make an import cycle)."""
    from . import compose, provenance, records  # noqa: F401
    from ..sbom import spdx  # noqa: F401
