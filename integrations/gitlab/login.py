"""Registry credentials for the job: the project's registry with the job's own CI_REGISTRY_USER/PASSWORD.

They go into a docker config in a private temporary directory that DOCKER_CONFIG points at for the build (never
onto the command line, never into the log). Credentials the user configured win: when dockyard's credential chain
(DOCKER_CONFIG, REGISTRY_AUTH_FILE, GitLab's DOCKER_AUTH_CONFIG, ~/.docker, ...) already knows CI_REGISTRY, nothing
is added. The new config starts as a copy of the user's own docker config, so its credential helpers and other
registries keep working while DOCKER_CONFIG points elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from collections.abc import Mapping

from dockyard import credential_source, read_docker_config


def registry_login(environ: Mapping[str, str], private_dir: Path) -> tuple[dict[str, str], str]:
    """The environment changes the build needs, and one line for the log saying where credentials come from."""
    registry = environ.get("CI_REGISTRY", "").strip()
    user = environ.get("CI_REGISTRY_USER", "")
    password = environ.get("CI_REGISTRY_PASSWORD", "")
    if not registry or not user or not password:
        return {}, "CI_REGISTRY and its credentials are not set: using the configured registry credentials only"
    known = credential_source(registry, environ)
    if known is not None:
        return {}, f"credentials for {registry} from {known}"
    config = read_docker_config(environ)
    auths = config.setdefault("auths", {})
    if not isinstance(auths, dict):
        config["auths"] = auths = {}
    auths[registry] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode("ascii")}
    directory = private_dir / "docker-config"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / "config.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(config, out)
    return {"DOCKER_CONFIG": str(directory)}, f"logged in to {registry} as {user} (CI_REGISTRY_USER)"
