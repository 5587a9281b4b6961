"""`dockyard sbom` end to end: images pushed to the test registry (a hand-made Debian-like image, and one
dockyard builds from it), an OCI layout, and the errors for images that are not there. The deb packages the
SBOM lists must be what dpkg-query reads from the same status file."""

from __future__ import annotations

import json

from tests.e2e.helpers import dockyard, write_context
from tests.support.sbom_images import (UPGRADED_OPENSSL, debian_image_layers, dpkg_query, push_layout,
                                       status_text, upgraded_status, write_layout)


def deb_packages(document: dict) -> set[tuple[str, str, str]]:
    """(name, version, arch) of the SPDX document's deb packages, from their package URLs."""
    from packageurl import PackageURL

    found = set()
    for package in document["packages"]:
        for ref in package.get("externalRefs", []):
            purl = PackageURL.from_string(ref["referenceLocator"])
            if purl.type == "deb":
                found.add((package["name"], package["versionInfo"], purl.qualifiers["arch"]))
    return found


def spdx_errors(path) -> list:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return validate_full_spdx_document(parse_file(str(path)))


def test_sbom_of_pushed_images_and_a_layout(registry, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, debian_image_layers())
    reference = f"{registry.host}/sbom/debian:1"
    push_layout(layout, "1", reference)
    expected = dpkg_query(status_text(upgraded_status()), tmp_path)

    out = tmp_path / "registry.spdx.json"
    result = dockyard("sbom", reference, "--platform", "linux/amd64", "--output", str(out),
                      env={"SOURCE_DATE_EPOCH": "1704067200"})
    assert result.returncode == 0, result.stderr
    assert spdx_errors(out) == []
    document = json.loads(out.read_text())
    assert document["name"] == reference
    assert deb_packages(document) == expected
    root = document["packages"][0]
    assert root["externalRefs"][0]["referenceLocator"].startswith("pkg:oci/debian@sha256:")

    from_layout = dockyard("sbom", f"oci:{layout}:1", "--format", "spdx-json", env={"SOURCE_DATE_EPOCH": "1704067200"})
    assert from_layout.returncode == 0, from_layout.stderr
    layout_document = json.loads(from_layout.stdout)
    assert deb_packages(layout_document) == expected
    # The same image (same digest) read from either place: the same packages, ids and namespace.
    assert layout_document["documentNamespace"].rsplit("-", 5)[1:] == document["documentNamespace"].rsplit("-", 5)[1:]
    assert layout_document["packages"][1:] == document["packages"][1:]

    # An image dockyard builds on it: the package a RUN adds is attributed to that RUN.
    dist_info = "/usr/lib/python3/dist-packages/six-1.16.0.dist-info"
    context = write_context(tmp_path / "context", {"Dockerfile": (
        f"FROM {reference}\n"
        f"RUN mkdir -p {dist_info} && printf 'Metadata-Version: 2.1\\nName: six\\nVersion: 1.16.0\\n"
        f"License: MIT\\n' > {dist_info}/METADATA\n")})
    built = f"{registry.host}/sbom/built:1"
    build = dockyard("build", "-q", "--push", "-t", built, str(context))
    assert build.returncode == 0, build.stderr
    table = dockyard("sbom", built, "--format", "cyclonedx-json")
    assert table.returncode == 0, table.stderr
    components = {c["name"]: c for c in json.loads(table.stdout)["components"]}
    assert components["openssl"]["version"] == UPGRADED_OPENSSL
    six = {p["name"]: p["value"] for p in components["six"]["properties"]}
    assert six["dockyard:layer:index"] == "4" and "mkdir -p /usr/lib/python3" in six["dockyard:layer:created_by"]
    assert components["six"]["licenses"] == [{"license": {"id": "MIT"}}]


def test_sbom_of_a_missing_image_is_a_clear_error(registry, tmp_path):
    missing = dockyard("sbom", f"{registry.host}/sbom/missing:1")
    assert missing.returncode == 6
    assert missing.stderr.startswith("error: ") and "sbom/missing" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_layout = dockyard("sbom", f"oci:{tmp_path}/none")
    assert no_layout.returncode == 4 and "no OCI layout at" in no_layout.stderr
