"""kaniko's executor flags, read as spf13/pflag reads them.

pflag's rules, which pipelines rely on: `--flag=value` and `--flag value`; a boolean is `--flag` or
`--flag=true|false` (never `--flag false`: pflag does not take the next word for a boolean); repeatable flags
collect every occurrence; `-c`, `-f`, `-d`, `-v` are short for context, dockerfile, destination, verbosity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import overload

from ..errors import UsageError

VALUE, MULTI, BOOL = "value", "multi", "bool"

# Every flag kaniko's executor documents (v1.23), by kind. Flags we map, and flags we accept with a note,
# are both here; options.py decides what each means for dockyard.
FLAG_KINDS: dict[str, str] = {
    "context": VALUE, "context-sub-path": VALUE, "dockerfile": VALUE, "destination": MULTI, "no-push": BOOL,
    "tar-path": VALUE, "oci-layout-path": VALUE, "digest-file": VALUE, "image-name-with-digest-file": VALUE,
    "image-name-tag-with-digest-file": VALUE, "build-arg": MULTI, "target": VALUE, "label": MULTI,
    "cache": BOOL, "cache-repo": VALUE, "cache-dir": VALUE, "cache-ttl": VALUE, "cache-copy-layers": BOOL,
    "cache-run-layers": BOOL, "reproducible": BOOL, "single-snapshot": BOOL, "snapshot-mode": VALUE,
    "use-new-run": BOOL, "compression": VALUE, "compression-level": VALUE, "insecure": BOOL,
    "insecure-pull": BOOL, "insecure-registry": MULTI, "skip-tls-verify": BOOL, "skip-tls-verify-pull": BOOL,
    "skip-tls-verify-registry": MULTI, "registry-certificate": MULTI, "registry-client-cert": MULTI,
    "registry-mirror": MULTI, "registry-map": MULTI, "skip-default-registry-fallback": BOOL, "push-retry": VALUE,
    "image-download-retry": VALUE, "custom-platform": VALUE, "ignore-path": MULTI, "ignore-var-run": BOOL,
    "skip-unused-stages": BOOL, "cleanup": BOOL, "verbosity": VALUE, "log-format": VALUE, "log-timestamp": BOOL,
    "force": BOOL, "kaniko-dir": VALUE, "skip-push-permission-check": BOOL, "no-push-cache": BOOL,
}
SHORT = {"c": "context", "f": "dockerfile", "d": "destination", "v": "verbosity"}
_TRUE = {"true", "1", "t", "TRUE", "True", "T"}  # Go's strconv.ParseBool
_FALSE = {"false", "0", "f", "FALSE", "False", "F"}


@dataclass
class KanikoFlags:
    """What was given: the last value of single-value flags, every value of repeatable ones, booleans."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    bools: dict[str, bool] = field(default_factory=dict)

    @overload
    def value(self, name: str) -> str | None: ...

    @overload
    def value(self, name: str, default: str) -> str: ...

    def value(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def many(self, name: str) -> list[str]:
        return self.lists.get(name, [])

    def flag(self, name: str) -> bool:
        return self.bools.get(name, False)

    def given(self, name: str) -> bool:
        return name in self.values or name in self.lists or name in self.bools


def parse_flags(argv: list[str]) -> KanikoFlags:
    flags = KanikoFlags()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, inline = _split(arg)
        kind = FLAG_KINDS[name]
        if kind == BOOL:
            flags.bools[name] = _parse_bool(name, inline)
            continue
        if inline is None:
            if i >= len(argv):
                raise UsageError(f"kaniko flag --{name} needs a value", hint=f"e.g. --{name}=VALUE")
            inline = argv[i]
            i += 1
        if kind == MULTI:
            flags.lists.setdefault(name, []).append(inline)
        else:
            flags.values[name] = inline
    return flags


def _split(arg: str) -> tuple[str, str | None]:
    """`--name=value` / `--name` / `-c=value` / `-c` → (long name, inline value or None)."""
    if arg.startswith("--"):
        name, eq, value = arg[2:].partition("=")
    elif arg.startswith("-") and len(arg) > 1:
        short, eq, value = arg[1], "=" if len(arg) > 2 else "", arg[2:].removeprefix("=")
        name = SHORT.get(short, "")
        if not name:
            raise UsageError(f"unknown kaniko flag {arg!r}", hint="see docs/migrating-from-kaniko.md for the flags")
    else:
        raise UsageError(f"unexpected argument {arg!r}: kaniko's executor takes only flags",
                         hint="give the context with --context, e.g. --context dir://.")
    if name not in FLAG_KINDS:
        raise UsageError(f"unknown kaniko flag --{name}",
                         hint="see docs/migrating-from-kaniko.md for the flags dockyard kaniko accepts")
    return name, (value if eq else None)


def _parse_bool(name: str, text: str | None) -> bool:
    if text is None or text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"invalid value {text!r} for --{name}: expected true or false")
