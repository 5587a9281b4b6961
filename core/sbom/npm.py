"""Installed Node.js packages: `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`
(at any depth, nested node_modules included). Other package.json files (a package's own subdirectories, the
application's) are no installed packages."""

from __future__ import annotations

import json
from typing import Any

from .model import NPM, Package, Parsed


def is_manifest(path: str) -> bool:
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith("@")
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


def parse_package_json(path: str, data: bytes) -> Parsed:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return Parsed((), (f"/{path}: skipped a Node.js package whose package.json is not valid JSON",))
    if not isinstance(document, dict):
        return Parsed((), (f"/{path}: skipped a Node.js package whose package.json is no JSON object",))
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return Parsed((), (f"/{path}: skipped a Node.js package whose package.json has no name or version",))
    homepage = document.get("homepage")
    description = document.get("description")
    return Parsed((Package(kind=NPM, name=name, version=version, licenses=_licenses(document),
                           supplier=_person(document.get("author")),
                           homepage=homepage if isinstance(homepage, str) and homepage else None,
                           summary=description if isinstance(description, str) and description else None,
                           location=path),))


def _licenses(document: dict[str, Any]) -> tuple[str, ...]:
    """`license` as an SPDX expression string, or the legacy object and `licenses` list forms."""
    value = document.get("license")
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return (value["type"],)
    legacy = document.get("licenses")
    if isinstance(legacy, list):
        return tuple(item["type"] for item in legacy if isinstance(item, dict) and isinstance(item.get("type"), str))
    return ()


def _person(value: Any) -> str | None:
    """An author as `Name <email>` (package.json writes it as that string or as an object)."""
    if isinstance(value, str):
        return value.split("(")[0].strip() or None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        email = value.get("email")
        return f"{value['name']} <{email}>" if isinstance(email, str) and email else value["name"]
    return None
