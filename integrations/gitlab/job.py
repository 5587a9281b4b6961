"""The component's job: inputs → registry login → `dockyard build` → sectioned log and report artifacts.

The reports land in `.dockyard/` of the project directory (templates/build.yml publishes them from there), and
only after the build: written while it runs, they could end up in an image whose context is the project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from dockyard.errors import DockyardError
from dockyard.image.reference import parse_reference

from . import reports
from .inputs import ComponentInputs
from .login import registry_login
from .sections import SectionedLog
from .tags import Pipeline, image_references, standard_labels

RESULTS_DIR = ".dockyard"
CODE_QUALITY = "gl-code-quality-report.json"
DOTENV = "dockyard.env"
ANNOTATIONS = "annotations.json"


@dataclass(frozen=True)
class WorkFiles:
    """What dockyard writes for the job to read back, in the job's private temporary directory."""

    metadata: Path
    code_quality: Path


def cache_reference(image: str) -> str:
    return f"{image}/cache"


def build_arguments(inputs: ComponentInputs, *, references: list[str], labels: list[str],
                    files: WorkFiles) -> list[str]:
    """`dockyard build` arguments, the context last."""
    args = ["--progress", "json", "--metadata-file", str(files.metadata),
            # `lint` is the level that fails the job; every finding is in the code quality report.
            "--check", "--fail-on", inputs.lint, "--report", f"gitlab={files.code_quality}"]
    if inputs.dockerfile:
        args += ["--file", inputs.dockerfile]
    for reference in references:
        args += ["--tag", reference]
    for label in labels:
        args += ["--label", label]
    for build_arg in inputs.build_args:
        args += ["--build-arg", build_arg]
    for build_context in inputs.build_contexts:
        args += ["--build-context", build_context]
    if inputs.target:
        args += ["--target", inputs.target]
    if inputs.cache:
        cache = cache_reference(inputs.image)
        args += ["--cache-from", f"type=registry,ref={cache}"]
        if inputs.push:  # a build that does not push writes nothing to the registry, its cache included
            args += ["--cache-to", f"type=registry,ref={cache},mode=max"]
    if inputs.push:
        args.append("--push")
    args += inputs.extra_args  # last, so a flag given here wins over one the component derived
    args.append(inputs.context)
    return args


def run_dockyard(command: list[str], *, env: Mapping[str, str], cwd: Path, log: SectionedLog) -> int:
    # stdout carries only the digest (the metadata file has it too); stderr the JSON events and any error.
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
                          env=dict(env), cwd=cwd) as proc:
        assert proc.stderr is not None
        log.feed(proc.stderr)
    return proc.returncode


def clear_results(results: Path) -> None:
    """A retried job on a shell runner may find the last run's reports: none of them may pass for this run's."""
    for name in (CODE_QUALITY, DOTENV, ANNOTATIONS):
        (results / name).unlink(missing_ok=True)


def publish(results: Path, files: WorkFiles, inputs: ComponentInputs, references: list[str],
            environ: Mapping[str, str]) -> None:
    if files.code_quality.exists():
        reports.write(results / CODE_QUALITY, files.code_quality.read_text())
    if not files.metadata.exists():
        return  # the build failed: no image to hand on
    digest = json.loads(files.metadata.read_text())["digest"]
    repository = parse_reference(references[0]).name
    values = {"DOCKYARD_DIGEST": digest, "DOCKYARD_IMAGE": repository, "DOCKYARD_IMAGE_REF": f"{repository}@{digest}",
              "DOCKYARD_PUSHED": "true" if inputs.push else "false"}
    reports.write(results / DOTENV, reports.dotenv_text(values, {"DOCKYARD_TAGS": ",".join(references)}))
    if inputs.push:
        link = reports.image_link(repository, digest, registry_image=environ.get("CI_REGISTRY_IMAGE", ""),
                                  project_url=environ.get("CI_PROJECT_URL", ""))
        reports.write(results / ANNOTATIONS, reports.annotations_report(repository, digest, references, link=link))
    print(f"image: {repository}@{digest}" + ("" if inputs.push else " (not pushed: push is false)"))


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
        references = image_references(inputs.image, inputs.tags, pipeline)
        env_changes, login_note = registry_login(environ, temp)
        files = WorkFiles(metadata=temp / "metadata.json", code_quality=temp / CODE_QUALITY)
        args = build_arguments(inputs, references=references, labels=standard_labels(pipeline, environ),
                               files=files)
        print(login_note)
        print("tags: " + ", ".join(references))
        sys.stdout.flush()
        code = run_dockyard([sys.executable, "-m", "dockyard", "build", *args], env={**environ, **env_changes},
                            cwd=project_dir, log=SectionedLog())
        publish(results, files, inputs, references, environ)
        return code
    except DockyardError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # the docker config with the job's registry password
