"""The Dockerfile-check levels (`dockyard build --fail-on LEVEL`): which findings fail a build, or make it
unstable. Least severe first; `none` is reached by no finding."""

from __future__ import annotations

from dockyard.errors import UsageError

LINT_LEVELS: tuple[str, ...] = ("info", "warning", "error", "none")
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")  # a finding's severity, least severe first
DEFAULT_LINT_LEVEL = "error"


def parse_lint_level(text: str, *, subject: str = "input lint") -> str:
    """The level `text` names (any case; empty for the default), or a UsageError naming `subject`."""
    level = text.strip().lower() or DEFAULT_LINT_LEVEL
    if level not in LINT_LEVELS:
        raise UsageError(f"unknown level {level!r}", subject=subject,
                         hint="the level of Dockerfile check findings that fails the build: one of "
                              + ", ".join(LINT_LEVELS))
    return level


def reaches(severity: str, level: str) -> bool:
    """Whether a finding of `severity` is at or above `level` (never for `none`)."""
    if level == "none" or severity not in SEVERITIES:
        return False
    return SEVERITIES.index(severity) >= LINT_LEVELS.index(level)
