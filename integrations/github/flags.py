"""The action's inputs as a build request (integrations/common/request.py makes the `dockyard build` arguments).
Anything dockyard cannot do fails there, clearly, rather than being dropped: the build would otherwise succeed
without what the workflow asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import UsageError

from ..common.request import BuildRequest, Report
from ..common.request import build_arguments as request_arguments
from ..common.scan import ScanRequest, scan_request
from ..common.supplychain import PASSPHRASE_ENV, Signing
from .inputs import ActionInputs, key_value


@dataclass(frozen=True)
class ResultFiles:
    """Where dockyard writes what the action reads back."""

    metadata: Path
    report: Path  # the `github` diagnostics report (the findings, and the failure at its line)
    scan_json: Path | None = None  # the scan's reports (`--scan-report json=`), read for the summary and outputs


def scan_settings(inputs: ActionInputs, files: ResultFiles) -> ScanRequest | None:
    """`--scan` and its gate; the SARIF goes where `scan-sarif` says (for github/codeql-action/upload-sarif)."""
    if inputs.scan_sarif and not inputs.scan:
        raise UsageError("scan-sarif is set and scan is not", subject="input scan-sarif",
                         hint="set scan: true to scan the built image (or leave scan-sarif out)")
    wanted: list[tuple[str, Path]] = []
    if files.scan_json is not None:
        wanted.append(("json", files.scan_json))
    if inputs.scan_sarif:
        wanted.append(("sarif", Path(inputs.scan_sarif)))
    return scan_request(scan=inputs.scan, fail_on_vuln=inputs.fail_on_vuln,
                        ignore_unfixed=inputs.ignore_unfixed, ignore_file=inputs.vuln_ignore_file,
                        database=inputs.vuln_db, database_url=inputs.vuln_db_url, reports=tuple(wanted))


def write_secret_values(secrets: list[tuple[str, str]], directory: Path) -> list[str]:
    """The `secrets` input holds values (build-push-action's `id=value`): each goes to a file only we can read, in
    a directory the caller removes after the build, and dockyard reads it as `--secret id=ID,src=FILE`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return [f"id={secret_id},src={private_file(directory, f'secret-{number}', value)}"
            for number, (secret_id, value) in enumerate(secrets, 1)]


def private_file(directory: Path, name: str, text: str) -> Path:
    """`text` in a file only we can read, in a directory the caller removes after the build."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def signing(inputs: ActionInputs, secret_dir: Path) -> Signing | None:
    """How the inputs ask to sign: `sign: key` with the key (a secret's value) written to a private file, its
    passphrase handed to dockyard in PASSPHRASE_ENV (action.py sets it); `sign: keyless` with the job's own OIDC
    token, which dockyard requests from the runner."""
    if inputs.sign == "keyless":
        if inputs.sign_key:
            raise UsageError("sign-key is for sign: key, and sign is keyless", subject="input sign-key",
                             hint="leave sign-key out for keyless signing, or set sign: key")
        return Signing(keyless=True, options=inputs.sign_options)
    if inputs.sign == "key":
        if not inputs.sign_key.strip():
            raise UsageError("sign: key needs the private key, and sign-key is empty", subject="input sign-key",
                             hint="sign-key: ${{ secrets.COSIGN_PRIVATE_KEY }} (a PEM or cosign.key file's "
                                  "content), and its passphrase in sign-key-passphrase")
        key = private_file(secret_dir, "signing.key", inputs.sign_key.strip() + "\n")
        return Signing(key_file=str(key), passphrase_env=PASSPHRASE_ENV if inputs.sign_key_passphrase else "",
                       options=inputs.sign_options)
    if inputs.sign_key or inputs.sign_key_passphrase or inputs.sign_options:
        raise UsageError("a signing key is given, and sign does not ask for a signature", subject="input sign",
                         hint="set sign: key to sign the pushed image with it")
    return None


def build_request(inputs: ActionInputs, *, tags: list[str], labels: list[str], secret_dir: Path,
                  files: ResultFiles, builder_id: str = "") -> BuildRequest:
    """The request the inputs make. Writes the `secrets` values into `secret_dir`."""
    # Checked before any secret is written: a malformed item is an error naming the input.
    secret_envs = key_value(inputs.secret_envs, "secret-envs")
    secret_files = key_value(inputs.secret_files, "secret-files")
    secrets = write_secret_values(key_value(inputs.secrets, "secrets"), secret_dir)
    secrets += [f"id={secret_id},env={var}" for secret_id, var in secret_envs]
    secrets += [f"id={secret_id},src={path}" for secret_id, path in secret_files]
    return BuildRequest(
        context=inputs.context, dockerfile=inputs.file, tags=tuple(tags), labels=tuple(labels),
        build_args=inputs.build_args, build_contexts=inputs.build_contexts, annotations=inputs.annotations,
        target=inputs.target, push=inputs.push, no_cache=inputs.no_cache, cache_from=inputs.cache_from,
        cache_to=inputs.cache_to, platforms=inputs.platforms, outputs=inputs.outputs, secrets=tuple(secrets),
        insecure_registries=inputs.insecure_registries, registry_mirrors=inputs.registry_mirrors,
        # `lint` is the level that fails the step; findings below it are still annotated.
        lint=inputs.lint, reports=(Report("github", files.report),), metadata_file=files.metadata,
        sbom=inputs.sbom, provenance=inputs.provenance, attests=inputs.attests, builder_id=builder_id,
        signing=signing(inputs, secret_dir), scan=scan_settings(inputs, files), extra_args=inputs.extra_args)


def build_arguments(inputs: ActionInputs, *, tags: list[str], labels: list[str], secret_dir: Path,
                    files: ResultFiles, builder_id: str = "") -> list[str]:
    """`dockyard build` arguments, the context last. Writes the `secrets` values (and a signing key) into
    `secret_dir`."""
    request = build_request(inputs, tags=tags, labels=labels, secret_dir=secret_dir, files=files,
                            builder_id=builder_id)
    return request_arguments(request)
