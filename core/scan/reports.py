"""Scan reports as files (`--scan-report FORMAT=FILE`): `render_scan(reports, fmt)` for each format of FORMATS."""

from __future__ import annotations

import json
from typing import Sequence

from .model import ScanReport, report_to_json

FORMATS = ("json",)


def render_scan(reports: Sequence[ScanReport], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"reports": [report_to_json(r) for r in reports]}, indent=2) + "\n"
    raise ValueError(f"unknown scan report format {fmt!r}")
