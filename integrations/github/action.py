"""The action's one step: inputs → masks → `dockyard build` → log, annotations, outputs, summary; or, in merge
mode (merge.py), `dockyard manifest create` of the images a matrix of build jobs pushed by digest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError

from ..common.manifest import ManifestRequest, manifest_arguments
from ..common.request import pushes_by_digest
from ..common.runner import dockyard_command, run_dockyard
from ..common.scan import read_scan_reports, scan_lines
from ..common.supplychain import PASSPHRASE_ENV
from . import merge, metadata, privileges, provenance, summary, workflow
from .flags import ResultFiles, build_arguments, signing
from .inputs import ActionInputs, key_value
from .log import GroupedLog
from .masking import secret_values

# The findings the github report holds that come from the build itself: its failure, which the log annotated
# from the failure event already (the report's annotations are titled `RULE (SOURCE)`).
BUILD_SOURCE_TITLE = " (build)"


def mask_secrets(inputs: ActionInputs, environ: dict[str, str]) -> None:
    workflow.mask(secret_values(key_value(inputs.secrets, "secrets"), key_value(inputs.secret_envs, "secret-envs"),
                                key_value(inputs.secret_files, "secret-files"), environ)
                  + [inputs.sign_key, inputs.sign_key_passphrase])


def dockyard_environment(inputs: ActionInputs, environ: dict[str, str]) -> dict[str, str]:
    """dockyard's environment: the job's, with the signing key's passphrase where `--sign` tells it to look.
    Keyless signing asks the runner for the job's OIDC token: the job must be allowed one."""
    if inputs.sign == "keyless":
        provenance.check_keyless(environ)
    if inputs.sign == "key" and inputs.sign_key_passphrase:
        return {**environ, PASSPHRASE_ENV: inputs.sign_key_passphrase}
    return environ


def resolve_tags_and_labels(inputs: ActionInputs, environ: dict[str, str]) -> tuple[list[str], list[str]]:
    ctx = metadata.GitContext.from_environment(environ)
    if inputs.tags or (pushes_by_digest(inputs.outputs) and not inputs.merges):
        # A build job of a distributed build pushes by digest alone: its tags go on the index the merge makes.
        tags = list(inputs.tags)
    else:
        tags = metadata.derive_tags(inputs.images, ctx)
    labels = list(inputs.labels) + metadata.standard_labels(ctx, inputs.labels, environ)
    return tags, labels


def findings_annotations(report: str, log: GroupedLog) -> list[str]:
    """The report's annotations, less the build's failure when the log annotated it from its event."""
    lines = report.splitlines()
    if log.failure is None:
        return lines
    return [line for line in lines
            if not workflow.command_properties(line).get("title", "").endswith(BUILD_SOURCE_TITLE)]


def publish(log: GroupedLog, files: ResultFiles, tags: list[str], code: int, environ: dict[str, str]) -> None:
    report = files.report.read_text() if files.report.exists() else ""
    for line in findings_annotations(report, log):
        sys.stdout.write(line + "\n")
    if code != 0 and log.failure is None and not report:
        # No failure event (dockyard stopped before it could send one) and no report: the text it printed.
        workflow.error("\n".join(log.other_lines) or f"dockyard build failed (exit code {code})")
    meta: dict[str, Any] | None = (json.loads(files.metadata.read_text())
                                   if code == 0 and files.metadata.exists() else None)
    if meta is not None:
        workflow.set_outputs({"digest": meta["digest"], "imageid": meta.get("config_digest", ""),
                              "metadata": json.dumps(meta), "tags": "\n".join(tags)})
    # The scan's results are there when the vulnerability gate failed the build too: that is when they matter.
    scans = read_scan_reports(files.scan_json, meta)
    if scans:
        for line in scan_lines(scans):
            print(f"scanned {line}")
        workflow.set_outputs({"scan": files.scan_json.read_text() if files.scan_json and files.scan_json.exists()
                              else json.dumps({"reports": (meta or {}).get("dockyard.scan", [])})})
    workflow.append_summary(summary.render(log, meta) + summary.scan_section(scans), environ)


def read_back(tag: str, insecure_registries: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The index pushed at `tag`, as `dockyard manifest inspect --raw` reads it back; None when it cannot."""
    insecure = [word for registry in insecure_registries for word in ("--insecure-registry", registry)]
    try:
        result = subprocess.run([*dockyard_command(), "manifest", "inspect", "--raw", *insecure, tag],
                                capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return merge.read_index(result.stdout) if result.returncode == 0 else None


def publish_merge(log: GroupedLog, request: ManifestRequest, files: merge.MergeFiles, code: int,
                  environ: dict[str, str]) -> None:
    if code != 0:
        if log.failure is None:
            workflow.error("\n".join(log.other_lines) or f"dockyard manifest create failed (exit code {code})")
        workflow.append_summary(summary.render_merge(log, None), environ)
        return
    digest = files.digest.read_text().strip() if files.digest.exists() else ""
    index = None if request.dry_run else read_back(request.tags[0], request.insecure_registries)
    meta = merge.metadata(request, digest, index)
    workflow.set_outputs({"digest": digest, "metadata": json.dumps(meta), "tags": "\n".join(request.tags)})
    workflow.append_summary(summary.render_merge(log, meta), environ)


def run_merge(inputs: ActionInputs, tags: list[str], temp: Path, environ: dict[str, str]) -> int:
    """Merge mode: the images the build jobs pushed, assembled into one index under the tags. It runs as the
    job's user (it only talks to registries), with the credentials docker/login-action wrote."""
    files = merge.MergeFiles(digest=temp / "index-digest")
    request = merge.manifest_request(inputs, tags=tags, files=files, sign=signing(inputs, temp / "secrets"))
    args = manifest_arguments(request)
    env = dockyard_environment(inputs, environ)
    print("merging " + ", ".join(request.sources))
    print("tags: " + ", ".join(request.tags) + (" (push is false: not pushed)" if request.dry_run else ""))
    sys.stdout.flush()
    log = GroupedLog()
    code = run_dockyard([*dockyard_command(), "manifest", "create", *args], log, env=env)
    publish_merge(log, request, files, code, environ)
    return code


def main() -> int:
    environ = dict(os.environ)
    temp = Path(tempfile.mkdtemp(prefix="dockyard-action-", dir=environ.get("RUNNER_TEMP") or None))
    try:
        inputs = ActionInputs.from_environment()
        mask_secrets(inputs, environ)  # before anything else is printed
        tags, labels = resolve_tags_and_labels(inputs, environ)
        if inputs.merges:
            return run_merge(inputs, tags, temp, environ)
        files = ResultFiles(metadata=temp / "metadata.json", report=temp / "report.github",
                            scan_json=temp / "scan.json")
        args = build_arguments(inputs, tags=tags, labels=labels, secret_dir=temp / "secrets", files=files,
                               builder_id=provenance.builder_id(environ))
        env = dockyard_environment(inputs, environ)
        how = privileges.choose(environ, euid=os.geteuid(),
                                has_sudo=os.geteuid() != 0 and privileges.sudo_works())
        print(how.note)
        print("tags: " + (", ".join(tags) or "(none)"))
        sys.stdout.flush()
        log = GroupedLog()
        code = run_dockyard([*how.prefix, *dockyard_command(), "build", *args], log, env=env)
        publish(log, files, tags, code, environ)
        return code
    except DockyardError as exc:
        workflow.error(exc.render())
        return exc.exit_code
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # the secrets' directory with it
