"""What a scan is asked to do, from `dockyard scan`'s and `dockyard build --scan`'s options: where the database
comes from, the gate, the exceptions, and the report files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..format_file import parse_format_file

FAIL_ON_VULN = ("critical", "high", "medium", "low", "none")


@dataclass(frozen=True)
class ScanReportSpec:
    """A `--scan-report FORMAT=FILE`."""

    format: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> ScanReportSpec:
        from .reports import FORMATS

        return cls(*parse_format_file(text, "--scan-report", FORMATS, "--scan-report json=scan.json"))


@dataclass(frozen=True)
class ScanSettings:
    """`fail_on`: the lowest severity that fails (--fail-on-vuln; "none" never fails); `ignore_unfixed`: matches
    without a fixed version set aside; `ignore_file`: --vuln-ignore-file; `db`: --vuln-db DIR|ZIP (no download);
    `db_url`: --vuln-db-url, a mirror of osv.dev's archives; `reports`: --scan-report files."""

    fail_on: str = "none"
    ignore_unfixed: bool = False
    ignore_file: Path | None = None
    db: Path | None = None
    db_url: str | None = None
    reports: tuple[ScanReportSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON_VULN:
            raise UsageError(f"--fail-on-vuln {self.fail_on!r} is not a severity",
                             hint=f"use one of {', '.join(FAIL_ON_VULN)}")
