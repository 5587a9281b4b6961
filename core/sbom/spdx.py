"""SPDX 2.3 JSON documents of a catalog, in the shape BuildKit's SBOM generator (syft) writes: the image as the
root package the document DESCRIBES, which CONTAINS the operating system and every package; each package with
its version, supplier, declared license (an SPDX expression; unlisted license names as LicenseRefs explained in
hasExtractedLicensingInfos), its package URL and the layer that brought it in (an annotation)."""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from packageurl import PackageURL

from .document import (TOOL_NAME, TOOL_VERSION, document_uuid, is_organization, package_id, split_contact,
                       timestamp)
from .licenses import NOASSERTION, Licensing, declared_licensing
from .model import APK, DEB, NPM, PYPI, RPM, Catalog, Package

__all__ = ["spdx_document", "image_purl", "prepare_packages"]

LICENSE_LIST_VERSION = "3.22"
_SOURCE_INFO = {DEB: "acquired package info from DPKG DB", APK: "acquired package info from APK DB",
                RPM: "acquired package info from RPM DB", PYPI: "acquired package info from installed python package",
                NPM: "acquired package info from installed node module manifest file"}
_URL = re.compile(r"^(https?|ftp)://[^\s]+$")


def spdx_document(catalog: Catalog, *, created: dt.datetime) -> dict[str, Any]:
    """The SPDX 2.3 document (as JSON data) of `catalog`, created at `created`."""
    when = timestamp(created)
    annotator = f"Tool: {TOOL_NAME}-{TOOL_VERSION}"
    name = catalog.image_name or catalog.image_digest
    root_id = "SPDXRef-DocumentRoot-Image-" + _id_part(name)
    root: dict[str, Any] = {
        "name": name, "SPDXID": root_id, "versionInfo": catalog.image_digest, "downloadLocation": NOASSERTION,
        "filesAnalyzed": False, "licenseConcluded": NOASSERTION, "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION, "primaryPackagePurpose": "CONTAINER",
        "comment": f"platform {catalog.platform}",
    }
    purl = image_purl(catalog)
    if purl:
        root["externalRefs"] = [_purl_ref(purl)]
    packages = [root]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": root_id}]
    if catalog.distro is not None:
        os_id = "SPDXRef-OperatingSystem-" + _id_part(catalog.distro.id)
        os_package: dict[str, Any] = {
            "name": catalog.distro.id, "SPDXID": os_id, "versionInfo": catalog.distro.version_id or NOASSERTION,
            "downloadLocation": NOASSERTION, "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION, "primaryPackagePurpose": "OPERATING-SYSTEM",
            "sourceInfo": "acquired package info from /etc/os-release"}
        if catalog.distro.pretty_name:
            os_package["description"] = catalog.distro.pretty_name
        packages.append(os_package)
        relationships.append(_contains(root_id, os_id))
    extracted: dict[str, str] = {}
    for package in catalog.packages:
        entry, licensing = _package(package, when, annotator)
        packages.append(entry)
        extracted.update(licensing.extracted)
        relationships.append(_contains(root_id, entry["SPDXID"]))
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
        "documentNamespace": f"https://spdx.org/spdxdocs/{TOOL_NAME}/{_id_part(name)}-"
                             f"{document_uuid(catalog, 'spdx-json')}",
        "creationInfo": {"licenseListVersion": LICENSE_LIST_VERSION,
                         "creators": [f"Organization: {TOOL_NAME}", f"Tool: {TOOL_NAME}-{TOOL_VERSION}"],
                         "created": when},
        "packages": packages,
        "relationships": relationships,
    }
    if extracted:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": text.split("\n")[0][:200], "extractedText": text}
            for ref, text in sorted(extracted.items())]
    return document


def image_purl(catalog: Catalog) -> str | None:
    """pkg:oci/NAME@DIGEST?arch=..&repository_url=.. for an image named by a registry reference."""
    if not catalog.image_name or not catalog.image_digest.startswith("sha256:"):
        return None
    repository = catalog.image_name.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    qualifiers = {"arch": catalog.platform.split("/")[1]} if "/" in catalog.platform else {}
    if "/" in repository:
        qualifiers["repository_url"] = repository
    return PackageURL(type="oci", name=repository.rsplit("/", 1)[-1].lower(), version=catalog.image_digest,
                      qualifiers=qualifiers).to_string()


def prepare_packages(catalog: Catalog) -> None:
    """Works out now what the documents of later catalogs sharing these packages will need of each one (its
    entry but for the layer annotation, its declared license): the SBOM of a base image made on a thread while
    the build's steps run leaves the final image's document little to compute (attest/prefetch.py)."""
    for package in catalog.packages:
        _package_licensing(package._replace(layer=None))


def _package(package: Package, when: str, annotator: str) -> tuple[dict[str, Any], Licensing]:
    made, licensing = _package_licensing(package._replace(layer=None))
    entry = {**made, "externalRefs": [dict(ref) for ref in made["externalRefs"]]}  # the memo's stays as made
    declared = entry.pop("licenseDeclared")  # written last, after the layer
    if package.layer is not None:
        layer = package.layer
        entry["annotations"] = [{
            "annotationDate": when, "annotationType": "OTHER", "annotator": annotator,
            "comment": f"layer={layer.digest}; diff_id={layer.diff_id}; layer_index={layer.position}; "
                       f"created_by={layer.created_by}"}]
    entry["licenseDeclared"] = declared
    return entry, licensing


# The part of a package's entry that depends on the package alone (not on its layer or the document's time),
# and its declared licensing: the same base packages recur in every document of a build (the base's, made while
# the steps run, and the final image's), and converting license names is most of a document's work. A pure
# function of a hashable value: caching changes how fast a document is made, never what it holds.
@functools.lru_cache(maxsize=16384)
def _package_licensing(package: Package) -> tuple[dict[str, Any], Licensing]:
    entry: dict[str, Any] = {
        "name": package.name,
        "SPDXID": f"SPDXRef-Package-{package.kind}-{_id_part(package.name)}-{package_id(package)}",
        "versionInfo": package.version,
        "supplier": _supplier(package),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
    }
    if package.homepage and _URL.match(package.homepage):
        entry["homepage"] = package.homepage
    entry["sourceInfo"] = f"{_SOURCE_INFO[package.kind]}: /{package.location}"
    entry["licenseConcluded"] = NOASSERTION
    entry["copyrightText"] = NOASSERTION
    if package.summary:
        entry["summary"] = package.summary
    entry["externalRefs"] = [_purl_ref(package.purl)]
    licensing = declared_licensing(package.licenses)
    entry["licenseDeclared"] = licensing.expression or NOASSERTION
    return entry, licensing


def _supplier(package: Package) -> str:
    if not package.supplier:
        return NOASSERTION
    name, email = split_contact(package.supplier)
    name = name.replace("(", "").replace(")", "").strip()
    if not name:
        return NOASSERTION
    kind = "Organization" if is_organization(package, name) else "Person"
    return f"{kind}: {name} ({email})" if email else f"{kind}: {name}"


def _purl_ref(purl: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}


def _contains(parent: str, child: str) -> dict[str, str]:
    return {"spdxElementId": parent, "relationshipType": "CONTAINS", "relatedSpdxElement": child}


def _id_part(text: str) -> str:
    """`text` reduced to what an SPDX identifier may hold (letters, digits, `.` and `-`)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"
