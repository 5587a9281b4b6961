"""Which ids a root builder may give a RUN step, in the user namespace it runs in.

Root of the host's user namespace may switch to any uid, gid and supplementary groups. Root of a user namespace
with one mapped id (`unshare -r`, `unshare --map-root-user`, some CI sandboxes) may not: /proc/self/setgroups says
"deny" there (the kernel refuses setgroups, even setgroups([]), to a namespace whose gid map an unprivileged
process wrote), and ids outside /proc/self/uid_map and gid_map cannot be switched to (EINVAL). The runners then
skip what the kernel refuses instead of failing every RUN, and say so once per build (`notice_once`).
"""

from __future__ import annotations

from functools import cache
from typing import Callable

_said: set[str] = set()


@cache
def setgroups_allowed() -> bool:
    """False where the kernel refuses setgroups to this process's user namespace ("deny" in /proc/self/setgroups)."""
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True  # a kernel before 3.19 has no such file, and no such restriction


@cache
def _ranges(name: str) -> tuple[tuple[int, int], ...]:
    """(first, count) of each line of /proc/self/uid_map or gid_map: the ids of this namespace that exist."""
    try:
        with open(f"/proc/self/{name}") as f:
            return tuple((int(inside), int(count)) for inside, _, count in (line.split() for line in f if line.strip()))
    except (OSError, ValueError):
        return ((0, 1 << 32),)


def mapped(uid: int, gid: int) -> bool:
    """Both ids exist in this process's user namespace (a setuid/setgid to them can succeed)."""
    return all(any(first <= value < first + count for first, count in _ranges(name))
               for name, value in (("uid_map", uid), ("gid_map", gid)))


def notice_once(text: str, on_line: Callable[[str], None]) -> bool:
    """Passes `text` to the step's log the first time this builder says it; True if it did."""
    if text in _said:
        return False
    _said.add(text)
    on_line(f"dockyard: {text}")
    return True


GROUPS_SKIPPED = ("setgroups is denied in this user namespace (one mapped id, as `unshare -r` makes): RUN steps "
                  "run without the supplementary groups of their user")
