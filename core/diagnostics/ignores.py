"""Inline control of the checks: BuildKit's `# check=` parser directive and `# dockyard ignore=` comments.

- `# check=skip=Rule1,Rule2` (or `skip=all`) turns dockyard's checks off for the whole file, and
  `# check=error=true` makes the remaining ones errors, as BuildKit does with its build checks.
- `# dockyard ignore=Rule[,Rule]` on the comment line(s) directly above an instruction silences those rules
  for that instruction only (hadolint reads its own `# hadolint ignore=` comments itself).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .model import Finding, Severity

_IGNORE_COMMENT = re.compile(r"\s*#\s*dockyard\s+ignore=([A-Za-z0-9_,\s]+)")


@dataclass(frozen=True)
class CheckDirective:
    """BuildKit's `# check=` parser directive: which of dockyard's checks to skip, whether warnings become errors."""

    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False

    @classmethod
    def parse(cls, value: str) -> CheckDirective:
        """BuildKit's syntax: `;`-separated `key=value` settings; unknown keys are left to BuildKit."""
        skip: set[str] = set()
        error = False
        for setting in value.split(";"):
            key, _, setting_value = setting.partition("=")
            key = key.strip().lower()
            if key == "skip":
                skip |= {rule.strip() for rule in setting_value.split(",") if rule.strip()}
            elif key == "error":
                error = setting_value.strip().lower() == "true"
        return cls(frozenset(skip - {"all"}), "all" in {s.lower() for s in skip}, error)

    def apply(self, finding: Finding) -> Finding | None:
        """The finding as the directive leaves it: None when skipped. Only dockyard's checks are affected:
        a failed parse is never skipped, and hadolint has its own configuration."""
        if finding.source != "dockyard" or finding.severity is Severity.ERROR:
            return finding
        if self.skip_all or finding.rule in self.skip:
            return None
        if self.error and finding.severity is Severity.WARNING:
            return dataclasses.replace(finding, severity=Severity.ERROR)
        return finding


def ignored_rules_by_line(text: str) -> dict[int, set[str]]:
    """{instruction's first line: rules ignored there} from `# dockyard ignore=` comments: each applies to the
    first line below it that is not a comment (a blank line in between breaks the link)."""
    lines = text.split("\n")
    ignored: dict[int, set[str]] = {}
    for index, line in enumerate(lines):
        match = _IGNORE_COMMENT.match(line)
        if match is None:
            continue
        following = index + 1
        while following < len(lines) and lines[following].lstrip().startswith("#"):
            following += 1
        if following < len(lines) and lines[following].strip():
            rules = {rule.strip() for rule in match.group(1).split(",") if rule.strip()}
            ignored.setdefault(following + 1, set()).update(rules)
    return ignored
