"""The component's inputs, as the template hands them to the job.

templates/build.yml maps each string input to a `DOCKYARD_INPUT_*` job variable, and the typed ones (booleans and
arrays) into one JSON object in `DOCKYARD_INPUT_TYPED`: a variable holds only text, and GitLab writes an array
input interpolated into text as a JSON array. Nothing is interpolated into the script itself, so an input can
never become shell code. The prefix keeps them apart from the `DOCKYARD_*` results a dotenv report passes to
later jobs (dotenv variables outrank a job's own YAML variables).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.errors import UsageError

from ..common.levels import parse_lint_level
from ..common.scan import fail_on_vuln_level
from ..common.supplychain import sign_mode, sign_options

PREFIX = "DOCKYARD_INPUT_"


@dataclass(frozen=True)
class ComponentInputs:
    image: str
    context: str = "."
    dockerfile: str = ""
    tags: tuple[str, ...] = ()
    build_args: tuple[str, ...] = ()
    build_contexts: tuple[str, ...] = ()
    push: bool = True
    target: str = ""
    cache: bool = True
    cache_dir: str = ""  # a project directory the job's `cache:` keeps: a local step cache besides the registry's
    lint: str = "error"
    extra_args: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    push_by_digest: bool = False  # one job of a `parallel: matrix`: the image goes untagged, its digest to the merge
    # The supply chain (integrations/common/supplychain.py; signing.py):
    sbom: str = ""
    provenance: str = ""
    sign: str = ""  # "", key or keyless
    sign_key_variable: str = "COSIGN_PRIVATE_KEY"  # a File variable (its value: the key file's path) or the key
    sign_passphrase_variable: str = "COSIGN_PASSWORD"
    sign_options: tuple[str, ...] = ()  # more --sign attributes (a private Sigstore instance's URLs)
    # The vulnerability scan (integrations/common/scan.py) and the merge-request note (note.py):
    scan: bool = False
    fail_on_vuln: str = ""
    ignore_unfixed: bool = False
    vuln_ignore_file: str = ""
    vuln_db: str = ""
    vuln_db_url: str = ""
    mr_note: bool = False
    mr_note_token_variable: str = "DOCKYARD_GITLAB_TOKEN"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ComponentInputs:
        def text(name: str) -> str:
            return environ.get(PREFIX + name, "").strip()

        typed = typed_inputs(environ.get(PREFIX + "TYPED", ""))
        image = text("IMAGE")
        if not image:
            raise UsageError("no image to build: the input is empty", subject="input image",
                             hint="enable the project's container registry (CI_REGISTRY_IMAGE is then set), "
                                  "or give image: REGISTRY/PATH")
        lint = parse_lint_level(text("LINT"))
        try:
            extra = tuple(shlex.split(text("EXTRA_ARGS")))
        except ValueError as exc:
            raise UsageError(f"cannot split it as a shell would: {exc}", subject="input extra-args") from None
        return cls(image=image, context=text("CONTEXT") or ".", dockerfile=text("DOCKERFILE"),
                   tags=strings(typed, "tags"), build_args=strings(typed, "build-args"),
                   build_contexts=strings(typed, "build-contexts"),
                   push=boolean(typed, "push", True), target=text("TARGET"), cache=boolean(typed, "cache", True),
                   cache_dir=text("CACHE_DIR"), lint=lint, extra_args=extra, platforms=strings(typed, "platforms"),
                   push_by_digest=boolean(typed, "push-by-digest", False), sbom=text("SBOM"),
                   provenance=text("PROVENANCE"), sign=sign_mode(text("SIGN")),
                   sign_key_variable=text("SIGN_KEY_VARIABLE") or "COSIGN_PRIVATE_KEY",
                   sign_passphrase_variable=text("SIGN_PASSPHRASE_VARIABLE") or "COSIGN_PASSWORD",
                   sign_options=sign_options(text("SIGN_OPTIONS")),
                   scan=boolean(typed, "scan", False), fail_on_vuln=fail_on_vuln_level(text("FAIL_ON_VULN")),
                   ignore_unfixed=boolean(typed, "ignore-unfixed", False),
                   vuln_ignore_file=text("VULN_IGNORE_FILE"), vuln_db=text("VULN_DB"), vuln_db_url=text("VULN_DB_URL"),
                   mr_note=boolean(typed, "mr-note", False),
                   mr_note_token_variable=text("MR_NOTE_TOKEN_VARIABLE") or "DOCKYARD_GITLAB_TOKEN")


def typed_inputs(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{PREFIX}TYPED is not JSON: {exc}", subject="component inputs",
                         hint="set the inputs through include: inputs:, not by editing the job's variables") from None
    if not isinstance(value, dict):
        raise UsageError(f"{PREFIX}TYPED is not a JSON object", subject="component inputs")
    return value


def strings(typed: dict[str, Any], name: str) -> tuple[str, ...]:
    value = typed.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
        raise UsageError("must be an array of strings", subject=f"input {name}")
    return tuple(str(item).strip() for item in value if str(item).strip())


def boolean(typed: dict[str, Any], name: str, default: bool) -> bool:
    value = typed.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # a variable set by hand rather than through the typed input
    if not isinstance(value, bool):
        raise UsageError(f"must be true or false, not {value!r}", subject=f"input {name}")
    return value
