"""Scan reports in the formats CI platforms read (`--scan-report FORMAT=FILE`): json (dockyard's own, what the
metadata file carries), sarif (GitHub code scanning), gitlab (GitLab's container scanning report,
`artifacts:reports:container_scanning`), jenkins (Warnings NG's native JSON) and markdown (the GitHub job summary's
table). Every renderer only reads ScanReports (model.py); one call renders the reports of every platform of a
build, and a vulnerability found on several platforms is one entry where the format tracks it by image."""

from __future__ import annotations

import hashlib
import html
import json
import os
import uuid
from collections.abc import Sequence
from datetime import datetime, UTC
from typing import Any
from urllib.parse import quote

from ..errors import UsageError
from ..version import __version__
from .model import ScanReport, Vulnerability, VulnSeverity, report_to_json

FORMATS = ("json", "sarif", "gitlab", "jenkins", "markdown")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://osv.dev/"
# GitLab's security report schema version the gitlab renderer writes (its `version` field).
GITLAB_SCHEMA_VERSION = "15.2.1"
# How many vulnerabilities the markdown table lists per image: a job summary is at most 1 MiB, and a table of
# hundreds of rows is read by nobody; the rest is counted, and is in the other reports.
MARKDOWN_ROWS = 50

_SARIF_LEVELS = {VulnSeverity.CRITICAL: "error", VulnSeverity.HIGH: "error", VulnSeverity.MEDIUM: "warning",
                 VulnSeverity.LOW: "note", VulnSeverity.UNKNOWN: "note"}
# GitHub code scanning ranks a security rule by `security-severity` (a CVSS-like score: > 9 critical, >= 7 high,
# >= 4 medium, else low); a rule without a CVSS score gets its severity's middle.
_SECURITY_SEVERITY = {VulnSeverity.CRITICAL: 9.5, VulnSeverity.HIGH: 8.0, VulnSeverity.MEDIUM: 5.5,
                      VulnSeverity.LOW: 2.0, VulnSeverity.UNKNOWN: 0.0}
_GITLAB_SEVERITIES = {VulnSeverity.CRITICAL: "Critical", VulnSeverity.HIGH: "High", VulnSeverity.MEDIUM: "Medium",
                      VulnSeverity.LOW: "Low", VulnSeverity.UNKNOWN: "Unknown"}
# Warnings NG's four severities (ERROR, HIGH, NORMAL, LOW): critical is the one that reads as an error.
_JENKINS_SEVERITIES = {VulnSeverity.CRITICAL: "ERROR", VulnSeverity.HIGH: "HIGH", VulnSeverity.MEDIUM: "NORMAL",
                       VulnSeverity.LOW: "LOW", VulnSeverity.UNKNOWN: "LOW"}


