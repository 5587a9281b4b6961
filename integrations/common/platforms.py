"""The one-platform check: dockyard builds one platform per run, linux/amd64 (its default) or the host's. A
build of several platforms (a multi-platform index, as buildx builds with QEMU) is refused rather than silently
building one, until dockyard builds them."""

from __future__ import annotations

import os
from collections.abc import Sequence

from dockyard.errors import UsageError

from .public import Platform


def host_platform() -> Platform:
    """The platform this machine runs (BuildKit's build platform)."""
    return Platform.parse(os.uname().machine or "amd64")


def platforms_in_arguments(arguments: Sequence[str]) -> list[str]:
    """The platforms `--platform X[,Y]` options among `dockyard build` arguments name (an adapter's extra args)."""
    found: list[str] = []
    for number, word in enumerate(arguments):
        if word == "--platform" and number + 1 < len(arguments):
            value = arguments[number + 1]
        elif word.startswith("--platform="):
            value = word.partition("=")[2]
        else:
            continue
        found += [item.strip() for item in value.split(",") if item.strip()]
    return found


def refuse_several(platforms: Sequence[str], *, host: Platform, subject: str) -> None:
    """A UsageError naming `subject` when `platforms` holds more than one."""
    if len(platforms) > 1:
        raise UsageError(f"{len(platforms)} platforms given ({', '.join(platforms)}): dockyard builds one platform "
                         "per run", subject=subject, hint=f"give one: linux/amd64 or {host}")


def check_platforms(platforms: Sequence[str], *, host: Platform, subject: str = "input platforms") -> str | None:
    """The one platform to build (normalised), None for dockyard's default; a UsageError naming `subject` for
    several platforms or one this machine cannot build."""
    if not platforms:
        return None
    refuse_several(platforms, host=host, subject=subject)
    try:
        wanted = Platform.parse(platforms[0])
    except ValueError as exc:
        raise UsageError(str(exc), subject=subject) from None
    allowed = {Platform("linux", "amd64"), host}
    if wanted not in allowed:
        raise UsageError(f"cannot build {platforms[0]} on this runner", subject=subject,
                         hint="dockyard builds for " + " or ".join(sorted(map(str, allowed))) + " (no emulation)")
    return str(wanted)
