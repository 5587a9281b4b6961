"""`/etc/os-release` (or `/usr/lib/os-release`, which it usually links to): the distribution an image is."""

from __future__ import annotations

import shlex

from .model import Distro

PATHS = ("etc/os-release", "usr/lib/os-release")


def parse_os_release(data: bytes) -> Distro | None:
    values: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, equals, value = line.strip().partition("=")
        if not equals or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:  # an unbalanced quote: take the text as it is
            words = [value.strip("\"'")]
        values[key.strip()] = " ".join(words)
    if not values.get("ID"):
        return None
    return Distro(values["ID"].lower(), values.get("VERSION_ID") or None, values.get("VERSION_CODENAME") or None,
                  values.get("PRETTY_NAME") or None)
