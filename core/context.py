"""The build context: the directory COPY and ADD read from, filtered by .dockerignore."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ContextError
from .rootfs.paths import clean, resolve_in_root


def _pattern_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore pattern language: Go's filepath.Match plus `**` for any number of dirs."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1:j].replace("\\", "\\\\")
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile("^" + out + "$")


@dataclass(frozen=True)
class IgnoreRule:
    regex: re.Pattern
    exclude: bool  # False for `!pattern` exceptions


class DockerIgnore:
    def __init__(self, rules: list[IgnoreRule]):
        self.rules = rules

    @classmethod
    def load(cls, context: Path, dockerfile: Path) -> "DockerIgnore":
        # The per-Dockerfile NAME.dockerignore (next to the Dockerfile) wins over CONTEXT/.dockerignore.
        candidates = [dockerfile.parent / (dockerfile.name + ".dockerignore"), context / ".dockerignore"]
        for path in candidates:
            if path.is_file():
                return cls.parse(path.read_text(encoding="utf-8", errors="replace"))
        return cls([])

    @classmethod
    def parse(cls, text: str) -> "DockerIgnore":
        rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            if not exclude:
                line = line[1:].strip()
            pattern = clean(line)
            if not pattern:
                continue
            rules.append(IgnoreRule(_pattern_regex(pattern), exclude))
        return cls(rules)

    def ignored(self, rel: str) -> bool:
        """Is this context-relative path excluded? The last matching rule decides; a path is also excluded
        when one of its parent directories is."""
        result = False
        parts = rel.split("/")
        for rule in self.rules:
            for n in range(1, len(parts) + 1):
                if rule.regex.match("/".join(parts[:n])):
                    result = rule.exclude
                    break
        return result


class BuildContext:
    """The context directory as COPY sees it: paths resolved inside it, ignored files invisible."""

    def __init__(self, root: Path, ignore: DockerIgnore):
        self.root = str(root.resolve())
        self.ignore = ignore

    def resolve(self, path: str) -> str:
        return resolve_in_root(self.root, clean(path))

    def rel(self, host_path: str) -> str:
        return os.path.relpath(host_path, self.root).replace(os.sep, "/")

    def visible(self, host_path: str) -> bool:
        rel = self.rel(host_path)
        return rel == "." or not self.ignore.ignored(rel)

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching a COPY source pattern (wildcards per path component)."""
        return glob_in_root(self.root, pattern, self.visible)


def has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def glob_in_root(root: str, pattern: str, visible=lambda p: True) -> list[str]:
    parts = [p for p in clean(pattern).split("/") if p]
    matches = [root]
    for part in parts:
        nxt = []
        for base in matches:
            if has_wildcard(part):
                try:
                    names = sorted(os.listdir(base))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                nxt.extend(os.path.join(base, n) for n in names if fnmatch.fnmatchcase(n, part))
            else:
                candidate = os.path.join(base, part)
                if os.path.lexists(candidate):
                    nxt.append(candidate)
        matches = [m for m in nxt if visible(m)]
    return matches


def check_context(context: Path) -> None:
    if not context.exists():
        raise ContextError(f"build context {context} does not exist", hint="pass the directory to build from")
    if not context.is_dir():
        raise ContextError(f"build context {context} is not a directory")
