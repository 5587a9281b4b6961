"""The component's job: inputs → registry login → `dockyard build` → sectioned log and report artifacts.

The reports land in `.dockyard/` of the project directory (templates/build.yml publishes them from there), and
only after the build: written while it runs, they could end up in an image whose context is the project.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError, UsageError
from dockyard import ScanReport

from ..common.cache import default_cache_reference
from ..common.manifest import write_digest_file
from ..common.platforms import check_platforms
from ..common.public import parse_reference
from ..common.request import BuildRequest, Report, push_by_digest_output
from ..common.request import build_arguments as request_arguments
from ..common.runner import dockyard_command, run_dockyard
from ..common.scan import ScanRequest, read_scan_reports, scan_lines, scan_request
from ..common.supplychain import Signing, attestation_lines, signature_lines
from . import note, reports, signing
from .inputs import ComponentInputs
from .login import registry_login
from .sections import SectionedLog
from .tags import Pipeline, image_references, standard_labels

RESULTS_DIR = ".dockyard"
CODE_QUALITY = "gl-code-quality-report.json"
DOTENV = "dockyard.env"
ANNOTATIONS = "annotations.json"
# artifacts:reports:container_scanning (GitLab's name for it, as its own analyzers write it).
CONTAINER_SCANNING = "gl-container-scanning-report.json"
# Where a job of a distributed build leaves its digest for the merge job (templates/merge.yml): an artifact
# holding one empty file per image, named by the digest's hex, as Docker's recipe hands them on.
DIGESTS = "digests"


@dataclass(frozen=True)
class WorkFiles:
    """What dockyard writes for the job to read back, in the job's private temporary directory."""

    metadata: Path
    code_quality: Path
    scan_json: Path | None = None  # the scan's reports (`--scan-report json=`), when the inputs ask for a scan
    container_scanning: Path | None = None


def scan_settings(inputs: ComponentInputs, files: WorkFiles) -> ScanRequest | None:
    """`--scan` and its gate from the inputs, with the container scanning report and the json the job reads."""
    reports_wanted: tuple[tuple[str, Path], ...] = ()
    if files.scan_json is not None and files.container_scanning is not None:
        reports_wanted = (("json", files.scan_json), ("gitlab", files.container_scanning))
    return scan_request(scan=inputs.scan, fail_on_vuln=inputs.fail_on_vuln, ignore_unfixed=inputs.ignore_unfixed,
                        ignore_file=inputs.vuln_ignore_file, database=inputs.vuln_db,
                        database_url=inputs.vuln_db_url, reports=reports_wanted)


def check_push_by_digest(inputs: ComponentInputs) -> None:
    """push-by-digest is a job of a distributed build: it pushes, and its image gets tags only on the index."""
    if not inputs.push_by_digest:
        return
    if not inputs.push:
        raise UsageError("push-by-digest pushes the image, and push is false", subject="input push-by-digest",
                         hint="set push: true, or leave push-by-digest out to build without pushing")
    if inputs.tags:
        raise UsageError("an image pushed by digest has no tags: they go on the index the merge job assembles",
                         subject="input tags", hint="give the tags to the merge component (templates/merge.yml)")


def cache_reference(inputs: ComponentInputs) -> str:
    """integrations/common/cache.py's default place; one of its own for a job that builds one platform of a
    distributed build, so that the matrix's jobs do not overwrite each other's cache."""
    if not inputs.cache:
        return ""
    platforms = check_platforms(inputs.platforms)
    single = platforms[0] if inputs.push_by_digest and len(platforms) == 1 else ""
    return default_cache_reference(inputs.image, single)


def build_request(inputs: ComponentInputs, *, references: list[str], labels: list[str],
                  files: WorkFiles, builder_id: str = "", sign: Signing | None = None) -> BuildRequest:
    """The request the inputs make. With push-by-digest the image goes to `image` untagged (buildx's
    `type=image,push-by-digest=true` output) instead of under the tags."""
    check_push_by_digest(inputs)
    return BuildRequest(
        context=inputs.context, dockerfile=inputs.dockerfile, tags=tuple(references), labels=tuple(labels),
        build_args=inputs.build_args, build_contexts=inputs.build_contexts, target=inputs.target,
        push=inputs.push and not inputs.push_by_digest, cache=cache_reference(inputs), platforms=inputs.platforms,
        cache_dir=inputs.cache_dir, outputs=(push_by_digest_output(inputs.image),) if inputs.push_by_digest else (),
        # `lint` is the level that fails the job; every finding is in the code quality report.
        lint=inputs.lint, reports=(Report("gitlab", files.code_quality),), metadata_file=files.metadata,
        sbom=inputs.sbom, provenance=inputs.provenance, builder_id=builder_id, signing=sign,
        scan=scan_settings(inputs, files), extra_args=inputs.extra_args)


def build_arguments(inputs: ComponentInputs, *, references: list[str], labels: list[str],
                    files: WorkFiles, builder_id: str = "", sign: Signing | None = None) -> list[str]:
    """`dockyard build` arguments, the context last."""
    return request_arguments(build_request(inputs, references=references, labels=labels, files=files,
                                           builder_id=builder_id, sign=sign))


