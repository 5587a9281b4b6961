"""dockyard's public entry points, doing for a Python caller exactly what `dockyard build` and `dockyard lint` do:
`build` runs the Dockerfile checks first when asked, then the build, writes the findings reports (a failed build's
failure included) and ends a failed build's events with BuildFailed; `check` runs the Dockerfile checks alone.

The builder and the diagnostics package are imported when they are first needed, so that `import dockyard` stays
fast and a build that neither checks nor reports never loads the checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .display import display_path
from .errors import DockyardError, UsageError
from .events import BuildFailed, Events
from .named_contexts import normalized_name
from .options import FAIL_ON_LEVELS, BuildOptions

if TYPE_CHECKING:
    from .result import BuildResult
    from .diagnostics.model import Finding


def build(options: BuildOptions, *, events: Events | None = None) -> BuildResult:
    """Build the image `options` describe and return what was made. With `options.check`, the Dockerfile checks
    run first (each finding a warning event) and the build stops before it starts when one is at or above
    `options.fail_on`; `options.reports` are written whether the build succeeds or fails.

    Raises a DockyardError subclass (errors.py) when the build fails; `events` then ends with BuildFailed, which
    carries what the exception does (an unexpected exception is an "InternalError")."""
    events = events if events is not None else Events()
    try:
        return _checked_build(options, events)
    except (Exception, KeyboardInterrupt) as exc:  # KeyboardInterrupt: Ctrl-C, and stopping.py's signals
        events.emit(BuildFailed.from_exception(exc))
        raise


def check(options: BuildOptions, *, hadolint: bool = True, context_names: Iterable[str] | None = None
          ) -> list[Finding]:
    """The findings of the Dockerfile checks for the build `options` describe (its Dockerfile, context, build args,
    target and named contexts), most severe first: dockyard's own checks, and hadolint's when `hadolint` is true
    and it is installed; a Dockerfile that does not parse is one error finding. `context_names` are the names of
    the named contexts when the caller has only their names (`dockyard lint`): they replace
    `options.build_contexts`. Raises ContextError when the Dockerfile cannot be read and UsageError when the
    target names no stage."""
    from .diagnostics import check_dockerfile

    if context_names is None:
        names = frozenset(c.name for c in options.build_contexts)
    else:
        names = frozenset(n for name in context_names if (n := normalized_name(name)) is not None)
    return check_dockerfile(options.dockerfile_path, context=options.context, build_args=dict(options.build_args),
                            target=options.target, hadolint=hadolint, context_names=names)


def conclude_checks(findings: list[Finding], options: BuildOptions) -> None:
    """What follows the checks of `dockyard lint`: the findings written to `options.reports`, then ChecksFailed
    raised when one is at or above `options.fail_on`."""
    from .diagnostics.reports import write_reports

    write_reports(findings, options.reports)
    _fail_on(findings, options)


def _checked_build(options: BuildOptions, events: Events) -> BuildResult:
    from .builder import build as build_image  # the bulk of dockyard's imports

    _check_fail_on_level(options)
    findings: list[Finding] = []
    try:
        if options.check:
            findings = check(options)
            for finding in findings:
                place = ":".join(str(p) for p in (finding.file, finding.line) if p is not None)
                events.warning(f"{place}: {finding.rule}: {finding.message}")
            _fail_on(findings, options)
        result = build_image(options, events=events)
    except DockyardError as exc:
        if options.reports:
            # The failure goes into the reports at its Dockerfile line, next to the checks' findings.
            from .diagnostics import finding_from_error
            from .diagnostics.reports import write_reports

            failure = finding_from_error(exc)
            write_reports(findings + _scan_findings(options, getattr(exc, "reports", ()))
                          + ([failure] if failure else []), options.reports)
        raise
    if options.reports:
        from .diagnostics.reports import write_reports

        write_reports(findings + _scan_findings(options, result.scans), options.reports)
    return result


def _scan_findings(options: BuildOptions, reports: Iterable[object]) -> list[Finding]:
    """--scan with --report: the image's vulnerabilities as findings on the Dockerfile lines that brought them in
    (ScanReports, or their JSON form as the build's result holds them)."""
    if options.scan is None:
        return []
    from .scan.findings import scan_findings
    from .scan.model import ScanReport, report_from_json

    read = [r if isinstance(r, ScanReport) else report_from_json(r) for r in reports]  # type: ignore[arg-type]
    return scan_findings(read, display_path(options.dockerfile_path))


def _fail_on(findings: list[Finding], options: BuildOptions) -> None:
    from .diagnostics.reports import check_fail_on

    _check_fail_on_level(options)
    check_fail_on(findings, options.fail_on, display_path(options.dockerfile_path))


def _check_fail_on_level(options: BuildOptions) -> None:
    # The CLI's --fail-on has these choices; a Python caller's value is checked here.
    if options.fail_on not in FAIL_ON_LEVELS:
        raise UsageError(f"invalid fail_on {options.fail_on!r}", hint=f"use one of: {', '.join(FAIL_ON_LEVELS)}")
