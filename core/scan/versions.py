"""Each ecosystem's own version order, as sort keys: dpkg's (epochs, `~`, revisions: python-debian's
implementation), apk's, PEP 440's (packaging's) and a plain one for the rest (npm's semver is close enough to it
for release versions). A key is only ever compared with keys of the same ecosystem."""

from __future__ import annotations

import re
from functools import lru_cache, cache
from typing import Any, Callable

from debian.debian_support import Version as DpkgVersion
from packaging.version import InvalidVersion, Version as Pep440Version

# OSV's `introduced: "0"`: before every version of every ecosystem.
ZERO = "0"


def dpkg_key(version: str) -> Any:
    try:
        return DpkgVersion(version)
    except ValueError:
        return DpkgVersion("0")  # not a dpkg version: sorts lowest, so it is never taken as fixed


# apk's suffixes, in order; a version without one sorts between _rc and _cvs.
_APK_SUFFIXES = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "": 4, "cvs": 5, "svn": 6, "git": 7, "hg": 8, "p": 9}
_APK = re.compile(r"^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:~[0-9a-f]+)?"
                  r"(?:-r(\d+))?$")
_APK_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")


def apk_key(version: str) -> Any:
    """apk-tools' order: numeric components, an optional letter, suffixes (_alpha < _beta < _pre < _rc < none <
    _cvs < _svn < _git < _hg < _p, each with an optional number), then the -rN package revision."""
    match = _APK.match(version)
    if match is None:
        return ((-1,), "", (), -1, version)  # unparseable: below every valid version, ordered among themselves
    numbers, letter, suffixes, revision = match.groups()
    parsed = tuple((_APK_SUFFIXES[name], int(number or 0)) for name, number in _APK_SUFFIX.findall(suffixes))
    return (tuple(int(n) for n in numbers.split(".")), letter, parsed + ((_APK_SUFFIXES[""], 0),),
            int(revision or 0), "")


def pep440_key(version: str) -> Any:
    try:
        return (1, Pep440Version(version), ())
    except InvalidVersion:
        return (0, Pep440Version("0"), generic_key(version))


_PARTS = re.compile(r"\d+|[A-Za-z]+")


def generic_key(version: str) -> Any:
    """Numbers compared as numbers, words as words; a pre-release (`-rc1`, after the release part) sorts before
    the release, as semver says."""
    release, dash, pre = version.partition("-")
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _PARTS.findall(release))
    return (parts, 0 if dash else 1, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _PARTS.findall(pre)))


_KEYS: dict[str, Callable[[str], Any]] = {"Debian": dpkg_key, "Ubuntu": dpkg_key, "Alpine": apk_key,
                                          "PyPI": pep440_key}


@cache
def key_function(ecosystem: str) -> Callable[[str], Any]:
    """The sort key of versions of `ecosystem` (OSV's name, with or without its release: "Debian:12")."""
    base = ecosystem.split(":", 1)[0]
    return lru_cache(maxsize=65536)(_KEYS.get(base, generic_key))


def compare(ecosystem: str, a: str, b: str) -> int:
    key = key_function(ecosystem)
    first, second = key(a), key(b)
    return -1 if first < second else (1 if first > second else 0)
