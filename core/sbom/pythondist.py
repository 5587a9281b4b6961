"""Installed Python distributions: `NAME-VERSION.dist-info/METADATA` (wheels, pip) and `*.egg-info/PKG-INFO`
or a lone `*.egg-info` file (setuptools, Debian's python3-* packages), in the core metadata format (RFC 822
headers)."""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from .model import PYPI, Package, Parsed

_MAX_SHORT_LICENSE = 100  # a longer License: field is the license's whole text, no name


def is_metadata(path: str) -> bool:
    directory, _, base = path.rpartition("/")
    return ((base == "METADATA" and directory.endswith(".dist-info"))
            or (base == "PKG-INFO" and directory.endswith(".egg-info"))
            or base.endswith(".egg-info"))


def parse_metadata(path: str, data: bytes) -> Parsed:
    # Only the headers: the body is the long description. Core metadata is UTF-8; parsed as bytes, a header with
    # non-ASCII text (an author's name) would come back as an email Header object instead of a str.
    head = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    headers = HeaderParser(policy=compat32).parsestr(head + "\n\n")
    name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
    if not name or not version:
        return Parsed((), (f"/{path}: skipped a Python distribution whose metadata has no "
                           f"{'Name' if not name else 'Version'}",))
    return Parsed((Package(kind=PYPI, name=name, version=version, licenses=_licenses(headers),
                           supplier=_author(headers), homepage=_homepage(headers),
                           summary=(headers.get("Summary") or "").strip() or None, location=path),))


def _licenses(headers: Message) -> tuple[str, ...]:
    get = headers.get
    expression = (get("License-Expression") or "").strip()
    if expression:
        return (expression,)
    license_field = (get("License") or "").strip()
    if license_field and "\n" not in license_field and len(license_field) <= _MAX_SHORT_LICENSE \
            and license_field.upper() != "UNKNOWN":
        return (license_field,)
    classifiers = headers.get_all("Classifier") or []
    return tuple(c.strip() for c in classifiers if c.strip().startswith("License ::") and c.count("::") >= 2)


def _author(headers: Message) -> str | None:
    get = headers.get
    author = (get("Author") or "").strip()
    if author and author.upper() != "UNKNOWN":
        return author
    email = (get("Author-email") or "").strip()
    return email or None


def _homepage(headers: Message) -> str | None:
    home = (headers.get("Home-page") or "").strip()
    if home and home.upper() != "UNKNOWN":
        return home
    for url in headers.get_all("Project-URL") or []:
        label, _, value = url.partition(",")
        if label.strip().lower() in ("homepage", "home", "source"):
            return value.strip() or None
    return None
