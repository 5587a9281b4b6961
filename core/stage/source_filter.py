"""Which files of a source a COPY (or a bind mount's cache key) sees: .dockerignore for the build context,
--exclude for every source."""

from __future__ import annotations

import os

from ..context import BuildContext, PatternMatcher


class SourceFilter:
    """.dockerignore (context sources only) and --exclude (paths relative to the source being copied)."""

    def __init__(self, context: BuildContext | None, excludes: PatternMatcher, base: str) -> None:
        self.context = context
        self.excludes = excludes
        self.base = base

    def _excluded_by_flag(self, host_path: str) -> bool:
        return bool(self.excludes) and self.excludes.matches(os.path.relpath(host_path, self.base))

    def excluded(self, host_path: str) -> bool:
        ignored = self.context is not None and not self.context.visible(host_path)
        return ignored or self._excluded_by_flag(host_path)

    def walk_into(self, host_dir: str) -> bool:
        if self.context is not None and not self.context.visible(host_dir) and not self.context.walk_into(host_dir):
            return False
        if self._excluded_by_flag(host_dir):
            return self.excludes.may_include_below(os.path.relpath(host_dir, self.base))
        return True


class ContextPresence:
    """Whether a context path is there for COPY once .dockerignore has been applied (BuildKit receives the
    context already filtered, and expands wildcards in what it received): a path not ignored, or an ignored
    directory that holds something an exception re-includes (it is sent as that thing's parent)."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context

    def present(self, host_path: str) -> bool:
        if self.context.visible(host_path):
            return True
        if not os.path.isdir(host_path) or os.path.islink(host_path) or not self.context.walk_into(host_path):
            return False
        try:
            entries = list(os.scandir(host_path))
        except OSError:
            return False
        return any(self.present(entry.path) for entry in entries)
