"""A Debian base image with a working apt, from this host's Debian files (tests/support/debian_base.py), for
Dockerfiles that install packages as Debian images do: `apt-get update && apt-get install -y ...`.

``push_debian_apt_base(registry_host, workdir, sources_line[, packages, tag]) -> ref`` pushes a base holding
`packages` (debian_base's python3 set by default) plus apt, dpkg and what dpkg requires in PATH; dpkg's status
lists those packages and everything they depend on, recursively (copied from the host's status, so apt finds
nothing broken and installs only what a new package itself needs), with each package's file list; `/etc/passwd`
has apt's sandbox user `_apt`; `sources_line` (e.g. ``deb [trusted=yes] URL ./`` of a loopback repository made
with tests/support/debian_repo.py) is the only package source.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from tests.support.debian_base import PACKAGES, push_debian_python_base
from tests.support.images import PASSWD

# apt with its download methods, dpkg, and what dpkg looks for in PATH before it unpacks anything (ldconfig,
# tar, diff...); the C library's whole package, since apt's libraries need more of it than ldd shows.
APT_PACKAGES = ("apt", "libapt-pkg6.0", "dpkg", "libc-bin", "libc6", "tar", "sed", "grep", "diffutils",
                "base-passwd")
# What Debian images have and no package's file list holds (path, mode, uid, gid).
APT_DIRECTORIES = (
    ("etc/apt/apt.conf.d", 0o755, 0, 0), ("etc/apt/preferences.d", 0o755, 0, 0),
    ("etc/apt/trusted.gpg.d", 0o755, 0, 0), ("etc/apt/sources.list.d", 0o755, 0, 0),
    ("etc/dpkg/dpkg.cfg.d", 0o755, 0, 0), ("var/lib/dpkg/info", 0o755, 0, 0),
    ("var/lib/dpkg/updates", 0o755, 0, 0), ("var/lib/dpkg/triggers", 0o755, 0, 0),
    ("var/lib/dpkg/alternatives", 0o755, 0, 0), ("var/lib/apt/lists/partial", 0o700, 42, 0),
    ("var/cache/apt/archives/partial", 0o700, 42, 0), ("var/log/apt", 0o755, 0, 0),
    ("var/cache/debconf", 0o755, 0, 0),
)
# Debian's _apt (uid 42, group nogroup), as in every Debian image.
APT_PASSWD = PASSWD + "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
HOST_DPKG_STATUS = Path("/var/lib/dpkg/status")
HOST_DPKG_INFO = Path("/var/lib/dpkg/info")


def installed_stanzas(status: str) -> dict[str, str]:
    """The installed packages of a dpkg status file: name -> its stanza."""
    stanzas = {}
    for stanza in status.strip().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, re.M))
        if fields.get("Status", "").endswith(" installed"):
            stanzas[fields["Package"]] = stanza
    return stanzas


def _field_items(stanza: str, field: str) -> list[str]:
    match = re.search(rf"^{field}: (.*)$", stanza, re.M)
    return [item.strip() for item in match.group(1).split(",")] if match else []


def _dependencies(stanza: str, installed: Mapping[str, str], provided_by: Mapping[str, str]) -> list[str]:
    """The installed package that satisfies each Pre-Depends/Depends item (its first alternative present)."""
    names = []
    for item in _field_items(stanza, "Pre-Depends") + _field_items(stanza, "Depends"):
        for alternative in item.split("|"):
            name = re.split(r"[ (:]", alternative.strip(), maxsplit=1)[0]
            if name in installed or name in provided_by:
                names.append(name if name in installed else provided_by[name])
                break
    return names


def dependency_closure(packages: tuple[str, ...], status: str) -> dict[str, str]:
    """The stanzas of `packages` and of everything they depend on, recursively, from `status`."""
    installed = installed_stanzas(status)
    provided_by: dict[str, str] = {}
    for name, stanza in installed.items():
        for item in _field_items(stanza, "Provides"):
            provided_by.setdefault(item.split(" ")[0], name)
    closure: dict[str, str] = {}
    pending = list(packages)
    while pending:
        name = pending.pop()
        if name in closure or name not in installed:
            continue
        closure[name] = installed[name]
        pending.extend(_dependencies(installed[name], installed, provided_by))
    return closure


def dpkg_database(packages: tuple[str, ...]) -> tuple[tuple[str, bytes, int], ...]:
    """dpkg's status for an image holding `packages`, and each listed package's file list, as layer files."""
    closure = dependency_closure(packages, HOST_DPKG_STATUS.read_text())
    status = "\n\n".join(closure[name] for name in sorted(closure)) + "\n"
    files = [("var/lib/dpkg/status", status.encode(), 0o644), ("var/lib/dpkg/available", b"", 0o644)]
    for name in sorted(closure):
        for list_name in (f"{name}.list", f"{name}:amd64.list"):
            if (HOST_DPKG_INFO / list_name).exists():
                files.append((f"var/lib/dpkg/info/{list_name}", (HOST_DPKG_INFO / list_name).read_bytes(), 0o644))
    return tuple(files)


def push_debian_apt_base(registry_host: str, workdir: Path, sources_line: str,
                         packages: tuple[str, ...] = PACKAGES, tag: str = "apt") -> str:
    packages = tuple(dict.fromkeys(packages + APT_PACKAGES))
    files = dpkg_database(packages) + (("etc/apt/sources.list.d/tests.list", sources_line.encode(), 0o644),)
    return push_debian_python_base(registry_host, workdir, packages, tag, passwd=APT_PASSWD,
                                   directories=APT_DIRECTORIES, files=files)
