"""The Jenkins step's Python half: the request the Groovy step wrote (JSON) → `dockyard build` → the log on
stdout (the `sh` step's output) → a result file for the Groovy step.

The result file is `KEY=VALUE` lines, a value's backslashes and newlines escaped (`\\\\`, `\\n`): the step reads it
with plain string methods, as parsing JSON needs a plugin (readJSON) or a script approval on Jenkins. Keys:
`exit_code`, `digest` (a successful build), `findings` (all findings), `findings_reaching` (those at or above the
request's `lint` level), and for a failed build its `BuildFailed` event's `error`, `message`, `file`, `line`,
`subject`, `hint`, `headline` (where and what, one line)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dockyard.errors import DockyardError, UsageError
from dockyard.events import BuildFailed

from ..common.cache import default_cache_reference
from ..common.failure import headline
from ..common.findings import count_reaching
from ..common.levels import parse_lint_level
from ..common.phases import Phase, PhasedLog
from ..common.platforms import host_platform
from ..common.request import BuildRequest, Report, build_arguments
from ..common.runner import dockyard_command, run_dockyard


@dataclass(frozen=True)
class StepFiles:
    """Where dockyard writes what the step reads back, in the step's private work directory."""

    sarif: Path  # for Warnings NG
    text: Path  # the findings for the log, without Warnings NG
    findings: Path  # json: counted against the lint level
    digest: Path
    metadata: Path


class PlainLog(PhasedLog):
    """The log as `--progress plain` writes it: Jenkins folds no part of a `sh` step's output."""

    def open_group(self, phase: Phase, when: float) -> None:
        pass

    def close_group(self, phase: Phase, when: float | None) -> None:
        pass


def _strings(request: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = request.get(name) or []
    if not isinstance(value, list):
        raise UsageError("must be a list", subject=f"request {name}")
    return tuple(str(item) for item in value)


def _pairs(request: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A map of NAME: VALUE as NAME=VALUE items; a null value gives a bare NAME (a build arg from the environment)."""
    value = request.get(name) or {}
    if not isinstance(value, dict):
        raise UsageError("must be a map", subject=f"request {name}")
    return tuple(key if item is None else f"{key}={item}" for key, item in value.items())


def cache_reference(image: str, cache: object) -> str:
    """The step's `cache`: true for the kernel's default reference, a string for that reference, false for none."""
    if cache is True:
        return default_cache_reference(image)
    if isinstance(cache, str):
        return cache
    return ""


def build_request(request: Mapping[str, Any], files: StepFiles) -> BuildRequest:
    """The build the step asks for. Checks never fail the build (`--fail-on none`): the step sees every finding
    and makes the build UNSTABLE at its `lint` level."""
    image = str(request["image"])
    return BuildRequest(
        context=str(request.get("context") or "."), dockerfile=str(request.get("dockerfile") or ""),
        tags=_strings(request, "references"), labels=_pairs(request, "labels"), build_args=_pairs(request, "buildArgs"),
        build_contexts=_pairs(request, "buildContexts"), target=str(request.get("target") or ""),
        push=request.get("push") is True, cache=cache_reference(image, request.get("cache")), lint="none",
        reports=(Report("sarif", files.sarif), Report("text", files.text), Report("json", files.findings)),
        digest_file=files.digest, metadata_file=files.metadata, extra_args=_strings(request, "extraArgs"))


def escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "")


def result_text(values: Mapping[str, object]) -> str:
    return "".join(f"{key}={escape(value)}\n" for key, value in values.items() if value is not None)


def result_values(code: int, files: StepFiles, lint: str, failure: BuildFailed | None) -> dict[str, object]:
    reaching, total = count_reaching(files.findings, lint)
    values: dict[str, object] = {"exit_code": code, "findings": total, "findings_reaching": reaching}
    if code == 0 and files.digest.exists():
        values["digest"] = files.digest.read_text().strip()
    if failure is not None:
        values.update(error=failure.error, message=failure.message, file=failure.file, line=failure.line,
                      subject=failure.subject, hint=failure.hint, headline=headline(failure))
    return values


def run(request_file: Path, result_file: Path, *, stream: TextIO) -> int:
    request = json.loads(request_file.read_text())
    work = result_file.parent
    files = StepFiles(sarif=work / "dockyard.sarif", text=work / "findings.txt", findings=work / "findings.json",
                      digest=work / "digest", metadata=work / "metadata.json")
    lint = parse_lint_level(str(request.get("lint") or ""), subject="lint")
    try:
        args = build_arguments(build_request(request, files), host=host_platform())
    except DockyardError as exc:  # a request dockyard cannot build (several platforms in extraArgs)
        print(f"error: {exc.render()}", file=stream)
        result_file.write_text(result_text({"exit_code": exc.exit_code, "error": type(exc).__name__,
                                            "message": exc.message, "headline": exc.render().splitlines()[0]}))
        return exc.exit_code
    log = PlainLog(stream)
    code = run_dockyard([*dockyard_command(), "build", *args], log)
    result_file.write_text(result_text(result_values(code, files, lint, log.failure)))
    return code


def main(argv: Sequence[str]) -> int:
    """`python -m dockyard_integrations.jenkins REQUEST.json RESULT`: dockyard's exit code."""
    if len(argv) != 2:
        print("usage: python -m dockyard_integrations.jenkins REQUEST.json RESULT", file=sys.stderr)
        return UsageError.exit_code
    try:
        return run(Path(argv[0]), Path(argv[1]), stream=sys.stdout)
    except DockyardError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code


def entry_point() -> None:
    """The `dockyard-jenkins` command."""
    sys.exit(main(sys.argv[1:]))