def clear_results(results: Path) -> None:
    """A retried job on a shell runner may find the last run's reports: none of them may pass for this run's."""
    for name in (CODE_QUALITY, DOTENV, ANNOTATIONS, CONTAINER_SCANNING):
        (results / name).unlink(missing_ok=True)


def publish(results: Path, files: WorkFiles, inputs: ComponentInputs, references: list[str],
            environ: Mapping[str, str]) -> None:
    if files.code_quality.exists():
        reports.write(results / CODE_QUALITY, files.code_quality.read_text())
    # Written even when the vulnerability gate failed the build: the merge request shows what failed it.
    if files.container_scanning is not None and files.container_scanning.exists():
        reports.write(results / CONTAINER_SCANNING, files.container_scanning.read_text())
    metadata = json.loads(files.metadata.read_text()) if files.metadata.exists() else None
    scans = read_scan_reports(files.scan_json, metadata)
    if metadata is not None and "digest" not in metadata:
        metadata = None  # a build the vulnerability gate failed: the file holds only `dockyard.scan`, no image
    for line in scan_lines(scans):
        print(f"scanned {line}")
    if inputs.mr_note:
        write_note(inputs, files, metadata, references, scans, environ)
    if metadata is None:
        return  # the build failed: no image to hand on
    digest = metadata["digest"]
    repository = parse_reference(references[0]).name if references else inputs.image
    if inputs.push_by_digest:
        write_digest_file(results / DIGESTS, digest)
    values = {"DOCKYARD_DIGEST": digest, "DOCKYARD_IMAGE": repository, "DOCKYARD_IMAGE_REF": f"{repository}@{digest}",
              "DOCKYARD_PUSHED": "true" if inputs.push else "false"}
    reports.write(results / DOTENV, reports.dotenv_text(values, {"DOCKYARD_TAGS": ",".join(references)}))
    if inputs.push:
        link = reports.image_link(repository, digest, registry_image=environ.get("CI_REGISTRY_IMAGE", ""),
                                  project_url=environ.get("CI_PROJECT_URL", ""))
        reports.write(results / ANNOTATIONS, reports.annotations_report(repository, digest, references, link=link))
    print(f"image: {repository}@{digest}" + ("" if inputs.push else " (not pushed: push is false)"))
    for line in attestation_lines(metadata):
        print(f"attested {line}")
    for line in signature_lines(metadata):
        print(f"signed {line}")


def write_note(inputs: ComponentInputs, files: WorkFiles, metadata: dict[str, Any] | None, references: list[str],
               scans: list[ScanReport], environ: Mapping[str, str]) -> None:
    """The merge-request note (note.py); why there is none, or why it failed, is a line of the log: a note is a
    notification, never the build's result."""
    context = note.MergeRequestContext.from_environment(environ, inputs.mr_note_token_variable)
    if isinstance(context, str):
        print(context)
        return
    findings = note.CodeQualityFinding.read_all(files.code_quality)
    body = note.note_body(context, image=inputs.image, succeeded=metadata is not None, metadata=metadata,
                          references=references, findings=findings, scans=scans)
    try:
        outcome = note.publish_note(context, body, findings)
    except Exception as exc:  # python-gitlab's errors, a refused connection: reported, the build goes on
        print(f"merge request note not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    print(f"merge request !{context.merge_request_iid}: note {outcome.note_id} "
          f"{'written' if outcome.created else 'updated'}, {outcome.discussions_created} new finding discussion(s)"
          + (f", {outcome.discussions_skipped} on lines outside the diff (in the note)"
             if outcome.discussions_skipped else ""))


def main() -> int:
    environ = dict(os.environ)
    # A job starts in CI_PROJECT_DIR; the working directory is used, as gitlab-ci-local's shell executor runs jobs
    # in the checkout while CI_PROJECT_DIR names where a runner would have put it.
    project_dir = Path.cwd()
    results = project_dir / RESULTS_DIR
    temp = Path(tempfile.mkdtemp(prefix="dockyard-gitlab-"))  # mode 0700: the docker config goes in here
    try:
        clear_results(results)
        inputs = ComponentInputs.from_environment(environ)
        pipeline = Pipeline.from_environment(environ)
        # A job of a distributed build pushes by digest alone: the merge job tags the index.
        references = [] if inputs.push_by_digest else image_references(inputs.image, inputs.tags, pipeline)
        env_changes, login_note = registry_login(environ, temp)
        files = WorkFiles(metadata=temp / "metadata.json", code_quality=temp / CODE_QUALITY,
                          scan_json=temp / "scan.json", container_scanning=temp / CONTAINER_SCANNING)
        args = build_arguments(inputs, references=references, labels=standard_labels(pipeline, environ),
                               files=files, builder_id=signing.builder_id(environ),
                               sign=signing.signing(inputs, environ, temp))
        print(login_note)
        print("tags: " + (", ".join(references) or f"none: {inputs.image} pushed by digest, for the merge job"))
        sys.stdout.flush()
        code = run_dockyard([*dockyard_command(), "build", *args], SectionedLog(), env={**environ, **env_changes},
                            cwd=project_dir)
        publish(results, files, inputs, references, environ)
        return code
    except DockyardError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # the docker config with the job's registry password, a key
