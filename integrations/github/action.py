"""The action's one step: inputs → masks → `dockyard build` → log, annotations, outputs, summary."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError

from ..common.platforms import host_platform
from ..common.runner import dockyard_command, run_dockyard
from . import metadata, privileges, summary, workflow
from .flags import ResultFiles, build_arguments
from .inputs import ActionInputs, key_value
from .log import GroupedLog
from .masking import secret_values

# The findings the github report holds that come from the build itself: its failure, which the log annotated
# from the failure event already (the report's annotations are titled `RULE (SOURCE)`).
BUILD_SOURCE_TITLE = " (build)"


def mask_secrets(inputs: ActionInputs, environ: dict[str, str]) -> None:
    workflow.mask(secret_values(key_value(inputs.secrets, "secrets"), key_value(inputs.secret_envs, "secret-envs"),
                                key_value(inputs.secret_files, "secret-files"), environ))


def resolve_tags_and_labels(inputs: ActionInputs, environ: dict[str, str]) -> tuple[list[str], list[str]]:
    ctx = metadata.GitContext.from_environment(environ)
    tags = list(inputs.tags) or metadata.derive_tags(inputs.images, ctx)
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
        workflow.set_outputs({"digest": meta["digest"], "imageid": meta["config_digest"],
                              "metadata": json.dumps(meta), "tags": "\n".join(tags)})
    workflow.append_summary(summary.render(log, meta), environ)


def main() -> int:
    environ = dict(os.environ)
    temp = Path(tempfile.mkdtemp(prefix="dockyard-action-", dir=environ.get("RUNNER_TEMP") or None))
    try:
        inputs = ActionInputs.from_environment()
        mask_secrets(inputs, environ)  # before anything else is printed
        tags, labels = resolve_tags_and_labels(inputs, environ)
        files = ResultFiles(metadata=temp / "metadata.json", report=temp / "report.github")
        args = build_arguments(inputs, tags=tags, labels=labels, secret_dir=temp / "secrets", files=files,
                               host=host_platform())
        how = privileges.choose(environ, euid=os.geteuid(),
                                has_sudo=os.geteuid() != 0 and privileges.sudo_works())
        print(how.note)
        print("tags: " + (", ".join(tags) or "(none)"))
        sys.stdout.flush()
        log = GroupedLog()
        code = run_dockyard([*how.prefix, *dockyard_command(), "build", *args], log)
        publish(log, files, tags, code, environ)
        return code
    except DockyardError as exc:
        workflow.error(exc.render())
        return exc.exit_code
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # the secrets' directory with it
