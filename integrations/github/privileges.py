"""How dockyard gets the privileges a build needs on a runner.

GitHub-hosted runners run jobs as a user with passwordless sudo, and dockyard's namespaces and overlay mounts
want root; a self-hosted runner may have neither. The command prefix keeps the user's registry credentials:
under `sudo -E` HOME may become root's, so DOCKER_CONFIG points at the user's docker config explicitly, and
XDG_CACHE_HOME is dropped so root's cache lands in root's home rather than as root-owned files in the user's.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from collections.abc import Mapping


@dataclass(frozen=True)
class Privileges:
    prefix: tuple[str, ...]  # what goes before `python -m dockyard`
    note: str  # one line for the log: which way dockyard runs, and why


def sudo_works() -> bool:
    try:
        return subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose(environ: Mapping[str, str], *, euid: int, has_sudo: bool) -> Privileges:
    if euid == 0:
        return Privileges((), "running dockyard as root")
    user = environ.get("USER") or str(euid)
    if has_sudo:
        docker_config = environ.get("DOCKER_CONFIG") or os.path.join(environ.get("HOME") or "~", ".docker")
        return Privileges(("sudo", "-n", "-E", "env", "-u", "XDG_CACHE_HOME", f"DOCKER_CONFIG={docker_config}"),
                          f"not root: running dockyard through passwordless sudo (sudo -E; registry credentials "
                          f"from {docker_config})")
    return Privileges((), f"not root and no passwordless sudo: running dockyard as {user} (its unprivileged mode)")
