"""Vulnerabilities as findings (diagnostics/model.py), so that every findings renderer (GitHub annotations,
GitLab code quality, Warnings NG, SARIF) shows them on the Dockerfile line that brought the package in: the rule
is the advisory, the severity critical/high an error, medium a warning, the rest notes."""

from __future__ import annotations

from typing import Iterable

from ..diagnostics.model import Finding, Severity
from .model import ScanReport, Vulnerability, VulnSeverity

SCAN_SOURCE = "scan"

_LEVELS = {VulnSeverity.CRITICAL: Severity.ERROR, VulnSeverity.HIGH: Severity.ERROR,
           VulnSeverity.MEDIUM: Severity.WARNING, VulnSeverity.LOW: Severity.INFO, VulnSeverity.UNKNOWN: Severity.INFO}


def describe(vulnerability: Vulnerability) -> str:
    """One line: package, version, advisory, severity, fix."""
    names = ", ".join(vulnerability.aliases[:3])
    score = f" {vulnerability.cvss_score:.1f}" if vulnerability.cvss_score is not None else ""
    fix = f"fixed in {vulnerability.fixed_version}" if vulnerability.fixed_version else "no fix yet"
    source = f" (source {vulnerability.source_package})" if vulnerability.source_package else ""
    text = (f"{vulnerability.package} {vulnerability.version}{source} is affected by {vulnerability.advisory}"
            f"{f' ({names})' if names else ''}, {vulnerability.severity.value}{score}: {fix}")
    if vulnerability.summary:
        text += f" - {vulnerability.summary}"
    return text


def vulnerability_finding(vulnerability: Vulnerability, dockerfile: str) -> Finding:
    origin = vulnerability.origin
    file = origin.file if origin is not None and origin.file else dockerfile
    line = origin.line if origin is not None else None
    end_line = origin.end_line if origin is not None else None
    return Finding(rule=vulnerability.advisory, severity=_LEVELS[vulnerability.severity], file=file, line=line,
                   end_line=end_line, message=describe(vulnerability),
                   help_url=vulnerability.links[0] if vulnerability.links else "", source=SCAN_SOURCE)


def scan_findings(reports: Iterable[ScanReport], dockerfile: str) -> list[Finding]:
    """The findings of every report; a vulnerability every platform has is one finding."""
    found: dict[tuple[str, str, int | None, str], Finding] = {}
    for report in reports:
        for vulnerability in report.vulnerabilities:
            finding = vulnerability_finding(vulnerability, dockerfile)
            found.setdefault((finding.rule, finding.file, finding.line, finding.message), finding)
    return sorted(found.values(), key=lambda f: f.sort_key)
