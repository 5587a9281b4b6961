"""Findings as GitHub Actions workflow commands (`::error file=..,line=..::message`), which the runner turns
into annotations on the Dockerfile line.

Written by hand rather than with PyPI's actions-toolkit: its `core.error(...)` prints every property, empty
ones included (`title=,file=Dockerfile,line=3,endLine=,col=,...`), and GitHub's documentation says to omit
properties that have no value."""

from __future__ import annotations

from .model import Finding, Severity

# The runner shows at most 10 annotations of each kind per step and drops the rest silently.
ANNOTATIONS_PER_KIND = 10
_KINDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, properties: dict[str, object]) -> str:
    given = ",".join(f"{name}={escape_property(str(value))}" for name, value in properties.items()
                     if value is not None and str(value) != "")
    return f"::{kind}{' ' + given if given else ''}::{escape_data(message)}"


def render_github(findings: list[Finding]) -> str:
    """Most severe first, at most 10 per kind; then one notice saying how many were left out (its own slot
    is kept free among the notices, or the runner would drop it too)."""
    ordered = sorted(findings, key=lambda f: f.sort_key)
    overflows = any(_count(ordered, severity) > ANNOTATIONS_PER_KIND for severity in _KINDS)
    notice_slots = ANNOTATIONS_PER_KIND - 1 if overflows else ANNOTATIONS_PER_KIND
    limits = {Severity.ERROR: ANNOTATIONS_PER_KIND, Severity.WARNING: ANNOTATIONS_PER_KIND,
              Severity.INFO: notice_slots}
    shown: dict[Severity, int] = {s: 0 for s in _KINDS}
    lines = []
    for finding in ordered:
        if shown[finding.severity] >= limits[finding.severity]:
            continue
        shown[finding.severity] += 1
        lines.append(annotation(finding))
    left_out = len(ordered) - sum(shown.values())
    if left_out:
        lines.append(workflow_command("notice", f"{left_out} more finding(s) not shown as annotations (GitHub "
                                                f"shows {ANNOTATIONS_PER_KIND} per kind per step); see the "
                                                "full report", {"title": "dockyard"}))
    return "".join(line + "\n" for line in lines)


def annotation(finding: Finding) -> str:
    message = finding.message + (f"\n{finding.help_url}" if finding.help_url else "")
    end_line = finding.end_line if finding.end_line != finding.line else None
    return workflow_command(_KINDS[finding.severity], message, {
        "file": finding.file, "line": finding.line, "endLine": end_line, "col": finding.column,
        "title": f"{finding.rule} ({finding.source})"})


def _count(findings: list[Finding], severity: Severity) -> int:
    return sum(f.severity is severity for f in findings)
