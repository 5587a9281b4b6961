"""CycloneDX 1.5 JSON documents of a catalog, the alternative to SPDX: the image as the BOM's metadata
component, the operating system and every package as components, with package URLs, licenses (SPDX ids, an
expression, or the recorded names) and dockyard's properties naming the package database and the layer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .document import TOOL_NAME, TOOL_VERSION, document_uuid, package_id, split_contact, timestamp
from .licenses import declared_licensing, to_spdx
from .model import Catalog, Package
from .spdx import image_purl

__all__ = ["cyclonedx_document"]


def cyclonedx_document(catalog: Catalog, *, created: dt.datetime) -> dict[str, Any]:
    """The CycloneDX 1.5 BOM (as JSON data) of `catalog`, made at `created`."""
    name = catalog.image_name or catalog.image_digest
    image: dict[str, Any] = {"bom-ref": f"image:{catalog.image_digest}", "type": "container", "name": name,
                             "version": catalog.image_digest}
    purl = image_purl(catalog)
    if purl:
        image["purl"] = purl
    image["properties"] = [{"name": "dockyard:image:platform", "value": catalog.platform}]
    components: list[dict[str, Any]] = []
    if catalog.distro is not None:
        distro = catalog.distro
        os_component: dict[str, Any] = {"bom-ref": f"os:{distro.id}", "type": "operating-system",
                                        "name": distro.id}
        if distro.version_id:
            os_component["version"] = distro.version_id
        if distro.pretty_name:
            os_component["description"] = distro.pretty_name
        components.append(os_component)
    components += [_component(package) for package in catalog.packages]
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{document_uuid(catalog, 'cyclonedx-json')}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp(created),
            "tools": {"components": [{"type": "application", "author": TOOL_NAME, "name": TOOL_NAME,
                                      "version": TOOL_VERSION}]},
            "component": image,
        },
        "components": components,
    }


def _component(package: Package) -> dict[str, Any]:
    component: dict[str, Any] = {"bom-ref": f"{package.purl}#{package_id(package)}", "type": "library",
                                 "name": package.name, "version": package.version}
    if package.supplier:
        supplier_name, _ = split_contact(package.supplier)
        if supplier_name:
            component["publisher"] = package.supplier
    if package.summary:
        component["description"] = package.summary
    licenses = _licenses(package)
    if licenses:
        component["licenses"] = licenses
    component["purl"] = package.purl
    if package.homepage and package.homepage.startswith(("http://", "https://")):
        component["externalReferences"] = [{"type": "website", "url": package.homepage}]
    properties = [{"name": "dockyard:package:type", "value": package.kind},
                  {"name": "dockyard:location:path", "value": f"/{package.location}"}]
    if package.layer is not None:
        properties += [{"name": "dockyard:layer:digest", "value": package.layer.digest},
                       {"name": "dockyard:layer:diff_id", "value": package.layer.diff_id},
                       {"name": "dockyard:layer:index", "value": str(package.layer.position)}]
        if package.layer.created_by:
            properties.append({"name": "dockyard:layer:created_by", "value": package.layer.created_by})
    component["properties"] = properties
    return component


def _licenses(package: Package) -> list[dict[str, Any]]:
    """One SPDX id, or one expression, when every recorded license converts; else each recorded one as an id or a
    name (CycloneDX has no LicenseRef texts)."""
    licensing = declared_licensing(package.licenses)
    if licensing.expression is None:
        return []
    if not licensing.extracted:
        if " " not in licensing.expression and not licensing.expression.endswith("+"):
            return [{"license": {"id": licensing.expression}}]
        return [{"expression": licensing.expression}]
    items: list[dict[str, Any]] = []
    for text in package.licenses:
        converted = to_spdx(text.strip())
        item = {"id": converted} if converted and " " not in converted and not converted.endswith("+") \
            and not converted.startswith("LicenseRef-") else {"name": text.strip()}
        if item not in [i["license"] for i in items]:
            items.append({"license": item})
    return items