def render_scan(reports: Sequence[ScanReport], fmt: str, *, tool_version: str = __version__,
                started: datetime | None = None, finished: datetime | None = None, heading: str = "###") -> str:
    """The reports in `fmt`. `started`/`finished` are the scan's times for the formats that record them (GitLab's);
    now when not given. `heading` is the markdown's heading level for each image (`####` inside a section)."""
    now = datetime.now(UTC)
    renderers = {"json": lambda: _json(reports),
                 "sarif": lambda: _sarif(reports, tool_version),
                 "gitlab": lambda: _gitlab(reports, tool_version, started or now, finished or now),
                 "jenkins": lambda: _jenkins(reports),
                 "markdown": lambda: render_markdown(reports, heading=heading)}
    if fmt not in renderers:
        raise UsageError(f"unknown scan report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    return renderers[fmt]()


def _json(reports: Sequence[ScanReport]) -> str:
    return json.dumps({"reports": [report_to_json(report) for report in reports]}, indent=2) + "\n"


# --- what every format says about a vulnerability ------------------------------------------------------------

def _unique(reports: Sequence[ScanReport]) -> list[tuple[Vulnerability, ScanReport, list[str]]]:
    """Each vulnerability once per image, with the platforms it was found on (most severe first)."""
    seen: dict[tuple[str, ...], tuple[Vulnerability, ScanReport, list[str]]] = {}
    for report in reports:
        for vulnerability in report.vulnerabilities:
            key = (report.image, vulnerability.advisory, vulnerability.package, vulnerability.version)
            if key in seen:
                seen[key][2].append(report.platform)
            else:
                seen[key] = (vulnerability, report, [report.platform])
    return sorted(seen.values(), key=lambda item: (item[0].sort_key, item[1].image))


def title(vulnerability: Vulnerability) -> str:
    """`openssl 3.0.11-1~deb12u1: DSA-5532-1 (CVE-2023-5363), fixed in 3.0.11-1~deb12u2`."""
    aliases = f" ({', '.join(vulnerability.aliases)})" if vulnerability.aliases else ""
    fix = f"fixed in {vulnerability.fixed_version}" if vulnerability.fixed_version else "no fix yet"
    return f"{vulnerability.package} {vulnerability.version}: {vulnerability.advisory}{aliases}, {fix}"


def introduced_by(vulnerability: Vulnerability) -> str:
    """Where the package came in: `Dockerfile:5 (RUN apt-get install ...)`, or the layer."""
    origin = vulnerability.origin
    if origin is None:
        return ""
    if origin.file is not None and origin.line is not None:
        return f"{origin.file}:{origin.line}" + (f" ({origin.instruction})" if origin.instruction else "")
    return f"layer {origin.layer_position + 1}" + (f" ({origin.instruction})" if origin.instruction else "")


def _message(vulnerability: Vulnerability, report: ScanReport, platforms: list[str]) -> str:
    text = f"{title(vulnerability)}; {vulnerability.severity.value} in {report.image} ({', '.join(platforms)})"
    return text + (f": {vulnerability.summary}" if vulnerability.summary else "")


def _fingerprint(vulnerability: Vulnerability, report: ScanReport) -> str:
    """What the vulnerability is and in which image, not where the Dockerfile has it: moving the line keeps it."""
    identity = f"{report.image}\0{vulnerability.advisory}\0{vulnerability.package}\0{vulnerability.version}"
    return hashlib.sha256(identity.encode()).hexdigest()


def _file_and_line(vulnerability: Vulnerability, report: ScanReport) -> tuple[str, int, int]:
    """The Dockerfile line the package came in on; for a package of the base image scanned outside a build (no
    Dockerfile known), the image itself on line 1, as Trivy's SARIF names it."""
    origin = vulnerability.origin
    if origin is not None and origin.file is not None:
        line = origin.line or 1
        return _repo_path(origin.file), line, origin.end_line or line
    return report.image, 1, 1


def _repo_path(file: str) -> str:
    """The file relative to the working directory (the repository's root in CI), with `/` separators."""
    if os.path.isabs(file):
        relative = os.path.relpath(file)
        file = file if relative.startswith("..") else relative
    return file.replace(os.sep, "/")


# --- SARIF (GitHub code scanning) ------------------------------------------------------------------------------

def _sarif(reports: Sequence[ScanReport], tool_version: str) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for vulnerability, report, platforms in _unique(reports):
        score = vulnerability.cvss_score if vulnerability.cvss_score is not None \
            else _SECURITY_SEVERITY[vulnerability.severity]
        rule = rules.get(vulnerability.advisory)
        if rule is None:
            rule = rules[vulnerability.advisory] = {
                "id": vulnerability.advisory,
                "shortDescription": {"text": vulnerability.summary or vulnerability.advisory},
                "helpUri": (vulnerability.links or (f"{INFORMATION_URI}vulnerability/{vulnerability.advisory}",))[0],
                "help": {"text": "\n".join([vulnerability.summary or vulnerability.advisory, *vulnerability.links]),
                         "markdown": _help_markdown(vulnerability)},
                "properties": {"tags": ["security", "vulnerability", vulnerability.severity.value],
                               "security-severity": f"{score:.1f}", "aliases": list(vulnerability.aliases)}}
        elif float(rule["properties"]["security-severity"]) < score:
            rule["properties"]["security-severity"] = f"{score:.1f}"
        file, line, end_line = _file_and_line(vulnerability, report)
        results.append({
            "ruleId": vulnerability.advisory, "level": _SARIF_LEVELS[vulnerability.severity],
            "message": {"text": _message(vulnerability, report, platforms)},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": quote(file, safe="/:@")},
                                                "region": {"startLine": line, "endLine": end_line}}}],
            "partialFingerprints": {"dockyardVulnerabilityHash/v1": _fingerprint(vulnerability, report)},
            "properties": {"package": vulnerability.package, "installedVersion": vulnerability.version,
                           "fixedVersion": vulnerability.fixed_version, "ecosystem": vulnerability.ecosystem,
                           "purl": vulnerability.purl, "image": report.image, "platforms": platforms}})
    rule_index = {rule_id: index for index, rule_id in enumerate(rules)}
    for result in results:
        result["ruleIndex"] = rule_index[str(result["ruleId"])]
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "dockyard", "version": tool_version, "informationUri": INFORMATION_URI,
                            "rules": list(rules.values())}},
        "results": results}]}
    return json.dumps(log, indent=2) + "\n"


