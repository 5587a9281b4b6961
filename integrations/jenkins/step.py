"""The Jenkins steps' Python half: the request the Groovy step wrote (JSON) → `dockyard build` (dockyardBuild)
or `dockyard manifest create` (dockyardManifest, a request of kind `manifest`) → the log on stdout (the `sh`
step's output) → a result file for the Groovy step.

The result file is `KEY=VALUE` lines, a value's backslashes and newlines escaped (`\\\\`, `\\n`): the step reads it
with plain string methods, as parsing JSON needs a plugin (readJSON) or a script approval on Jenkins. Keys:
`exit_code`, `digest` (a successful build), `findings` (all findings), `findings_reaching` (those at or above the
request's `lint` level), `attested` and `signed` (what the metadata file says was attested and signed, a line
each), `scanned` (a line per scanned platform) and `vulnerabilities` (counts by severity) when the step scans,
and for a failed build its `BuildFailed` event's `error`, `message`, `file`, `line`, `subject`, `hint`,
`headline` (where and what, one line)."""

from __future__ import annotations

import json
import os
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
from ..common.manifest import ManifestRequest, manifest_arguments
from ..common.phases import Phase, PhasedLog
from ..common.platforms import check_platforms
from ..common.request import BuildRequest, Report, build_arguments, push_by_digest_output
from ..common.runner import dockyard_command, run_dockyard
from ..common.scan import (ScanRequest, counts_text, read_scan_reports, scan_lines, scan_request,
                           total_counts)
from ..common.supplychain import (Signing, attestation_lines, provenance_value, sbom_value, signature_lines)


@dataclass(frozen=True)
class StepFiles:
    """Where dockyard writes what the step reads back, in the step's private work directory."""

    sarif: Path  # for Warnings NG
    text: Path  # the findings for the log, without Warnings NG
    findings: Path  # json: counted against the lint level
    digest: Path
    metadata: Path
    scan_json: Path | None = None  # the scan's reports (`--scan-report json=`)
    scan_issues: Path | None = None  # the vulnerabilities in Warnings NG's native format (`--scan-report jenkins=`)


def scan_settings(request: Mapping[str, Any], files: StepFiles) -> ScanRequest | None:
    """`scan: true` and its gate, with the step's argument names; the reports go to the step's work directory."""
    wanted: tuple[tuple[str, Path], ...] = ()
    if files.scan_json is not None and files.scan_issues is not None:
        wanted = (("json", files.scan_json), ("jenkins", files.scan_issues))
    return scan_request(scan=request.get("scan") is True, fail_on_vuln=_text(request, "failOnVuln"),
                        ignore_unfixed=request.get("ignoreUnfixed") is True,
                        ignore_file=_text(request, "vulnIgnoreFile"), database=_text(request, "vulnDb"),
                        database_url=_text(request, "vulnDbUrl"), reports=wanted, subject=step_argument)


def step_argument(name: str) -> str:
    """The step's argument for a kernel input name: `fail-on-vuln` → `failOnVuln`."""
    first, *rest = name.split("-")
    return first + "".join(word.capitalize() for word in rest)


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


def cache_reference(image: str, cache: object, platform: str = "") -> str:
    """The step's `cache`: true for the kernel's default reference (`platform`'s own for one branch of a
    distributed build), a string for that reference, false for none."""
    if cache is True:
        return default_cache_reference(image, platform)
    if isinstance(cache, str):
        return cache
    return ""


def _text(request: Mapping[str, Any], name: str) -> str:
    """A value the step passes as given: a string, or a boolean as `true`/`false`."""
    value = request.get(name)
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def signing(request: Mapping[str, Any], environ: Mapping[str, str]) -> Signing | None:
    """`sign: true`: the key file withCredentials bound to the variable the request names (Jenkins deletes the
    file after the step), its passphrase in the other variable, which dockyard reads by name."""
    sign = request.get("signing")
    if not sign:
        return None
    if not isinstance(sign, dict) or not sign.get("keyVariable"):
        raise UsageError("must name the key file's variable", subject="request signing")
    path = environ.get(str(sign["keyVariable"]), "")
    if not path or not Path(path).is_file():
        raise UsageError("the signing key credential gave no file", subject="signingKeyCredentialsId",
                         hint="a Secret file credential holding the private key (PEM or cosign.key)")
    passphrase = str(sign.get("passphraseVariable") or "")
    return Signing(key_file=path, passphrase_env=passphrase if passphrase and environ.get(passphrase) else "")


