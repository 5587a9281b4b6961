"""A scan: an image's catalog matched against the database, the ignore file and --ignore-unfixed applied, into a
ScanReport; the gate (--fail-on-vuln) over the reports; the report files written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import OutputError, VulnerabilitiesFound
from ..files import replace_file
from ..sbom.model import Catalog, Package
from .database import Database
from .ignores import IgnoreEntry, apply_ignores
from .matching import match, targets
from .model import IgnoredVulnerability, Origin, ScanReport, VulnSeverity
from .settings import ScanReportSpec, ScanSettings


def history_origin(package: Package) -> Origin | None:
    """Where a package came in, as the image alone tells: its layer and that layer's history entry."""
    layer = package.layer
    if layer is None:
        return None
    return Origin(layer_digest=layer.digest, layer_position=layer.position, instruction=layer.created_by)


def scan_catalog(catalog: Catalog, database: Database, settings: ScanSettings, *, image: str,
                 ignores: tuple[IgnoreEntry, ...] = (), today: dt.date | None = None,
                 origin: Callable[[Package], Origin | None] = history_origin) -> ScanReport:
    found, warnings = match(catalog, database, origin)
    judged = apply_ignores(found, ignores, ignore_unfixed=settings.ignore_unfixed,
                           today=today or dt.datetime.now(dt.UTC).date())
    return ScanReport(
        image=image, digest=catalog.image_digest, platform=catalog.platform,
        distro=catalog.distro.purl_distro if catalog.distro is not None else None,
        packages=len(targets(catalog)[0]), vulnerabilities=judged.kept,
        ignored=tuple(IgnoredVulnerability(v, reason) for v, reason in judged.ignored),
        expired_ignores=judged.expired, databases=database.infos,
        warnings=tuple(dict.fromkeys([*database.warnings, *warnings,
                                      *(f"{e.file}:{e.line}: the ignore entry for {e.advisory} expired on "
                                        f"{e.expired}: it no longer hides it" for e in judged.expired)])))


def failing(reports: Iterable[ScanReport], fail_on: str) -> list[tuple[ScanReport, int]]:
    """The reports with vulnerabilities at or above `fail_on`, and how many ("none": never)."""
    if fail_on == "none":
        return []
    threshold = VulnSeverity(fail_on)
    counted = [(r, sum(v.severity >= threshold for v in r.vulnerabilities)) for r in reports]
    return [(r, n) for r, n in counted if n]


def check_gate(reports: Sequence[ScanReport], fail_on: str) -> None:
    """Raises VulnerabilitiesFound naming the worst vulnerabilities when any is at or above `fail_on`."""
    failed = failing(reports, fail_on)
    if not failed:
        return
    threshold = VulnSeverity(fail_on)
    worst = sorted((v for r, _ in failed for v in r.vulnerabilities if v.severity >= threshold),
                   key=lambda v: v.sort_key)
    shown = list(dict.fromkeys(
        f"{v.package} {v.version}: {v.advisory} ({v.severity.value}"
        + (f", fixed in {v.fixed_version})" if v.fixed_version else ", no fix yet)")
        + (f" from {v.origin.file}:{v.origin.line}" if v.origin and v.origin.file and v.origin.line else "")
        for v in worst))
    more = f"\n  ... and {len(shown) - 10} more" if len(shown) > 10 else ""
    total = sum(n for _, n in failed)
    raise VulnerabilitiesFound(
        f"the scan found {total} vulnerabilit{'y' if total == 1 else 'ies'} at or above {fail_on}",
        subject=", ".join(dict.fromkeys(r.image for r, _ in failed)),
        details="\n".join(f"  {line}" for line in shown[:10]) + more,
        hint="upgrade the packages to their fixed versions (or a newer base image), set aside what does not apply "
             "in --vuln-ignore-file with a reason and an expiry date, or raise --fail-on-vuln",
        reports=tuple(reports))


def write_scan_reports(reports: Sequence[ScanReport], specs: Iterable[ScanReportSpec]) -> None:
    from .reports import render_scan

    for spec in specs:
        try:
            Path(spec.path).parent.mkdir(parents=True, exist_ok=True)
            replace_file(Path(spec.path), render_scan(reports, spec.format).encode())
        except OSError as exc:
            raise OutputError(f"cannot write the {spec.format} scan report {spec.path}: {exc.strerror}",
                              subject=str(spec.path)) from None


def summary(report: ScanReport) -> str:
    """One line: what was scanned and how many of each severity."""
    counts = report.counts()
    parts = ", ".join(f"{counts[s]} {s.value}" for s in VulnSeverity if counts[s])
    total = len(report.vulnerabilities)
    hidden = f"; {len(report.ignored)} ignored" if report.ignored else ""
    return (f"scan of {report.image} ({report.platform}): {report.packages} packages, {total} "
            f"vulnerabilit{'y' if total == 1 else 'ies'}{f' ({parts})' if parts else ''}{hidden}")


def database_lines(report: ScanReport, now: dt.datetime | None = None) -> list[str]:
    """Each database read, with its age."""
    now = now or dt.datetime.now(dt.UTC)
    lines = []
    for info in report.databases:
        try:
            age = now - dt.datetime.fromisoformat(info.fetched)
            hours = int(age.total_seconds() // 3600)
            told = f"{hours // 24} days old" if hours >= 48 else f"{hours} hours old"
        except ValueError:
            told = "age unknown"
        name = "OSV records" if info.ecosystem == "*" else f"{info.ecosystem} advisories"
        lines.append(f"vulnerability database: {info.records} {name} from {info.source}, fetched {info.fetched} "
                     f"({told})")
    return lines
