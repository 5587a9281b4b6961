"""Every secret value the action can know of, so it is masked before anything is printed: the `secrets`
values, the variables `secret-envs` names, the files `secret-files` names, and the registry passwords and
tokens in the docker config that docker/login-action wrote."""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from collections.abc import Mapping


def docker_config_paths(environ: Mapping[str, str]) -> list[Path]:
    """The docker configs dockyard reads credentials from (README "Registries"), where a runner has them."""
    paths = []
    if environ.get("DOCKER_CONFIG"):
        paths.append(Path(environ["DOCKER_CONFIG"]) / "config.json")
    if environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(environ["REGISTRY_AUTH_FILE"]))
    paths.append(Path(environ.get("HOME") or os.path.expanduser("~")) / ".docker" / "config.json")
    return paths


def docker_config_secrets(path: Path) -> list[str]:
    """`auth` (base64 user:password) and its password, `password`, `identitytoken`, `registrytoken`."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return []  # absent or unreadable: dockyard reports a problem with it when it needs it
    found: list[str] = []
    for entry in (config.get("auths") or {}).values() if isinstance(config, dict) else ():
        if not isinstance(entry, dict):
            continue
        for key in ("auth", "password", "identitytoken", "registrytoken"):
            if isinstance(entry.get(key), str) and entry[key]:
                found.append(entry[key])
        if isinstance(entry.get("auth"), str):
            try:
                found.append(base64.b64decode(entry["auth"]).decode().partition(":")[2])
            except (binascii.Error, UnicodeDecodeError):
                pass
    return [value for value in found if value]


def secret_values(secrets: list[tuple[str, str]], secret_envs: list[tuple[str, str]],
                  secret_files: list[tuple[str, str]], environ: Mapping[str, str]) -> list[str]:
    values = [value for _, value in secrets]
    values += [environ[var] for _, var in secret_envs if environ.get(var)]
    for _, name in secret_files:
        try:
            values.append(Path(name).read_text(errors="replace"))
        except OSError:
            pass  # dockyard names the missing file; there is nothing to mask
    for path in docker_config_paths(environ):
        values += docker_config_secrets(path)
    return values