def build_request(request: Mapping[str, Any], files: StepFiles,
                  environ: Mapping[str, str] | None = None) -> BuildRequest:
    """The build the step asks for. Checks never fail the build (`--fail-on none`): the step sees every finding
    and makes the build UNSTABLE at its `lint` level. The provenance's builder id is the Jenkins build's URL."""
    environ = os.environ if environ is None else environ
    image = str(request["image"])
    by_digest = request.get("pushByDigest") is True
    platforms = check_platforms(_strings(request, "platforms"), subject="platforms")
    # One branch of a distributed build (pushByDigest, one platform) keeps a cache of its own: the branches run at
    # the same time and would overwrite each other's.
    own_cache = platforms[0] if by_digest and len(platforms) == 1 else ""
    return BuildRequest(
        context=str(request.get("context") or "."), dockerfile=str(request.get("dockerfile") or ""),
        tags=_strings(request, "references"), labels=_pairs(request, "labels"), build_args=_pairs(request, "buildArgs"),
        build_contexts=_pairs(request, "buildContexts"), target=str(request.get("target") or ""),
        push=request.get("push") is True and not by_digest,
        cache=cache_reference(image, request.get("cache"), own_cache), platforms=platforms,
        cache_dir=_text(request, "cacheDir"),
        outputs=(push_by_digest_output(image),) if by_digest else (), lint="none",
        reports=(Report("sarif", files.sarif), Report("text", files.text), Report("json", files.findings)),
        digest_file=files.digest, metadata_file=files.metadata,
        # Checked with the step's argument names; the kernel makes the flags.
        sbom=sbom_value(_text(request, "sbom"), subject="sbom"),
        provenance=provenance_value(_text(request, "provenance"), subject="provenance"),
        builder_id=environ.get("BUILD_URL", ""), signing=signing(request, environ),
        scan=scan_settings(request, files), extra_args=_strings(request, "extraArgs"))


def manifest_request(request: Mapping[str, Any], digest_file: Path,
                     environ: Mapping[str, str] | None = None) -> ManifestRequest:
    """The merge dockyardManifest asks for; `push: false` assembles the index without pushing it; `sign: true`
    signs the index with the key dockyardBuild's `sign: true` takes."""
    environ = os.environ if environ is None else environ
    return ManifestRequest(tags=_strings(request, "references"), sources=_strings(request, "sources"),
                           annotations=_strings(request, "annotations"), append=request.get("append") is True,
                           dry_run=request.get("push") is False, digest_file=digest_file,
                           signing=signing(request, environ))


def escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "")


def result_text(values: Mapping[str, object]) -> str:
    return "".join(f"{key}={escape(value)}\n" for key, value in values.items() if value is not None)


def result_values(code: int, files: StepFiles, lint: str, failure: BuildFailed | None) -> dict[str, object]:
    reaching, total = count_reaching(files.findings, lint)
    values: dict[str, object] = {"exit_code": code, "findings": total, "findings_reaching": reaching}
    if code == 0 and files.digest.exists():
        values["digest"] = files.digest.read_text().strip()
    if code == 0 and files.metadata.exists():
        metadata = json.loads(files.metadata.read_text())
        values["attested"] = "\n".join(attestation_lines(metadata)) or None
        values["signed"] = "\n".join(signature_lines(metadata)) or None
    # The scan's results exist when the vulnerability gate failed the build too.
    scans = read_scan_reports(files.scan_json, None)
    if scans:
        values["scanned"] = "\n".join(scan_lines(scans))
        values["vulnerabilities"] = counts_text(total_counts(scans))
    if failure is not None:
        values.update(error=failure.error, message=failure.message, file=failure.file, line=failure.line,
                      subject=failure.subject, hint=failure.hint, headline=headline(failure))
    return values


def usage_failure(exc: DockyardError, result_file: Path, stream: TextIO) -> int:
    """A request dockyard cannot carry out, refused before it runs: the error in the log and the result file."""
    print(f"error: {exc.render()}", file=stream)
    result_file.write_text(result_text({"exit_code": exc.exit_code, "error": type(exc).__name__,
                                        "message": exc.message, "headline": exc.render().splitlines()[0]}))
    return exc.exit_code


def run_manifest(request: Mapping[str, Any], result_file: Path, *, stream: TextIO) -> int:
    digest_file = result_file.parent / "digest"
    try:
        args = manifest_arguments(manifest_request(request, digest_file), tags_subject="tags",
                                  sources_subject="sources")
    except DockyardError as exc:
        return usage_failure(exc, result_file, stream)
    log = PlainLog(stream)
    code = run_dockyard([*dockyard_command(), "manifest", "create", *args], log)
    values: dict[str, object] = {"exit_code": code}
    if code == 0 and digest_file.exists():
        values["digest"] = digest_file.read_text().strip()
    if log.failure is not None:
        values.update(error=log.failure.error, message=log.failure.message, headline=headline(log.failure))
    elif code != 0 and log.other_lines:
        values.update(error="ManifestFailed", message=log.other_lines[-1], headline=log.other_lines[-1])
    result_file.write_text(result_text(values))
    return code


def run(request_file: Path, result_file: Path, *, stream: TextIO) -> int:
    request = json.loads(request_file.read_text())
    if request.get("kind") == "manifest":
        return run_manifest(request, result_file, stream=stream)
    work = result_file.parent
    files = StepFiles(sarif=work / "dockyard.sarif", text=work / "findings.txt", findings=work / "findings.json",
                      digest=work / "digest", metadata=work / "metadata.json", scan_json=work / "scan.json",
                      scan_issues=work / "vulnerabilities.json")
    lint = parse_lint_level(str(request.get("lint") or ""), subject="lint")
    try:
        args = build_arguments(build_request(request, files))
    except DockyardError as exc:  # a request dockyard cannot build (an invalid platform)
        return usage_failure(exc, result_file, stream)
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
