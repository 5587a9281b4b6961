"""What `dockyard lint` and `dockyard build --check` do with findings: write them to report files
(`--report FMT=FILE`) and decide whether they fail the command (`--fail-on LEVEL`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import ChecksFailed, OutputError
from ..files import replace_file
from ..options import ReportSpec
from .model import Finding, Severity
from .render import render


def write_report(findings: list[Finding], fmt: str, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, render(findings, fmt).encode())
    except OSError as exc:
        raise OutputError(f"cannot write the {fmt} report {path}: {exc.strerror}", subject=str(path)) from None


def write_reports(findings: list[Finding], specs: Iterable[ReportSpec]) -> None:
    for spec in specs:
        write_report(findings, spec.format, spec.path)


def check_fail_on(findings: list[Finding], fail_on: str, subject: str) -> None:
    """Raises ChecksFailed when a finding is at or above `fail_on` (never for "none")."""
    if fail_on == "none":
        return
    threshold = Severity(fail_on)
    failing = [f for f in findings if f.severity >= threshold]
    if failing:
        raise ChecksFailed(f"checks found {len(failing)} problem(s) at or above {fail_on}", subject=subject,
                           hint="fix them, silence one with `# dockyard ignore=RULE` on the line above it or "
                                "`# check=skip=RULE` at the top, or pass --fail-on with a higher level")
