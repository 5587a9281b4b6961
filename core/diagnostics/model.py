"""One model for every finding, whoever found it: dockyard's checks, hadolint, or a failed build."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Severity(Enum):
    """Ordered: ERROR > WARNING > INFO, so `--fail-on warning` means `finding.severity >= Severity.WARNING`."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def __lt__(self, other: Severity) -> bool:
        return self.rank < other.rank

    def __le__(self, other: Severity) -> bool:
        return self.rank <= other.rank

    def __gt__(self, other: Severity) -> bool:
        return self.rank > other.rank

    def __ge__(self, other: Severity) -> bool:
        return self.rank >= other.rank


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}

SOURCES = ("dockyard", "hadolint", "build", "scan")  # scan: a vulnerability of the image (scan/findings.py)


@dataclass(frozen=True)
class Finding:
    """A problem found in a Dockerfile, by dockyard's checks, hadolint or a failed build: what, where and how severe."""

    rule: str  # BuildKit's check name where BuildKit has the check, hadolint's DLxxxx/SCxxxx, else ours
    severity: Severity
    file: str  # as given, or relative to the working directory
    line: int | None  # 1-based; None for findings about the whole file (e.g. an unused build arg)
    message: str
    end_line: int | None = None
    column: int | None = None  # 1-based
    help_url: str = ""
    source: str = "dockyard"

    @property
    def sort_key(self) -> tuple[int, str, int, int, str]:
        """Most severe first, then in file order."""
        return (-self.severity.rank, self.file, self.line or 0, self.column or 0, self.rule)


def buildkit_help_url(rule: str) -> str:
    """Docker's page for a BuildKit check, e.g. UndefinedArgInFrom -> .../rule/undefined-arg-in-from/."""
    # A new word starts at a capital after a lower-case letter, or at the last capital of an acronym
    # (JSONArgsRecommended -> json-args-recommended).
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", rule).lower()
    return f"https://docs.docker.com/go/dockerfile/rule/{kebab}/"


def hadolint_help_url(code: str) -> str:
    """hadolint documents its DL rules in its wiki; the SC ones are ShellCheck's."""
    if code.startswith("SC"):
        return f"https://www.shellcheck.net/wiki/{code}"
    return f"https://github.com/hadolint/hadolint/wiki/{code}"

