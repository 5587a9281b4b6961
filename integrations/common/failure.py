"""A failed build as its event (`BuildFailed`, the last event of a failed `dockyard build --progress json`):
the text every adapter shows, however it shows it (a GitHub annotation, a GitLab section, a Jenkins error)."""

from __future__ import annotations

from dockyard.events import BuildFailed


def location(failure: BuildFailed) -> str:
    """`FILE:LINE` (or `FILE`) when the failure is about a Dockerfile line; else its subject; else empty."""
    if failure.file:
        return f"{failure.file}:{failure.line}" if failure.line is not None else failure.file
    return failure.subject or ""


def headline(failure: BuildFailed) -> str:
    """One line: where, and what went wrong."""
    where = location(failure)
    return f"{where}: {failure.message}" if where else failure.message


def paragraph(failure: BuildFailed, *, with_location: bool = True) -> str:
    """The one-paragraph text dockyard prints for the error: where and what, the details, then the hint;
    without the location for a platform that shows it apart (an annotation on the line)."""
    parts = [headline(failure) if with_location else failure.message]
    if failure.details:
        parts.append(failure.details.rstrip())
    if failure.hint:
        parts.append(f"hint: {failure.hint}")
    return "\n".join(parts)


def title(failure: BuildFailed) -> str:
    """`StepFailed (exit code 5)`: the error's class and the exit code it gives."""
    return f"{failure.error} (exit code {failure.exit_code})"
