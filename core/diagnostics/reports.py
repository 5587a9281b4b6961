"""What `dockyard lint` and `dockyard build --check` do with findings: write them to report files
(`--report FMT=FILE`) and decide whether they fail the command (`--fail-on LEVEL`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ChecksFailed, OutputError, UsageError
from ..files import replace_file
from .model import Finding, Severity
from .render import FORMATS, render

FAIL_ON_LEVELS = ("error", "warning", "info", "none")


@dataclass(frozen=True)
class ReportSpec:
    """A `--report FORMAT=FILE`: which report format to write, and where."""

    format: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> ReportSpec:
        fmt, sep, path = text.partition("=")
        if not sep or not path or fmt not in FORMATS:
            raise UsageError(f"--report {text!r}: expected FORMAT=FILE with FORMAT one of {', '.join(FORMATS)}",
                             hint="e.g. --report sarif=dockyard.sarif --report gitlab=gl-code-quality.json")
        return cls(fmt, Path(path))


def write_report(findings: list[Finding], fmt: str, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, render(findings, fmt).encode())
    except OSError as exc:
        raise OutputError(f"cannot write the {fmt} report {path}: {exc.strerror}", subject=str(path)) from None


def write_reports(findings: list[Finding], specs: list[ReportSpec]) -> None:
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
