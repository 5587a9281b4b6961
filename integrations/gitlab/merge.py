"""The merge component's job (templates/merge.yml), the last job of a distributed build: the images the jobs of a
`parallel: matrix` pushed by digest (templates/build.yml with `push-by-digest: true`, each leaving its digest in
`.dockyard/digests/`, an artifact the merge job gets through `needs:`) assembled into one image index under the
tags (`dockyard manifest create`), then the dotenv and annotations reports hand the index to later jobs as the
build component hands on an image.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import DockyardError, UsageError

from ..common.manifest import ManifestRequest, digests_in, manifest_arguments, sources_by_digest
from ..common.phases import Phase, PhasedLog
from ..common.runner import dockyard_command, run_dockyard
from ..common.supplychain import Signing, sign_mode, sign_options
from . import reports, signing
from .inputs import PREFIX, boolean, strings, typed_inputs
from .job import ANNOTATIONS, DIGESTS, DOTENV, RESULTS_DIR
from .login import registry_login
from .tags import Pipeline, image_references


@dataclass(frozen=True)
class MergeInputs:
    image: str
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # references besides the digests the build jobs left
    annotations: tuple[str, ...] = ()
    append: bool = False
    push: bool = True
    sign: str = ""  # "", key or keyless: sign the index (signing.py)
    sign_key_variable: str = "COSIGN_PRIVATE_KEY"
    sign_passphrase_variable: str = "COSIGN_PASSWORD"
    sign_options: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> MergeInputs:
        typed = typed_inputs(environ.get(PREFIX + "TYPED", ""))
        image = environ.get(PREFIX + "IMAGE", "").strip()
        if not image:
            raise UsageError("no image to assemble the index in: the input is empty", subject="input image",
                             hint="enable the project's container registry (CI_REGISTRY_IMAGE is then set), "
                                  "or give image: REGISTRY/PATH, the repository the build jobs pushed to")
        def text(name: str) -> str:
            return environ.get(PREFIX + name, "").strip()

        return cls(image=image, tags=strings(typed, "tags"), sources=strings(typed, "sources"),
                   annotations=strings(typed, "annotations"), append=boolean(typed, "append", False),
                   push=boolean(typed, "push", True), sign=sign_mode(text("SIGN")),
                   sign_key_variable=text("SIGN_KEY_VARIABLE") or "COSIGN_PRIVATE_KEY",
                   sign_passphrase_variable=text("SIGN_PASSPHRASE_VARIABLE") or "COSIGN_PASSWORD",
                   sign_options=sign_options(text("SIGN_OPTIONS")))


class MergeLog(PhasedLog):
    """dockyard manifest create's output as it comes; there is nothing to fold."""

    def open_group(self, phase: Phase, when: float) -> None:
        pass

    def close_group(self, phase: Phase, when: float | None) -> None:
        pass


def merge_sources(inputs: MergeInputs, digests_dir: Path) -> list[str]:
    """The `sources` references, then IMAGE@DIGEST for each digest the build jobs left (none is an error only
    when there are no sources either)."""
    sources = list(inputs.sources)
    if digests_dir.is_dir() or not sources:
        sources += sources_by_digest(inputs.image, digests_in(digests_dir, subject=f"{RESULTS_DIR}/{DIGESTS}"))
    return list(dict.fromkeys(sources))


def manifest_request(inputs: MergeInputs, *, references: list[str], digests_dir: Path,
                     digest_file: Path, sign: Signing | None = None) -> ManifestRequest:
    return ManifestRequest(tags=tuple(references), sources=tuple(merge_sources(inputs, digests_dir)),
                           annotations=inputs.annotations, append=inputs.append, dry_run=not inputs.push,
                           digest_file=digest_file, signing=sign)


def publish(results: Path, inputs: MergeInputs, references: list[str], digest: str,
            environ: Mapping[str, str]) -> None:
    values = {"DOCKYARD_DIGEST": digest, "DOCKYARD_IMAGE": inputs.image,
              "DOCKYARD_IMAGE_REF": f"{inputs.image}@{digest}", "DOCKYARD_PUSHED": "true" if inputs.push else "false"}
    reports.write(results / DOTENV, reports.dotenv_text(values, {"DOCKYARD_TAGS": ",".join(references)}))
    if inputs.push:
        link = reports.image_link(inputs.image, digest, registry_image=environ.get("CI_REGISTRY_IMAGE", ""),
                                  project_url=environ.get("CI_PROJECT_URL", ""))
        reports.write(results / ANNOTATIONS, reports.annotations_report(inputs.image, digest, references, link=link))
    print(f"index: {inputs.image}@{digest}" + ("" if inputs.push else " (not pushed: push is false)"))


def main() -> int:
    environ = dict(os.environ)
    project_dir = Path.cwd()  # as job.py: gitlab-ci-local's shell executor runs jobs in the checkout
    results = project_dir / RESULTS_DIR
    temp = Path(tempfile.mkdtemp(prefix="dockyard-gitlab-"))  # mode 0700: the docker config goes in here
    try:
        for name in (DOTENV, ANNOTATIONS):
            (results / name).unlink(missing_ok=True)
        inputs = MergeInputs.from_environment(environ)
        references = image_references(inputs.image, inputs.tags, Pipeline.from_environment(environ))
        digest_file = temp / "digest"
        request = manifest_request(inputs, references=references, digests_dir=results / DIGESTS,
                                   digest_file=digest_file, sign=signing.signing(inputs, environ, temp))
        args = manifest_arguments(request)
        env_changes, login_note = registry_login(environ, temp)
        print(login_note)
        print("sources: " + ", ".join(request.sources))
        print("tags: " + ", ".join(references))
        sys.stdout.flush()
        log = MergeLog()
        code = run_dockyard([*dockyard_command(), "manifest", "create", *args], log,
                            env={**environ, **env_changes}, cwd=project_dir)
        if code == 0 and digest_file.exists():
            publish(results, inputs, references, digest_file.read_text().strip(), environ)
        return code
    except DockyardError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # the docker config with the job's registry password
