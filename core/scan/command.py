"""`dockyard scan SOURCE`: the vulnerability report of an image (a registry reference, oci:DIR, docker-archive:FILE)
as a table or as JSON; the gate (--fail-on-vuln) decides the exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Mapping

from ..errors import OutputError, UsageError
from ..files import replace_file
from ..image.model import Platform
from .model import ScanReport, report_to_json
from .settings import ScanSettings


def run_scan(source: str, *, settings: ScanSettings, output_format: str, output: str | None, platform: str | None,
             environ: Mapping[str, str], cache_dir: Path | None = None,
             insecure_registries: tuple[str, ...] = ()) -> int:
    from ..options import default_cache_root
    from ..sbom.catalog import catalog
    from ..sbom.command import host_platform
    from ..sbom.record_cache import LayerRecordCache, records_dir
    from ..sbom.source import open_image
    from .database import open_database
    from .ignores import load_ignore_file
    from .matching import ecosystems_needed
    from .scanner import check_gate, database_lines, scan_catalog, write_scan_reports

    try:
        chosen = Platform.parse(platform) if platform else host_platform()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cache_root = cache_dir or default_cache_root(dict(environ))
    ignores = load_ignore_file(settings.ignore_file) if settings.ignore_file else ()
    records = LayerRecordCache(records_dir(cache_root))
    with open_image(source, platform=chosen, environ=environ, insecure_registries=insecure_registries) as opened:
        made = catalog(opened.image, opened.blobs, name=opened.name, digest=opened.digest, records=records)
    database = open_database(ecosystems_needed([made]), cache_root=cache_root, db=settings.db, url=settings.db_url,
                             notify=lambda text: print(f"warning: {text}", file=sys.stderr))
    report = scan_catalog(made, database, settings, image=source, ignores=ignores)
    for line in database_lines(report):
        print(line, file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    write_scan_reports([report], settings.reports)
    text = json.dumps(report_to_json(report), indent=2) + "\n" if output_format == "json" else table(report)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            replace_file(Path(output), text.encode())
        except OSError as exc:
            raise OutputError(f"cannot write the scan result to {output}: {exc.strerror}") from None
    check_gate([report], settings.fail_on)
    return 0


def table(report: ScanReport) -> str:
    """PACKAGE VERSION ADVISORY SEVERITY FIXED LAYER, most severe first, as Trivy's table lists them."""
    from .scanner import summary

    rows = [("PACKAGE", "VERSION", "ADVISORY", "SEVERITY", "FIXED", "ALIASES", "FROM")]
    for v in report.vulnerabilities:
        origin = ""
        if v.origin is not None:
            origin = f"layer {v.origin.layer_position + 1}"
            if v.origin.file and v.origin.line:
                origin = f"{v.origin.file}:{v.origin.line}"
            elif v.origin.instruction:
                origin += f" {v.origin.instruction[:40]}"
        score = f" {v.cvss_score:.1f}" if v.cvss_score is not None else ""
        rows.append((v.package, v.version, v.advisory, v.severity.value.upper() + score, v.fixed_version or "-",
                     ",".join(v.aliases[:2]), origin))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    tail = [summary(report)]
    tail += [f"ignored: {i.vulnerability.package} {i.vulnerability.advisory}: {i.reason}" for i in report.ignored]
    tail += [f"expired ignore entry: {e.advisory} ({e.file}:{e.line}, expired {e.expired})"
             for e in report.expired_ignores]
    if len(rows) == 1:
        lines = []
    return "\n".join([*lines, *tail]) + "\n"