def _help_markdown(vulnerability: Vulnerability) -> str:
    lines = [f"**{vulnerability.advisory}**" + (f" ({', '.join(vulnerability.aliases)})"
                                                 if vulnerability.aliases else ""), ""]
    if vulnerability.summary:
        lines += [vulnerability.summary, ""]
    lines += [f"- [{link}]({link})" for link in vulnerability.links]
    return "\n".join(lines)


# --- GitLab container scanning report ------------------------------------------------------------------------

def _gitlab_time(moment: datetime) -> str:
    # The schema's pattern: yyyy-mm-ddThh:mm:ss, UTC, no zone suffix.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _identifier(name: str) -> dict[str, str]:
    """A GitLab identifier: CVE ids as type cve (GitLab links and merges them across scanners), the others by
    their database's prefix."""
    prefix = name.split("-", 1)[0].lower()
    kind = "cve" if prefix == "cve" else "ghsa" if prefix == "ghsa" else prefix or "osv"
    url = (f"https://nvd.nist.gov/vuln/detail/{name}" if kind == "cve" else
           f"https://osv.dev/vulnerability/{quote(name)}")
    return {"type": kind, "name": name, "value": name, "url": url}


def _gitlab(reports: Sequence[ScanReport], tool_version: str, started: datetime, finished: datetime) -> str:
    vulnerabilities = []
    for vulnerability, report, platforms in _unique(reports):
        names = [vulnerability.advisory] + [alias for alias in vulnerability.aliases
                                            if alias != vulnerability.advisory]
        entry: dict[str, Any] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "dockyard:" + _fingerprint(vulnerability, report))),
            "name": f"{vulnerability.advisory} in {vulnerability.package}"[:255],
            "description": (vulnerability.summary or vulnerability.advisory)[:1048576],
            "severity": _GITLAB_SEVERITIES[vulnerability.severity],
            "solution": (f"Upgrade {vulnerability.package} from {vulnerability.version} to "
                         f"{vulnerability.fixed_version}" if vulnerability.fixed_version
                         else f"No fixed version of {vulnerability.package} yet"),
            "identifiers": [_identifier(name) for name in names][:20],
            "links": [{"url": link} for link in vulnerability.links if link.startswith(("http://", "https://"))],
            "location": {"dependency": {"package": {"name": vulnerability.package},
                                        "version": vulnerability.version},
                         "operating_system": _operating_system(report),
                         "image": report.image},
        }
        where = introduced_by(vulnerability)
        details: dict[str, Any] = {
            "platforms": {"type": "list", "name": "Platforms",
                          "items": [{"type": "text", "value": platform} for platform in platforms]}}
        if where:
            details["introduced_by"] = {"type": "text", "name": "Introduced by", "value": where}
        entry["details"] = details
        vulnerabilities.append(entry)
    report_json = {
        "version": GITLAB_SCHEMA_VERSION,
        "scan": {
            "analyzer": {"id": "dockyard", "name": "dockyard", "version": tool_version,
                         "vendor": {"name": "dockyard"}},
            "scanner": {"id": "dockyard-osv", "name": "dockyard (OSV)", "version": tool_version,
                        "url": INFORMATION_URI, "vendor": {"name": "dockyard"}},
            "type": "container_scanning", "start_time": _gitlab_time(started), "end_time": _gitlab_time(finished),
            "status": "success"},
        "vulnerabilities": vulnerabilities,
        "remediations": [],
    }
    return json.dumps(report_json, indent=2) + "\n"


def _operating_system(report: ScanReport) -> str:
    """`debian-12` → `debian 12`, as GitLab's own analyzer writes it; `Unknown` when the image names none."""
    if not report.distro:
        return "Unknown"
    name, _, release = report.distro.partition("-")
    return f"{name} {release}".strip()


