"""Each ecosystem's version order, as the scanner compares installed and fixed versions: dpkg's (epochs, `~`,
revisions; python-debian's implementation, checked here against `dpkg --compare-versions` itself), apk's and
PEP 440's."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dockyard.scan.versions import compare

DPKG_PAIRS = [
    ("3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),  # a stable update's ~ revision
    ("3.0.11-1~deb12u2", "3.0.11-1"),  # ~ sorts before everything, the end included
    ("1.2.13.dfsg-1", "1:1.2.11.dfsg-2+deb11u2"),  # the epoch wins over the upstream version
    ("1:1.2.11.dfsg-2+deb11u1", "1:1.2.11.dfsg-2+deb11u2"),
    ("2.36-9+deb12u3", "2.36-9+deb12u10"),  # revisions compare numerically
    ("1.0~rc1", "1.0"),
    ("1.0", "1.0-0.1"),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
]


@pytest.mark.parametrize(("lower", "higher"), DPKG_PAIRS)
def test_dpkg_order(lower, higher):
    assert compare("Debian:12", lower, higher) == -1
    assert compare("Debian:12", higher, lower) == 1
    assert compare("Ubuntu:22.04", lower, higher) == -1


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_dpkg_order_is_dpkgs_own():
    for lower, higher in DPKG_PAIRS:
        subprocess.run(["dpkg", "--compare-versions", lower, "lt", higher], check=True)


@pytest.mark.parametrize(("lower", "higher"), [
    ("3.1.3-r0", "3.1.4-r0"),
    ("3.1.4-r0", "3.1.4-r1"),
    ("1.36.1-r15", "1.36.1-r20"),  # the revision compares as a number
    ("1.2.3_rc1-r0", "1.2.3-r0"),  # _rc before the release
    ("1.2.3-r0", "1.2.3_p1-r0"),  # _p (patch) after it
    ("1.2.3_alpha-r0", "1.2.3_beta-r0"),
    ("1.2.3-r9", "1.2.3a-r0"),  # a letter after the numbers
    ("1.2.9-r0", "1.2.10-r0"),
    ("1.2-r0", "1.2.0.1-r0"),
])
def test_apk_order(lower, higher):
    assert compare("Alpine:v3.20", lower, higher) == -1
    assert compare("Alpine:v3.20", higher, lower) == 1


@pytest.mark.parametrize(("lower", "higher"), [
    ("2.31.0rc1", "2.31.0"), ("2.30.0", "2.31.0"), ("2.31.0", "2.31.0.post1"), ("1.0.dev1", "1.0a1"),
    ("2.9", "2.10"), ("1!0.1", "1!0.2"), ("9.0", "1!0.1"),
])
def test_pep440_order(lower, higher):
    assert compare("PyPI", lower, higher) == -1
    assert compare("PyPI", higher, lower) == 1


def test_equal_versions_compare_equal():
    assert compare("Debian:12", "1:1.0-1", "1:1.0-1") == 0
    assert compare("PyPI", "2.31", "2.31.0") == 0  # PEP 440: trailing zeros do not count
    assert compare("Alpine:v3.18", "3.1.4-r0", "3.1.4") == 0
