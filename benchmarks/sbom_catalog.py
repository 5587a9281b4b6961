"""The cost of an image's package catalog (core/sbom/catalog.py) on a Debian image with a real dpkg database.

    .venv/bin/python benchmarks/sbom_catalog.py [--runs 5] [--packages 100]

The image: the Debian base of tests/support/debian_base.py (this host's dash, coreutils, findutils and python3
with their libraries: ~69 MB in one layer, ~26 MB gzip-compressed) with /var/lib/dpkg/status holding the first
--packages installed stanzas of this host's own dpkg status, their /usr/share/doc/PKG/copyright files and
/etc/os-release; plus a second layer rewriting the status with one package upgraded (what `apt-get upgrade`
leaves), so that the layer attribution's second parse is counted. Times `catalog()` (the layers streamed from the
blob store, nothing unpacked) and the SPDX document, and prints the medians; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockyard.image.blobs import BlobStore
from dockyard.image.model import OCI_LAYER_GZIP, Descriptor, HistoryEntry, Image, Layer
from dockyard.sbom.catalog import catalog
from dockyard.sbom.spdx import spdx_document
from tests.support.debian_base import debian_python_layer
from tests.support.sbom_images import LayerTar


def host_stanzas(count: int) -> list[str]:
    text = Path("/var/lib/dpkg/status").read_text()
    stanzas = [s.strip("\n") for s in text.split("\n\n") if "Status: install ok installed" in s]
    return stanzas[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="print a profile of one catalog instead")
    args = parser.parse_args()
    stanzas = host_stanzas(args.packages)
    names = [s.split("\n", 1)[0].removeprefix("Package: ") for s in stanzas]
    copyrights = [f"/usr/share/doc/{n}/copyright" for n in names if Path(f"/usr/share/doc/{n}/copyright").is_file()]
    status = ("\n\n".join(stanzas) + "\n").encode()
    base = debian_python_layer(files=(("/var/lib/dpkg/status", status, 0o644),
                                      ("/etc/os-release", Path("/usr/lib/os-release").read_bytes(), 0o644)),
                               host_paths=tuple(copyrights))
    upgrade = LayerTar()
    upgraded = stanzas[0].replace("\nVersion: ", "\nVersion: 99:", 1)
    upgrade.file("var/lib/dpkg/status", ("\n\n".join([upgraded, *stanzas[1:]]) + "\n").encode())
    second = upgrade.finish()
    with tempfile.TemporaryDirectory() as directory:
        store = BlobStore(directory)
        image = Image()
        for blob, diff_id, created_by in ((base.blob, base.diff_id, "debian base"),
                                          (second.blob, second.diff_id, "RUN apt-get upgrade")):
            layer = Layer(Descriptor(OCI_LAYER_GZIP, store.put_bytes(blob), len(blob)), diff_id)
            image = image.with_layer(layer, HistoryEntry(created_by))
        uncompressed = len(gzip.decompress(base.blob))
        print(f"image: {len(names)} dpkg packages, {len(copyrights)} copyright files, layer 1 "
              f"{uncompressed / 1e6:.0f} MB ({len(base.blob) / 1e6:.0f} MB compressed)")
        catalog_times, spdx_times = [], []
        if "--profile" in sys.argv[1:]:
            import cProfile
            cProfile.runctx("catalog(image, store)", globals(), locals(), sort="cumtime")
            return
        for _ in range(args.runs):
            start = time.perf_counter()
            result = catalog(image, store)
            catalog_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            spdx_document(result, created=dt.datetime.now(dt.UTC))
            spdx_times.append(time.perf_counter() - start)
        assert len(result.packages) == len(names), (len(result.packages), len(names))
        print(f"catalog: {statistics.median(catalog_times) * 1000:.0f} ms (median of {args.runs}); "
              f"SPDX document: {statistics.median(spdx_times) * 1000:.1f} ms; "
              f"licenses found for {sum(1 for p in result.packages if p.licenses)} packages")


if __name__ == "__main__":
    main()
