"""What the SBOM documents share: the tool that wrote them, when (SOURCE_DATE_EPOCH for reproducible output),
stable identifiers derived from the image's digest, and the suppliers and licenses of packages in the forms both
formats accept."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from typing import Mapping

from ..version import __version__
from .model import Catalog, Package

TOOL_NAME = "dockyard"
TOOL_VERSION = __version__
# The name space dockyard's document identifiers are made in (uuid5), so the same image gives the same ids.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://spdx.org/spdxdocs/dockyard")
_ORGANIZATION_WORDS = re.compile(r"\b(team|maintainers|project|developers|group|foundation|community|packagers|"
                                 r"inc|ltd|llc|gmbh|corporation|authors)\b", re.IGNORECASE)


def creation_time(environ: Mapping[str, str]) -> dt.datetime:
    """SOURCE_DATE_EPOCH when it is set (reproducible builds), else now; whole seconds, UTC."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        from ..options import parse_source_date_epoch

        return dt.datetime.fromtimestamp(parse_source_date_epoch(epoch, "the environment"), dt.UTC)
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document_uuid(catalog: Catalog, document_format: str) -> uuid.UUID:
    """A stable id for the document of this catalog in this format, written by this dockyard version."""
    return uuid.uuid5(_NAMESPACE, f"{document_format}|{TOOL_VERSION}|{catalog.image_digest}|{catalog.platform}")


def package_id(package: Package) -> str:
    """A stable id of a package within a document, unique even for two copies of one package."""
    return hashlib.sha256("|".join(package.key).encode()).hexdigest()[:16]


def split_contact(text: str) -> tuple[str, str | None]:
    """`Name <email>` -> (Name, email); the first of several comma-separated contacts."""
    first = re.split(r">\s*,", text, maxsplit=1)[0]
    match = re.match(r"^\s*([^<]*?)\s*(?:<([^>]*)>?)?\s*$", first)
    if not match:
        return text.strip(), None
    name, email = match.group(1), match.group(2)
    if not name and email:
        name = email.split("@")[0]
    return name.strip(), (email or "").strip() or None


def is_organization(package: Package, name: str) -> bool:
    return package.kind == "rpm" or bool(_ORGANIZATION_WORDS.search(name))
