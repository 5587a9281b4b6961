"""The build context: the directory COPY and ADD read from, filtered by .dockerignore.

Patterns follow moby/patternmatcher (what docker and BuildKit use for .dockerignore and COPY --exclude): each
pattern is cleaned like Go's filepath.Clean, `*` and `?` never cross a `/`, `**` spans any number of
directories, `!` re-includes, the last matching pattern decides, and a pattern that matches a directory
matches everything below it.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ContextError, DockerfileError
from .rootfs.paths import clean, resolve_in_root


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """patternmatcher's translation of one cleaned pattern into an anchored regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1  # `**/` is `**`: the slash is part of what it spans
            # `**` at the end matches everything below; elsewhere any number of leading directories.
            out += ".*" if i >= len(pattern) else "(?:.*/)?"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\":
            i += 1
            out += re.escape(pattern[i]) if i < len(pattern) else "\\\\"
        elif c in "[]":
            out += c  # character classes pass through, as patternmatcher passes them to Go's regexp
        else:
            out += re.escape(c)
        i += 1
    try:
        return re.compile("^" + out + "$", re.DOTALL)
    except re.error as exc:
        raise DockerfileError(f"invalid pattern {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class Pattern:
    """One .dockerignore (or COPY --exclude) pattern, cleaned and compiled to a regular expression."""

    text: str  # cleaned, without the leading `!`
    regex: re.Pattern[str]
    exception: bool  # `!pattern`: re-includes what earlier patterns excluded


class PatternMatcher:
    """An ordered list of exclude patterns and `!` exceptions, matched against slash-separated relative paths."""

    def __init__(self, patterns: list[str]):
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip()
            exception = text.startswith("!")
            if exception:
                text = text[1:].strip()
                if not text:  # patternmatcher refuses it rather than reading it as "re-include everything"
                    raise DockerfileError('illegal exclusion pattern: "!" (a `!` must be followed by a pattern)')
            text = _clean_pattern(text)
            if text:
                self.patterns.append(Pattern(text, _pattern_regex(text), exception))
        self.has_exceptions = any(p.exception for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, rel: str) -> bool:
        """Is this path excluded? A pattern matching one of its parent directories matches it too."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        excluded = False
        for pattern in self.patterns:
            if pattern.exception != excluded:
                continue  # an exclusion cannot change an excluded path, nor an exception an included one
            if any(pattern.regex.match(prefix) for prefix in prefixes):
                excluded = not pattern.exception
        return excluded

    def may_include_below(self, rel_dir: str) -> bool:
        """Could an exception re-include something inside this excluded directory? Then it must be walked."""
        return any(p.exception and (p.text.startswith(rel_dir + "/") or "*" in p.text or "?" in p.text
                                    or "[" in p.text) for p in self.patterns)


def _clean_pattern(text: str) -> str:
    """filepath.Clean, then a leading `/` dropped: patterns are relative to the context."""
    if not text:
        return ""
    cleaned = posixpath.normpath(text)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return "" if cleaned in (".", "/") else cleaned


class DockerIgnore(PatternMatcher):
    @classmethod
    def load(cls, context: Path, dockerfile: Path) -> DockerIgnore:
        # The per-Dockerfile NAME.dockerignore (next to the Dockerfile) wins over CONTEXT/.dockerignore.
        candidates = [dockerfile.parent / (dockerfile.name + ".dockerignore"), context / ".dockerignore"]
        for path in candidates:
            if path.is_file():
                try:
                    return cls.parse(path.read_text(encoding="utf-8", errors="replace"))
                except OSError as exc:
                    raise ContextError(f"cannot read {path}: {exc.strerror}") from None
                except DockerfileError as exc:
                    raise ContextError(exc.message, subject=str(path), hint="fix or remove that line") from None
        return cls([])

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        """The file format of moby/patternmatcher/ignorefile: a line starting with `#` is a comment (only at
        its very start), blank lines are skipped, surrounding whitespace is trimmed."""
        lines = text.removeprefix("\ufeff").splitlines()
        return cls([line for line in lines if not line.startswith("#") and line.strip()])

    def ignored(self, rel: str) -> bool:
        return self.matches(rel)


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
        if not self.ignore:
            return True  # no .dockerignore (or an empty one): asked for every file COPY reads, so no relpath
        rel = self.rel(host_path)
        return rel == "." or not self.ignore.matches(rel)

    def walk_into(self, host_dir: str) -> bool:
        """An ignored directory is still walked when an exception could re-include something inside it."""
        rel = self.rel(host_dir)
        return rel == "." or self.ignore.may_include_below(rel)

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching a COPY source pattern (wildcards per path component)."""
        return glob_in_root(self.root, pattern, self.visible)

    def visible_tree(self, host_dir: str, dest: str) -> None:
        """Recreate the visible part of the context directory `host_dir` at `dest` (for RUN --mount=type=bind,
        which sees the context as BuildKit receives it: without what .dockerignore excludes). Files are hard
        links when the context shares a filesystem with `dest`, so this costs no copying; symlinks are kept."""
        os.makedirs(dest, exist_ok=True)
        shutil.copystat(host_dir, dest)
        for entry in sorted(os.scandir(host_dir), key=lambda e: e.name):
            target = os.path.join(dest, entry.name)
            if entry.is_dir(follow_symlinks=False):
                if self.visible(entry.path) or self.walk_into(entry.path):
                    self.visible_tree(entry.path, target)
            elif not self.visible(entry.path):
                continue
            elif entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            else:
                try:
                    os.link(entry.path, target, follow_symlinks=False)
                except OSError:  # another filesystem (or a special file): a copy
                    shutil.copy2(entry.path, target, follow_symlinks=False)


def has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def glob_in_root(root: str, pattern: str, visible: Callable[[str], bool] = lambda p: True) -> list[str]:
    """Paths under root matching a COPY source with wildcards (Go's filepath.Match per path component).
    Intermediate directories are followed inside the root; the matches themselves are not resolved."""
    # Go's filepath.Match negates a character class with `[^...]`, Python's fnmatch with `[!...]`.
    parts = [p.replace("[^", "[!") for p in clean(pattern).split("/") if p]
    matches = [root]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        found: list[str] = []
        for base in matches:
            if has_wildcard(part):
                try:
                    names = sorted(os.listdir(base))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                found.extend(os.path.join(base, n) for n in names if fnmatch.fnmatchcase(n, part))
            elif os.path.lexists(os.path.join(base, part)):
                found.append(os.path.join(base, part))
        if not last:
            # A directory on the way may be a symlink: follow it, inside the root.
            found = [resolve_in_root(root, os.path.relpath(f, root)) for f in found]
        matches = [m for m in found if visible(m) or (not last and os.path.isdir(m))]
    return matches


def check_context(context: Path) -> None:
    if not os.access(context.parent, os.X_OK):
        raise ContextError(f"build context {context} cannot be reached: no permission to enter {context.parent}",
                           hint="run as a user that can read the context, or make its directories readable")
    if not context.exists():
        raise ContextError(f"build context {context} does not exist", hint="pass the directory to build from")
    if not context.is_dir():
        raise ContextError(f"build context {context} is not a directory")
