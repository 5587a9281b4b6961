"""Semantic versions in git tags (https://semver.org, with the `v` most projects put in front), for the CI
adapters that turn a release tag into image tags (1.2.3, 1.2, 1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")


@dataclass(frozen=True)
class SemVer:
    """A semantic version read from a git tag (a leading `v` dropped)."""

    major: str
    minor: str
    patch: str
    prerelease: str | None = None
    build: str | None = None

    @property
    def version(self) -> str:
        """MAJOR.MINOR.PATCH[-PRERELEASE], without build metadata."""
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.prerelease}" if self.prerelease else "")

    def release_tags(self) -> list[str]:
        """The shorter tags a release also moves: MAJOR.MINOR and MAJOR (none for a pre-release)."""
        return [] if self.prerelease else [f"{self.major}.{self.minor}", self.major]


def parse_semver(tag: str) -> SemVer | None:
    m = _SEMVER.match(tag)
    return SemVer(*m.groups()) if m else None
