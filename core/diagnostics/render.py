"""Findings in the formats CI platforms read: text (people), json (dockyard's own), sarif (GitHub code
scanning, Jenkins), github (workflow commands), gitlab (code quality report), jenkins (Warnings NG native)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import UsageError
from ..options import REPORT_FORMATS
from ..version import __version__
from .github import render_github
from .model import Finding, Severity

if TYPE_CHECKING:
    from rich.text import Text

FORMATS = REPORT_FORMATS
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_JENKINS_SEVERITIES = {Severity.ERROR: "ERROR", Severity.WARNING: "NORMAL", Severity.INFO: "LOW"}
_STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render(findings: list[Finding], fmt: str, *, tool_version: str = __version__) -> str:
    renderers = {"text": lambda: render_text(findings).plain, "json": lambda: _json(findings, tool_version),
                 "sarif": lambda: _sarif(findings, tool_version), "github": lambda: render_github(findings),
                 "gitlab": lambda: _gitlab(findings), "jenkins": lambda: _jenkins(findings)}
    if fmt not in renderers:
        raise UsageError(f"unknown findings format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    return renderers[fmt]()


def render_text(findings: list[Finding]) -> Text:
    """One line per finding, `FILE:LINE:COL: severity Rule: message`, then a count (styled for rich)."""
    from rich.text import Text  # here: every build imports this module (for its reports), few render text

    text = Text()
    for finding in sorted(findings, key=lambda f: f.sort_key):
        place = ":".join(str(p) for p in (finding.file, finding.line, finding.column) if p is not None)
        text.append(f"{place}: ")
        text.append(finding.severity.value, style=_STYLES[finding.severity])
        text.append(f" {finding.rule}", style="bold")
        text.append(f": {finding.message}")
        if finding.help_url:
            text.append(f" ({finding.help_url})", style="dim")
        text.append("\n")
    counts = Counter(f.severity for f in findings)
    summary = ", ".join(f"{counts[s]} {s.value}{'s' if counts[s] != 1 else ''}" for s in Severity if counts[s])
    text.append(f"{summary or 'no findings'}\n")
    return text


def fingerprints(findings: list[Finding]) -> list[str]:
    """A stable, unique fingerprint per finding: what it is and where (file, rule, message), not its line, so
    that editing lines above does not make a known finding look new; identical ones are numbered."""
    seen: Counter[str] = Counter()
    result = []
    for finding in findings:
        identity = f"{finding.source}\0{finding.rule}\0{_repo_path(finding.file)}\0{finding.message}"
        seen[identity] += 1
        result.append(hashlib.sha256(f"{identity}\0{seen[identity]}".encode()).hexdigest())
    return result


def _json(findings: list[Finding], tool_version: str) -> str:
    items = [{"rule": f.rule, "severity": f.severity.value, "file": f.file, "line": f.line, "end_line": f.end_line,
              "column": f.column, "message": f.message, "help_url": f.help_url, "source": f.source}
             for f in sorted(findings, key=lambda f: f.sort_key)]
    return json.dumps({"tool": "dockyard", "version": tool_version, "findings": items}, indent=2) + "\n"


def _sarif(findings: list[Finding], tool_version: str) -> str:
    rules: dict[str, dict[str, Any]] = {}
    for finding in findings:
        rule = rules.setdefault(finding.rule, {"id": finding.rule, "properties": {"source": finding.source}})
        if finding.help_url:
            rule["helpUri"] = finding.help_url
    rule_index = {rule_id: index for index, rule_id in enumerate(rules)}
    results = []
    for finding, fingerprint in zip(findings, fingerprints(findings)):
        physical: dict[str, Any] = {"artifactLocation": {"uri": quote(_repo_path(finding.file))}}
        if finding.line is not None:
            region = {"startLine": finding.line, "endLine": finding.end_line or finding.line}
            if finding.column is not None:
                region["startColumn"] = finding.column
            physical["region"] = region
        results.append({"ruleId": finding.rule, "ruleIndex": rule_index[finding.rule],
                        "level": _SARIF_LEVELS[finding.severity], "message": {"text": finding.message},
                        "locations": [{"physicalLocation": physical}],
                        "partialFingerprints": {"dockyardFindingHash/v1": fingerprint}})
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "dockyard", "version": tool_version,
                            "informationUri": "https://docs.docker.com/go/dockerfile/rule/",
                            "rules": list(rules.values())}},
        "results": results}]}
    return json.dumps(log, indent=2) + "\n"


def _gitlab_severity(finding: Finding) -> str:
    # A failed build blocks the merge request; a check's error is critical (see ci-platforms.md).
    if finding.severity is Severity.ERROR:
        return "blocker" if finding.source == "build" else "critical"
    return "major" if finding.severity is Severity.WARNING else "minor"


def _gitlab(findings: list[Finding]) -> str:
    report = []
    for finding, fingerprint in zip(findings, fingerprints(findings)):
        line = finding.line or 1  # GitLab needs a line: a finding about the whole file goes on the first
        report.append({"description": finding.message, "check_name": finding.rule, "fingerprint": fingerprint,
                       "severity": _gitlab_severity(finding),
                       "location": {"path": _repo_path(finding.file),
                                    "lines": {"begin": line, "end": finding.end_line or line}},
                       "categories": ["Bug Risk" if finding.severity is Severity.ERROR else "Style"]})
    return json.dumps(report, indent=2) + "\n"


def _jenkins(findings: list[Finding]) -> str:
    issues = []
    for finding, fingerprint in zip(findings, fingerprints(findings)):
        issue: dict[str, Any] = {"fileName": finding.file, "severity": _JENKINS_SEVERITIES[finding.severity],
                 "message": finding.message, "category": finding.source, "type": finding.rule,
                 "fingerprint": fingerprint, "description": finding.help_url}
        if finding.line is not None:
            issue.update(lineStart=finding.line, lineEnd=finding.end_line or finding.line)
        if finding.column is not None:
            issue["columnStart"] = finding.column
        issues.append(issue)
    return json.dumps({"issues": issues}, indent=2) + "\n"


def _repo_path(file: str) -> str:
    """The file relative to the working directory (the repository's root in CI), with `/` separators."""
    if os.path.isabs(file):
        relative = os.path.relpath(file)
        file = file if relative.startswith("..") else relative
    return file.replace(os.sep, "/")