# --- Jenkins Warnings NG ---------------------------------------------------------------------------------------

def _jenkins(reports: Sequence[ScanReport]) -> str:
    issues = []
    for vulnerability, report, platforms in _unique(reports):
        file, line, end_line = _file_and_line(vulnerability, report)
        issues.append({
            "fileName": file, "lineStart": line, "lineEnd": end_line,
            "severity": _JENKINS_SEVERITIES[vulnerability.severity],
            "message": title(vulnerability), "category": vulnerability.ecosystem, "type": vulnerability.advisory,
            "packageName": vulnerability.package, "moduleName": report.image,
            "description": _jenkins_description(vulnerability, report, platforms),
            "fingerprint": _fingerprint(vulnerability, report)})
    return json.dumps({"issues": issues}, indent=2) + "\n"


def _jenkins_description(vulnerability: Vulnerability, report: ScanReport, platforms: list[str]) -> str:
    # Warnings NG shows the description as HTML (sanitized): plain text and links only.
    escape = html.escape
    parts = [escape(vulnerability.summary)] if vulnerability.summary else []
    parts.append(f"{escape(vulnerability.severity.value)} in {escape(report.image)} ({escape(', '.join(platforms))})")
    where = introduced_by(vulnerability)
    if where:
        parts.append(f"introduced by {escape(where)}")
    parts += [f'<a href="{escape(link)}">{escape(link)}</a>' for link in vulnerability.links]
    return "<br>".join(parts)


# --- markdown (the GitHub job summary) -------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def counts_line(report: ScanReport) -> str:
    """`2 critical, 1 high, 0 medium, 0 low, 0 unknown` (every severity, zero included)."""
    return ", ".join(f"{count} {severity.value}" for severity, count in report.counts().items())


def render_markdown(reports: Sequence[ScanReport], *, heading: str = "###") -> str:
    """Per image: its counts, a table of the vulnerabilities (most severe first, at most MARKDOWN_ROWS), what
    was ignored and the expired ignore entries, and the databases' dates."""
    lines: list[str] = []
    for report in reports:
        lines += [f"{heading} Vulnerabilities: `{_cell(report.image)}` ({report.platform})", "",
                  f"{report.packages} packages" + (f" ({report.distro})" if report.distro else "")
                  + f": {counts_line(report)}", ""]
        if report.vulnerabilities:
            lines += ["| severity | advisory | package | installed | fixed in | introduced by |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for vulnerability in report.vulnerabilities[:MARKDOWN_ROWS]:
                link = vulnerability.links[0] if vulnerability.links else ""
                advisory = f"[{vulnerability.advisory}]({link})" if link else vulnerability.advisory
                aliases = f" ({', '.join(vulnerability.aliases)})" if vulnerability.aliases else ""
                fixed = f"`{_cell(vulnerability.fixed_version)}`" if vulnerability.fixed_version else "no fix"
                lines.append(f"| {vulnerability.severity.value} | {_cell(advisory + aliases)} "
                             f"| `{_cell(vulnerability.package)}` | `{_cell(vulnerability.version)}` "
                             f"| {fixed} | {_cell(introduced_by(vulnerability))} |")
            hidden = len(report.vulnerabilities) - MARKDOWN_ROWS
            if hidden > 0:
                lines.append(f"\n…and {hidden} more (less severe), in the scan reports.")
            lines.append("")
        if report.ignored:
            lines += [f"{len(report.ignored)} ignored: " + ", ".join(
                f"{_cell(item.vulnerability.advisory)} in `{_cell(item.vulnerability.package)}` ({_cell(item.reason)})"
                for item in report.ignored), ""]
        for expired in report.expired_ignores:
            place = _cell(expired.file) + (f":{expired.line}" if expired.line else "")
            lines.append(f"- ignore entry for {_cell(expired.advisory)} expired on {expired.expired} "
                         f"({place}): no longer hides it")
        if report.expired_ignores:
            lines.append("")
        lines += [f"- {_cell(warning)}" for warning in report.warnings]
        if report.databases:
            lines.append("Database: " + ", ".join(f"{d.ecosystem} ({d.records} records, fetched {d.fetched})"
                                                  for d in report.databases))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
