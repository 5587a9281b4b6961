"""The action's inputs as `dockyard build` arguments. Anything dockyard cannot do fails here, clearly, rather
than being dropped: the build would otherwise succeed without what the workflow asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import UsageError
from dockyard.image.model import Platform
from dockyard.options import OutputSpec

from .inputs import ActionInputs, key_value


@dataclass(frozen=True)
class ResultFiles:
    """Where dockyard writes what the action reads back."""

    metadata: Path
    report: Path  # the `github` diagnostics report (the findings, and the failure at its line)


def check_platforms(platforms: tuple[str, ...], host: Platform) -> list[str]:
    """dockyard builds one platform per run: linux/amd64 (its default) or the host's. More (a multi-platform
    index, as buildx builds with QEMU) fails rather than silently building one."""
    if not platforms:
        return []
    if len(platforms) > 1:
        raise UsageError(f"{len(platforms)} platforms given ({', '.join(platforms)}): dockyard builds one platform "
                         "per run", subject="input platforms", hint=f"give one: linux/amd64 or {host}")
    try:
        wanted = Platform.parse(platforms[0])
    except ValueError as exc:
        raise UsageError(str(exc), subject="input platforms") from None
    allowed = {Platform("linux", "amd64"), host}
    if wanted not in allowed:
        raise UsageError(f"cannot build {platforms[0]} on this runner", subject="input platforms",
                         hint="dockyard builds for " + " or ".join(sorted(map(str, allowed))) + " (no emulation)")
    return ["--platform", str(wanted)]


def check_outputs(outputs: tuple[str, ...]) -> list[str]:
    args = []
    for output in outputs:
        try:
            OutputSpec.parse(output)  # registry, oci,dest=DIR, docker,dest=FILE.tar (image,push=true)
        except UsageError as exc:
            raise UsageError(exc.message, subject="input outputs",
                             hint="dockyard writes type=registry, type=oci,dest=DIR and type=docker,dest=FILE.tar "
                                  "(there is no docker daemon to load into)") from None
        args += ["--output", output]
    return args


def write_secret_values(secrets: list[tuple[str, str]], directory: Path) -> list[str]:
    """The `secrets` input holds values (build-push-action's `id=value`): each goes to a file only we can read, in
    a directory the caller removes after the build, and dockyard reads it as `--secret id=ID,src=FILE`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    args = []
    for number, (secret_id, value) in enumerate(secrets, 1):
        path = directory / f"secret-{number}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value)
        args += ["--secret", f"id={secret_id},src={path}"]
    return args


def build_arguments(inputs: ActionInputs, *, tags: list[str], labels: list[str], secret_dir: Path,
                    files: ResultFiles, host: Platform) -> list[str]:
    """`dockyard build` arguments, the context last. Writes the `secrets` values into `secret_dir`."""
    args: list[str] = ["--progress", "json", "--metadata-file", str(files.metadata)]
    # `lint` is the level that fails the step; findings below it are still annotated.
    args += ["--check", "--fail-on", inputs.lint, "--report", f"github={files.report}"]
    if inputs.file:
        args += ["--file", inputs.file]
    for tag in tags:
        args += ["--tag", tag]
    for flag, values in (("--build-arg", inputs.build_args), ("--build-context", inputs.build_contexts),
                         ("--label", labels),
                         ("--annotation", inputs.annotations), ("--cache-from", inputs.cache_from),
                         ("--cache-to", inputs.cache_to), ("--insecure-registry", inputs.insecure_registries),
                         ("--registry-mirror", inputs.registry_mirrors)):
        for value in values:
            args += [flag, value]
    if inputs.target:
        args += ["--target", inputs.target]
    if inputs.push:
        args.append("--push")
    if inputs.no_cache:
        args.append("--no-cache")
    args += check_platforms(inputs.platforms, host)
    args += check_outputs(inputs.outputs)
    args += write_secret_values(key_value(inputs.secrets, "secrets"), secret_dir)
    for secret_id, var in key_value(inputs.secret_envs, "secret-envs"):
        args += ["--secret", f"id={secret_id},env={var}"]
    for secret_id, path in key_value(inputs.secret_files, "secret-files"):
        args += ["--secret", f"id={secret_id},src={path}"]
    args += inputs.extra_args
    args.append(inputs.context)
    return args
