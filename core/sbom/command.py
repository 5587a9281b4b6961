"""`dockyard sbom SOURCE`: the SBOM of an image as SPDX 2.3 JSON, CycloneDX 1.5 JSON or a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

from ..errors import OutputError, UsageError
from ..files import replace_file
from ..image.model import Platform
from .catalog import catalog
from .model import Catalog

FORMATS = ("spdx-json", "cyclonedx-json", "table")


def host_platform() -> Platform:
    """The platform an image index is resolved to without --platform: this machine's, as docker does."""
    import platform

    return Platform.parse(platform.machine().lower() or "amd64")


def run_sbom(source: str, *, output_format: str, output: str | None, platform: str | None,
             environ: Mapping[str, str], insecure_registries: tuple[str, ...] = ()) -> int:
    from .document import creation_time
    from .source import open_image

    if output_format not in FORMATS:
        raise UsageError(f"unknown SBOM format {output_format!r}", hint=f"use one of {', '.join(FORMATS)}")
    try:
        chosen = Platform.parse(platform) if platform else host_platform()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    created = creation_time(environ)
    from ..options import default_cache_root
    from .record_cache import LayerRecordCache, records_dir

    # The layers' records are shared with builds' --sbom: a base layer either has read is not read again.
    records = LayerRecordCache(records_dir(default_cache_root(dict(environ))))
    with open_image(source, platform=chosen, environ=environ, insecure_registries=insecure_registries) as opened:
        result = catalog(opened.image, opened.blobs, name=opened.name, digest=opened.digest, records=records)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = render(result, output_format, created=created)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        replace_file(Path(output), text.encode())
    except OSError as exc:
        raise OutputError(f"cannot write the SBOM to {output}: {exc.strerror}") from None
    return 0


def render(result: Catalog, output_format: str, *, created: Any) -> str:
    if output_format == "spdx-json":
        from .spdx import spdx_document

        return json.dumps(spdx_document(result, created=created), indent=2, ensure_ascii=False) + "\n"
    if output_format == "cyclonedx-json":
        from .cyclonedx import cyclonedx_document

        return json.dumps(cyclonedx_document(result, created=created), indent=2, ensure_ascii=False) + "\n"
    return table(result)


def table(result: Catalog) -> str:
    """NAME VERSION TYPE LAYER, as syft's table lists packages (plus the layer that added each)."""
    rows = [("NAME", "VERSION", "TYPE", "LAYER")]
    for package in result.packages:
        layer = f"{package.layer.position + 1} {package.layer.digest[7:19]}" if package.layer is not None else ""
        rows.append((package.name, package.version, package.kind, layer))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
             for row in rows]
    distro = result.distro
    head = f"{result.image_name or result.image_digest} ({result.platform})"
    if distro is not None:
        head += f": {distro.pretty_name or distro.id}"
    return "\n".join([head, *(l.rstrip() for l in lines), f"{len(result.packages)} packages"]) + "\n"
