"""The two ways findings are made: checking a Dockerfile (`check_dockerfile`) and turning a build failure
into a finding at its Dockerfile line (`finding_from_error`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from ..display import display_path
from ..dockerfile.parser import load_dockerfile
from ..errors import DockerfileError, DockyardError
from .checks import dockerfile_findings, finding_for_dockerfile_error
from .hadolint import hadolint_findings
from .ignores import CheckDirective, ignored_rules_by_line
from .model import Finding, Severity


def check_dockerfile(dockerfile_path: str | Path, *, context: str | Path | None = None,
                     build_args: Mapping[str, str] | None = None, target: str | None = None,
                     hadolint: bool = True, context_names: frozenset[str] = frozenset()) -> list[Finding]:
    """Every finding for the Dockerfile, most severe first: dockyard's checks (CopyIgnoredFile only when the
    `context` is given; `context_names` are the build's named contexts, normalized), hadolint's when `hadolint`
    and it is installed, or the parse error that stops both.
    Raises ContextError when the Dockerfile cannot be read and UsageError when `target` names no stage."""
    path = Path(dockerfile_path)
    shown = display_path(path)
    try:
        dockerfile = load_dockerfile(path, shown)
    except DockerfileError as exc:
        return [finding_for_dockerfile_error(exc)]
    findings = dockerfile_findings(dockerfile, build_args or {}, target,
                                   Path(context) if context is not None else None, context_names)
    directive = CheckDirective.parse(dict(dockerfile.directives).get("check", ""))
    findings = [kept for finding in findings if (kept := directive.apply(finding)) is not None]
    if hadolint:
        findings += hadolint_findings(path, shown)
    ignored = ignored_rules_by_line(path.read_text(encoding="utf-8"))
    findings = [f for f in findings if f.line is None or f.rule not in ignored.get(f.line, ())]
    return sorted(findings, key=lambda f: f.sort_key)


def finding_from_error(err: DockyardError) -> Finding | None:
    """A build failure (a failing RUN, a missing COPY source, a bad reference) as an error finding at its
    Dockerfile line; None when the error is not about a Dockerfile line (e.g. a bad option)."""
    if err.location is None:
        return None
    if isinstance(err, DockerfileError):
        return dataclasses.replace(finding_for_dockerfile_error(err), source="build")
    message = err.message
    if err.details:
        message += "\n" + err.details.rstrip()
    if err.hint:
        message += f"\nhint: {err.hint}"
    location = err.location
    return Finding(rule=type(err).__name__, severity=Severity.ERROR, file=location.file, line=location.start_line,
                   end_line=location.end_line or location.start_line, message=message, source="build")
