"""dockyard's `json` findings report (`--report json=FILE`), read for how many findings reach a level."""

from __future__ import annotations

import json
from pathlib import Path

from .levels import reaches


def count_reaching(report: Path, level: str) -> tuple[int, int]:
    """(findings at or above `level`, all findings) in the report; (0, 0) when there is none (dockyard stopped
    before it checked anything). The failure of a build is one of them, an error from the `build` source."""
    try:
        findings = json.loads(report.read_text())["findings"]
    except FileNotFoundError:
        return 0, 0
    severities = [str(finding["severity"]) for finding in findings]
    return sum(reaches(severity, level) for severity in severities), len(severities)
