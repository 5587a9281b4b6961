"""The platforms an adapter's input names, checked before dockyard runs: docker's syntax (`os/arch[/variant]`,
e.g. linux/amd64, linux/arm64, linux/arm/v7, linux/s390x, linux/ppc64le, linux/riscv64), comma lists, any number
of them (several make one multi-platform image index). Architecture aliases (x86_64, aarch64, armhf) are
normalised as docker does. Which of them this runner can run RUN steps for (natively or under QEMU) is
dockyard's to say: `dockyard doctor` lists them, and a build for one it cannot run fails before any work."""

from __future__ import annotations

import re
from collections.abc import Iterable

from dockyard.errors import UsageError

from .public import Platform

# The operating systems and architectures Go (and so containerd's platform parser, which docker and BuildKit
# use) knows: a name outside them is a typo, refused here rather than built as a platform nobody runs.
KNOWN_OS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
                      "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"})
KNOWN_ARCHITECTURES = frozenset({"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips",
                                 "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64",
                                 "ppc64le", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"})
_VARIANT = re.compile(r"^[a-z0-9]+$")
EXAMPLES = "linux/amd64, linux/arm64, linux/arm/v7"


def split_platforms(items: Iterable[str]) -> list[str]:
    """Each item's comma-separated platforms, trimmed, empty ones dropped (`a,b` and `a` `b` are the same)."""
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def parse_platform(text: str, *, subject: str) -> Platform:
    """The platform `text` names, or a UsageError naming it and `subject` (the input it came from)."""
    try:
        platform = Platform.parse(text)
    except ValueError:
        platform = None
    if platform is None or "/" not in text.strip():
        raise UsageError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT]", subject=subject,
                         hint=f"e.g. {EXAMPLES} (a comma-separated list builds one image index of them all)")
    if platform.os not in KNOWN_OS:
        raise UsageError(f"invalid platform {text!r}: unknown operating system {platform.os!r}", subject=subject,
                         hint=f"e.g. {EXAMPLES}")
    if platform.architecture not in KNOWN_ARCHITECTURES:
        raise UsageError(f"invalid platform {text!r}: unknown architecture {platform.architecture!r}",
                         subject=subject, hint=f"e.g. {EXAMPLES}; architectures: "
                                               + ", ".join(sorted(KNOWN_ARCHITECTURES)))
    if platform.variant is not None and not _VARIANT.match(platform.variant):
        raise UsageError(f"invalid platform {text!r}: invalid variant {platform.variant!r}", subject=subject,
                         hint=f"e.g. {EXAMPLES}")
    return platform


def check_platforms(items: Iterable[str], *, subject: str = "input platforms") -> tuple[str, ...]:
    """The platforms `items` name (each may be a comma list), normalised, in order, each once; () for dockyard's
    default (linux/amd64). A UsageError naming `subject` for one that is not a platform."""
    found: list[str] = []
    for text in split_platforms(items):
        name = str(parse_platform(text, subject=subject))
        if name not in found:
            found.append(name)
    return tuple(found)


def platform_slug(platform: str) -> str:
    """`linux/arm/v7` → `linux-arm-v7`: a platform where only a tag's or an artifact's characters go."""
    return platform.replace("/", "-")
