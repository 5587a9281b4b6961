"""The vulnerability scan part of a build request, and of its result: what an adapter's `scan`, `fail-on-vuln`,
`ignore-unfixed`, `vuln-ignore-file`, `vuln-db` and `vuln-db-url` inputs become on `dockyard build` (`--scan`,
`--fail-on-vuln`, ...), the scan reports dockyard writes for the CI (`--scan-report FORMAT=FILE`), and the scan
results read back (the `--scan-report json=` file, else the metadata file's `dockyard.scan`) for the job summary,
the log and the merge-request note.

Values are checked here, before dockyard runs, so a typo is an error naming the input rather than a build whose
gate silently lets everything through."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import UsageError
from dockyard import ScanReport, VulnSeverity, report_from_json

from .supplychain import FALSE_WORDS, TRUE_WORDS

# `--fail-on-vuln`'s levels, most severe first: `high` fails on high and critical; `none` never fails.
FAIL_ON_VULN_LEVELS = ("critical", "high", "medium", "low", "none")
METADATA_KEY = "dockyard.scan"


@dataclass(frozen=True)
class ScanRequest:
    """How the adapter asks dockyard to scan the image it builds, and where the reports go."""

    fail_on_vuln: str = ""  # one of FAIL_ON_VULN_LEVELS; "" for dockyard's default (report, never fail)
    ignore_unfixed: bool = False
    ignore_file: str = ""  # Trivy's .trivyignore.yaml shape: id, reason, expired_at per entry
    database: str = ""  # --vuln-db DIR|ZIP (an air-gapped runner's copy of osv.dev's archives)
    database_url: str = ""  # --vuln-db-url (a mirror of osv.dev's archives)
    reports: tuple[tuple[str, Path], ...] = ()  # (format, file): json, sarif, gitlab, jenkins, markdown

    def arguments(self) -> list[str]:
        args = ["--scan"]
        if self.fail_on_vuln:
            args += ["--fail-on-vuln", self.fail_on_vuln]
        if self.ignore_unfixed:
            args.append("--ignore-unfixed")
        if self.ignore_file:
            args += ["--vuln-ignore-file", self.ignore_file]
        if self.database:
            args += ["--vuln-db", self.database]
        if self.database_url:
            args += ["--vuln-db-url", self.database_url]
        for fmt, path in self.reports:
            args += ["--scan-report", f"{fmt}={path}"]
        return args


def scan_enabled(text: str, *, subject: str = "input scan") -> bool:
    value = text.strip().lower()
    if value in ("", *FALSE_WORDS):
        return False
    if value in TRUE_WORDS:
        return True
    raise UsageError(f"{text.strip()!r} is not true or false", subject=subject,
                     hint="true scans the built image's packages against OSV's advisories")


def fail_on_vuln_level(text: str, *, subject: str = "input fail-on-vuln") -> str:
    """The level (any case), "" when not given, or a UsageError naming `subject`."""
    value = text.strip().lower()
    if value and value not in FAIL_ON_VULN_LEVELS:
        raise UsageError(f"unknown level {text.strip()!r}", subject=subject,
                         hint="the least severity of a vulnerability that fails the build: one of "
                              + ", ".join(FAIL_ON_VULN_LEVELS))
    return value


def input_subject(name: str) -> str:
    """How the GitHub Action and the GitLab component name an input in an error: `input fail-on-vuln`."""
    return f"input {name}"


def scan_request(*, scan: bool, fail_on_vuln: str = "", ignore_unfixed: bool = False, ignore_file: str = "",
                 database: str = "", database_url: str = "", reports: tuple[tuple[str, Path], ...] = (),
                 subject: Callable[[str], str] = input_subject) -> ScanRequest | None:
    """The request the inputs make; None without `scan`. A scan setting given without `scan: true` is an error
    naming it (`subject` turns an input's name into the adapter's own spelling): the user asked for a gate that
    would not be there."""
    settings = {"fail-on-vuln": fail_on_vuln, "ignore-unfixed": "true" if ignore_unfixed else "",
                "vuln-ignore-file": ignore_file, "vuln-db": database, "vuln-db-url": database_url}
    if not scan:
        for name, value in settings.items():
            if value:
                raise UsageError(f"{subject(name)} is set and scan is not", subject=subject(name),
                                 hint="set scan: true to scan the built image (or leave the scan settings out)")
        return None
    if database and database_url:
        raise UsageError(f"{subject('vuln-db')} and {subject('vuln-db-url')} are both set", subject=subject("vuln-db"),
                         hint="vuln-db names a copy on the runner (no download), vuln-db-url a mirror to "
                              "download from: give one")
    return ScanRequest(fail_on_vuln=fail_on_vuln_level(fail_on_vuln, subject=subject("fail-on-vuln")),
                       ignore_unfixed=ignore_unfixed,
                       ignore_file=ignore_file.strip(), database=database.strip(),
                       database_url=database_url.strip(), reports=reports)


# --- the results ------------------------------------------------------------------------------------------------

def read_scan_reports(json_report: Path | None, metadata: Mapping[str, Any] | None) -> list[ScanReport]:
    """The scan's reports: the `--scan-report json=` file (written even when the gate failed the build), else
    the metadata's `dockyard.scan`; [] when there was no scan."""
    if json_report is not None:
        try:
            return [report_from_json(entry) for entry in json.loads(json_report.read_text())["reports"]]
        except FileNotFoundError:
            pass
    return [report_from_json(entry) for entry in (metadata or {}).get(METADATA_KEY) or []]


def total_counts(reports: list[ScanReport]) -> dict[VulnSeverity, int]:
    """Vulnerabilities per severity over the reports, each (package, advisory) once however many platforms."""
    seen: dict[tuple[str, str, str], VulnSeverity] = {}
    for report in reports:
        for vulnerability in report.vulnerabilities:
            seen[(vulnerability.advisory, vulnerability.package, vulnerability.version)] = vulnerability.severity
    counts = dict.fromkeys(VulnSeverity, 0)
    for severity in seen.values():
        counts[severity] += 1
    return counts


def counts_text(counts: Mapping[VulnSeverity, int]) -> str:
    """`1 critical, 2 high, 0 medium, 0 low` (unknown only when there are some)."""
    return ", ".join(f"{count} {severity.value}" for severity, count in counts.items()
                     if severity is not VulnSeverity.UNKNOWN or count)


def scan_lines(reports: list[ScanReport]) -> list[str]:
    """One line per scanned platform: `linux/amd64: 142 packages, 1 critical, 1 high, 0 medium, 0 low`."""
    return [f"{report.platform}: {report.packages} packages, {counts_text(report.counts())}"
            + (f", {len(report.ignored)} ignored" if report.ignored else "") for report in reports]
