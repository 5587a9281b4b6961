"""Diagnostics that land on the Dockerfile line: one model for every finding (dockyard's checks, hadolint,
build failures) and the formats CI platforms read. The CLI and the CI adapters use only these names."""

from .check import check_dockerfile, finding_from_error
from .model import Finding, Severity
from .render import FORMATS, render, render_text

__all__ = ["FORMATS", "Finding", "Severity", "check_dockerfile", "finding_from_error", "render", "render_text"]
