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
    """dpkg's order as a tuple: (epoch, upstream, revision), each string part as dpkg's verrevcmp walks it.
    python-debian parses the version (and its comparison is what the tests hold this key to); comparing its
    Version objects directly costs a pure-Python walk per comparison, and a scan makes hundreds of thousands."""
    try:
        parsed = DpkgVersion(version)
    except ValueError:
        return (-1, (), ())  # not a dpkg version: sorts lowest, so it is never taken as fixed
    return (int(parsed.epoch or 0), _dpkg_part(parsed.upstream_version or ""),
            _dpkg_part(parsed.debian_revision or ""))


_DPKG_SEGMENT = re.compile(r"([^0-9]*)([0-9]*)")


def _dpkg_order(character: str) -> int:
    # dpkg's order(): '~' before the end of the string, the end before letters, letters before everything else.
    if character == "~":
        return -1
    if character.isalpha() and character.isascii():
        return ord(character)
    return ord(character) + 256


_DPKG_ORDERS = {chr(c): _dpkg_order(chr(c)) for c in range(128)}


@lru_cache(maxsize=65536)
def _dpkg_part(text: str) -> tuple[Any, ...]:
    """Alternating non-digit runs (each a tuple of dpkg's character orders ended by the end-of-string's 0) and
    numbers; the same padding closes every part, so that tuple order is verrevcmp's (an empty part is "0")."""
    key: list[Any] = []
    position = 0
    while True:
        match = _DPKG_SEGMENT.match(text, position)
        assert match is not None  # the pattern matches the empty string
        letters, digits = match.groups()
        key.append(tuple([_DPKG_ORDERS.get(c) or _dpkg_order(c) for c in letters]) + (0,))
        key.append(int(digits) if digits else 0)
        position = match.end()
        if position >= len(text):
            break
    key += [(0,), 0]
    return tuple(key)


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
