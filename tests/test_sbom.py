"""The SBOM of an image: the package catalog read from the layers (dpkg, distroless status.d, apk, rpm's sqlite
database, Python distributions, os-release; whiteouts, upgrades, the layer of each package), the SPDX 2.3 and
CycloneDX 1.5 documents (checked by the SPDX and CycloneDX projects' own validators), and `dockyard sbom`.

The images are made by tests/support/sbom_images.py from real package-database files (tests/sbom_data/)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import tarfile

import pytest

from dockyard.cli import main
from dockyard.errors import ContextError, LayerError
from dockyard.image.blobs import BlobStore
from dockyard.image.model import OCI_LAYER_GZIP, Descriptor, HistoryEntry, Image, Layer, Platform
from dockyard.sbom.catalog import catalog
from dockyard.sbom.cyclonedx import cyclonedx_document
from dockyard.sbom.document import creation_time
from dockyard.sbom.licenses import declared_licensing, to_spdx
from dockyard.sbom.source import open_image
from dockyard.sbom.spdx import spdx_document
from tests.support import sbom_images
from tests.support.sbom_images import (BUSYBOX_CREATED_BY, UPGRADED_OPENSSL, LayerTar, alpine_layers,
                                       debian_image_layers, distroless_layers, dpkg_query, rpm_database,
                                       status_text, upgraded_status, write_index_layout, write_layout)

CREATED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def catalog_of(tmp_path, layers, name="test"):
    digest = write_layout(tmp_path / name, layers)
    with open_image(f"oci:{tmp_path / name}:1", platform=Platform(), environ={}) as opened:
        result = catalog(opened.image, opened.blobs, name=opened.name, digest=opened.digest)
    assert result.image_digest == digest
    return result


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    return catalog_of(tmp_path_factory.mktemp("debian"), debian_image_layers())


def by_name(result, kind):
    return {p.name: p for p in result.packages if p.kind == kind}


# --- the catalog ---------------------------------------------------------------------------------------------

def test_dpkg_packages_versions_and_purls(debian):
    debs = by_name(debian, "deb")
    assert set(debs) == {"base-files", "libc6", "libssl3", "openssl", "zlib1g", "tzdata"}
    assert debian.distro.id == "debian" and debian.distro.version_id == "12"
    assert debian.distro.codename == "bookworm"  # read through the /etc/os-release symlink
    assert debs["openssl"].purl == f"pkg:deb/debian/openssl@{UPGRADED_OPENSSL}?arch=amd64&distro=debian-12"
    # Source: openssl (the binary's own version) and an epoch kept in the version, as OSV's Debian data has it.
    assert debs["libssl3"].purl.endswith("?arch=amd64&distro=debian-12&upstream=openssl")
    assert debs["zlib1g"].version == "1:1.2.13.dfsg-1"
    assert debs["zlib1g"].purl == "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib"
    assert debs["tzdata"].arch == "all"
    assert debs["openssl"].supplier.startswith("Debian OpenSSL Team <")


def test_the_deb_list_is_what_dpkg_query_reads_from_the_same_status(debian, tmp_path):
    expected = dpkg_query(status_text(upgraded_status()), tmp_path)
    assert len(expected) == 6
    assert {(p.name, p.version, p.arch) for p in debian.packages if p.kind == "deb"} == expected


def test_each_package_names_the_layer_that_brought_it_in(debian):
    debs, pys = by_name(debian, "deb"), by_name(debian, "pypi")
    layers = debian.layers
    assert [l.position for l in layers] == [0, 1, 2, 3]
    assert layers[0].created_by == BUSYBOX_CREATED_BY
    # Rewritten in layer 4 but unchanged: still layer 2's. Upgraded in layer 4: layer 4's.
    assert debs["base-files"].layer == layers[1] and debs["zlib1g"].layer == layers[1]
    assert debs["openssl"].layer == layers[3] and debs["libssl3"].layer == layers[3]
    assert "apt-get upgrade" in debs["openssl"].layer.created_by
    assert pys["requests"].layer == layers[2]


def test_whiteouts_remove_packages_and_their_files(debian):
    names = {p.name for p in debian.packages}
    assert "bash" not in names  # removed from the status
    assert "attrs" not in names  # its dist-info directory whited out
    assert debian.warnings == ()


def test_licenses_from_dep5_copyright_and_python_metadata(debian):
    debs, pys = by_name(debian, "deb"), by_name(debian, "pypi")
    assert debs["openssl"].licenses == ("Apache-2.0", "Artistic or GPL-1+", "Artistic", "GPL-1+")
    assert debs["zlib1g"].licenses == ("Zlib",)
    assert debs["libc6"].licenses == ()  # its copyright file is not machine-readable
    assert debs["libssl3"].licenses == debs["openssl"].licenses  # through usr/share/doc/libssl3 -> openssl
    assert debs["base-files"].licenses == ()  # no copyright file in the image
    assert pys["requests"].licenses == ("Apache-2.0",)
    assert pys["requests"].purl == "pkg:pypi/requests@2.34.2"
    assert pys["requests"].location == "usr/lib/python3/dist-packages/requests-2.34.2.dist-info/METADATA"


def test_python_metadata_with_non_ascii_headers():
    """Core metadata is UTF-8: an author's name or e-mail outside ASCII (as sigstore-python's dependencies have)
    is read as text, not left as an undecoded header."""
    from dockyard.sbom.pythondist import parse_metadata

    data = ("Metadata-Version: 2.1\nName: example\nVersion: 1.0\nSummary: Grüße\n"
            "Author-email: Łukasz Example <lukasz@example.org>\n\nThe long description, ünïcode.\n").encode()
    [package] = parse_metadata("site-packages/example-1.0.dist-info/METADATA", data).packages
    assert package.supplier == "Łukasz Example <lukasz@example.org>" and package.summary == "Grüße"


def test_license_strings_become_spdx_expressions_or_license_refs():
    assert to_spdx("GPL-2+") == "GPL-2.0-or-later"
    assert to_spdx("GPL-2+ or Artistic") == "GPL-2.0-or-later OR Artistic-1.0-Perl"
    assert to_spdx("Expat") == "MIT"
    assert to_spdx("License :: OSI Approved :: Apache Software License") == "Apache-2.0"
    assert to_spdx("MIT AND (Apache-2.0 OR BSD-2-Clause)") == "MIT AND (Apache-2.0 OR BSD-2-Clause)"
    assert to_spdx("Some Custom License") is None
    licensing = declared_licensing(["Apache-2.0", "public-domain", "Apache-2.0", "GPL-1+"])
    assert licensing.expression == "Apache-2.0 AND LicenseRef-public-domain AND GPL-1.0-or-later"
    assert licensing.extracted == {"LicenseRef-public-domain": "public-domain"}
    odd = declared_licensing(["BSD (3 clause)"])
    assert odd.expression.startswith("LicenseRef-BSD-3-clause-") and odd.extracted[odd.expression] == "BSD (3 clause)"


def test_distroless_status_d_and_a_malformed_stanza_is_a_warning(tmp_path):
    result = catalog_of(tmp_path, distroless_layers())
    debs = by_name(result, "deb")
    assert set(debs) == {"base-files", "libssl3", "tzdata"}  # the md5sums files are no packages
    assert debs["libssl3"].location == "var/lib/dpkg/status.d/libssl3"
    assert debs["tzdata"].licenses == ("public-domain",)
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("/var/lib/dpkg/status.d/broken:1: skipped a malformed package entry")
    assert "line 2" in result.warnings[0]


def test_node_modules(tmp_path):
    layer = LayerTar()
    layer.file("app/node_modules/semver/package.json", sbom_images.data("package.json-semver"))
    layer.file("app/node_modules/@action-validator/core/package.json",
               sbom_images.data("package.json-action-validator-core"))
    layer.file("app/node_modules/semver/functions/package.json", b'{"name": "inner", "version": "1"}')  # no package
    layer.file("app/package.json", b'{"name": "app", "version": "1.0.0"}')  # the application, not installed
    layer.file("app/node_modules/broken/package.json", b"{not json")
    result = catalog_of(tmp_path, [(layer.finish(), "RUN npm ci")])
    assert [(p.name, p.version, p.purl, p.licenses) for p in result.packages] == [
        ("@action-validator/core", "0.6.0", "pkg:npm/%40action-validator/core@0.6.0", ("GPL-3.0-only",)),
        ("semver", "7.8.6", "pkg:npm/semver@7.8.6", ("ISC",))]
    assert result.warnings == ("/app/node_modules/broken/package.json: skipped a Node.js package whose "
                               "package.json is not valid JSON",)
    assert validate_spdx(spdx_document(result, created=CREATED), tmp_path) == []
    assert_cyclonedx_valid(cyclonedx_document(result, created=CREATED))


def test_alpine_installed_database(tmp_path):
    result = catalog_of(tmp_path, alpine_layers())
    apks = by_name(result, "apk")
    assert set(apks) == {"musl", "busybox", "zlib", "ssl_client"}
    assert result.distro.id == "alpine" and result.distro.version_id == "3.20.3"
    assert apks["busybox"].purl == "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20"
    assert apks["ssl_client"].purl.endswith("&upstream=busybox")  # its origin
    assert apks["zlib"].licenses == ("Zlib",) and apks["zlib"].layer.position == 1


def test_rpm_sqlite_database(tmp_path):
    layer = LayerTar()
    layer.file("etc/os-release", b'ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n')
    layer.file("var/lib/rpm/rpmdb.sqlite", rpm_database(tmp_path / "rpm"))
    result = catalog_of(tmp_path, [(layer.finish(), "RUN dnf install hello-sbom")])
    (package,) = result.packages
    assert (package.kind, package.name, package.version, package.arch) == ("rpm", "hello-sbom", "2:1.2-3", "noarch")
    assert package.purl == "pkg:rpm/fedora/hello-sbom@1.2-3?arch=noarch&distro=fedora-40&epoch=2"
    assert package.licenses == ("MIT or GPL-2.0-or-later",) and package.supplier == "Dockyard Tests"


def test_rpm_databases_that_cannot_be_read_are_warnings(tmp_path):
    import sqlite3

    from dockyard.sbom.rpmdb import parse_rpmdb

    berkeley = parse_rpmdb("var/lib/rpm/Packages", b"\0" * 4096)
    assert berkeley.packages == () and "BerkeleyDB" in berkeley.warnings[0]
    assert berkeley.warnings[0].startswith("/var/lib/rpm/Packages: ")
    good = rpm_database(tmp_path / "rpm")
    path = tmp_path / "broken.sqlite"
    path.write_bytes(good)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("INSERT INTO Packages (hnum, blob) VALUES (999, x'0000000500000010')")
    connection.close()
    parsed = parse_rpmdb("var/lib/rpm/rpmdb.sqlite", path.read_bytes())
    assert [p.name for p in parsed.packages] == ["hello-sbom"]
    assert parsed.warnings == ("/var/lib/rpm/rpmdb.sqlite: skipped the malformed package header 999: its index "
                               "does not fit the blob",)
    assert "cannot be read" in parse_rpmdb("var/lib/rpm/rpmdb.sqlite", b"not sqlite" * 100).warnings[0]


def test_a_deleted_or_hidden_database_lists_nothing(tmp_path):
    first = LayerTar()
    first.file("var/lib/dpkg/status", status_text(sbom_images.status_stanzas()))
    first.file("lib/apk/db/installed", sbom_images.data("apk-installed"))
    second = LayerTar()
    second.whiteout("var/lib/dpkg/status")
    second.dir("lib/apk")
    second.opaque("lib/apk")
    second.file("lib/apk/kept", b"")
    result = catalog_of(tmp_path, [(first.finish(), "one"), (second.finish(), "two")])
    assert result.packages == () and result.distro is None
    assert validate_spdx(spdx_document(result, created=CREATED), tmp_path) == []
    assert_cyclonedx_valid(cyclonedx_document(result, created=CREATED))


def test_a_package_removed_then_added_again_belongs_to_the_later_layer(tmp_path):
    stanzas = sbom_images.status_stanzas()
    layers = []
    for keep in (("base-files", "bash"), ("base-files",), ("base-files", "bash")):
        layer = LayerTar()
        layer.file("var/lib/dpkg/status", status_text({k: stanzas[k] for k in keep}))
        layers.append((layer.finish(), f"status with {' '.join(keep)}"))
    debs = by_name(catalog_of(tmp_path, layers), "deb")
    assert debs["base-files"].layer.position == 0 and debs["bash"].layer.position == 2


def test_a_corrupt_layer_is_a_layer_error(tmp_path):
    store = BlobStore(tmp_path / "store")
    data = b"this is no gzip and no tar " * 100
    digest = store.put_bytes(data)
    layer = Layer(Descriptor(OCI_LAYER_GZIP, digest, len(data)), "sha256:" + hashlib.sha256(data).hexdigest())
    image = Image().with_layer(layer, HistoryEntry("RUN broken"))
    with pytest.raises(LayerError, match="layer 1"):
        catalog(image, store)


def test_a_layer_that_is_not_its_diff_id_is_a_layer_error(tmp_path):
    """The SBOM describes exactly the layers the config names: a tampered layer is refused, not cataloged."""
    store = BlobStore(tmp_path / "store")
    honest, other = LayerTar(), LayerTar()
    honest.file("var/lib/dpkg/status", status_text(sbom_images.status_stanzas()))
    other.file("var/lib/dpkg/status", b"Package: evil\nVersion: 1\n")
    claimed, served = honest.finish(), other.finish()
    layer = Layer(Descriptor(OCI_LAYER_GZIP, store.put_bytes(served.blob), len(served.blob)), claimed.diff_id)
    with pytest.raises(LayerError, match="not the diff_id"):
        catalog(Image().with_layer(layer, HistoryEntry("RUN x")), store)


def test_platform_of_a_multi_platform_layout(tmp_path, capsys):
    digests = write_index_layout(tmp_path / "index", [(debian_image_layers(), "amd64"), (alpine_layers(), "arm64")])
    assert main(["sbom", f"oci:{tmp_path / 'index'}:1", "--platform", "linux/arm64", "--format", "spdx-json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["packages"][0]["versionInfo"] == digests[1]
    assert document["packages"][0]["comment"] == "platform linux/arm64"
    assert {p["name"] for p in document["packages"][2:]} == {"musl", "busybox", "zlib", "ssl_client"}
    assert main(["sbom", f"oci:{tmp_path / 'index'}:1", "--platform", "linux/s390x"]) == ContextError.exit_code
    assert "has no image for platform linux/s390x; it has: linux/amd64, linux/arm64" in capsys.readouterr().err


def test_catalog_of_an_image_in_a_blob_store(tmp_path):
    """The attestation path: an Image model and dockyard's BlobStore, no layout."""
    store = BlobStore(tmp_path / "store")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        content = sbom_images.data("METADATA-attrs")
        info = tarfile.TarInfo("app/attrs-26.1.0.dist-info/METADATA")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    blob = gzip.compress(buffer.getvalue(), mtime=0)
    layer = Layer(Descriptor(OCI_LAYER_GZIP, store.put_bytes(blob), len(blob)),
                  "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest())
    image = Image().with_layer(layer, HistoryEntry("COPY app /app"))
    result = catalog(image, store)
    (package,) = result.packages
    assert package.purl == "pkg:pypi/attrs@26.1.0" and package.licenses == ("MIT",)
    assert package.layer.created_by == "COPY app /app" and result.image_digest == image.digest


# --- the documents -------------------------------------------------------------------------------------------

def validate_spdx(document: dict, tmp_path) -> list:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "sbom.spdx.json"
    path.write_text(json.dumps(document))
    return validate_full_spdx_document(parse_file(str(path)))


def test_spdx_document_is_valid_and_shaped_as_buildkit_writes_it(debian, tmp_path):
    document = spdx_document(debian, created=CREATED)
    assert validate_spdx(document, tmp_path) == []
    assert document["spdxVersion"] == "SPDX-2.3" and document["creationInfo"]["created"] == "2024-01-01T00:00:00Z"
    assert "Tool: dockyard-" in " ".join(document["creationInfo"]["creators"])
    root, os_package, *packages = document["packages"]
    assert root["primaryPackagePurpose"] == "CONTAINER" and root["versionInfo"] == debian.image_digest
    assert os_package["name"] == "debian" and os_package["versionInfo"] == "12"
    assert len(packages) == len(debian.packages)
    describes = [r for r in document["relationships"] if r["relationshipType"] == "DESCRIBES"]
    assert describes == [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                          "relatedSpdxElement": root["SPDXID"]}]
    contained = {r["relatedSpdxElement"] for r in document["relationships"] if r["relationshipType"] == "CONTAINS"}
    assert contained == {p["SPDXID"] for p in [os_package, *packages]}
    openssl = next(p for p in packages if p["name"] == "openssl")
    assert openssl["licenseDeclared"] == ("Apache-2.0 AND (LicenseRef-Artistic OR GPL-1.0-or-later) AND "
                                          "LicenseRef-Artistic AND GPL-1.0-or-later".replace("LicenseRef-Artistic",
                                                                                             "Artistic-1.0-Perl"))
    assert openssl["licenseConcluded"] == "NOASSERTION"
    assert openssl["supplier"] == "Organization: Debian OpenSSL Team (pkg-openssl-devel@alioth-lists.debian.net)"
    assert openssl["externalRefs"] == [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                        "referenceLocator": f"pkg:deb/debian/openssl@{UPGRADED_OPENSSL}"
                                                            "?arch=amd64&distro=debian-12"}]
    assert "apt-get upgrade" in openssl["annotations"][0]["comment"]
    tzdata = next(p for p in packages if p["name"] == "tzdata")
    assert tzdata["licenseDeclared"] == "LicenseRef-public-domain"
    assert {"licenseId": "LicenseRef-public-domain", "name": "public-domain", "extractedText": "public-domain"} in \
        document["hasExtractedLicensingInfos"]
    assert next(p for p in packages if p["name"] == "libc6")["licenseDeclared"] == "NOASSERTION"


def test_spdx_of_every_database_kind_is_valid(tmp_path):
    layer = LayerTar()
    layer.file("var/lib/rpm/rpmdb.sqlite", rpm_database(tmp_path / "rpm"))
    layers = distroless_layers() + alpine_layers() + [(layer.finish(), "rpm")]
    result = catalog_of(tmp_path, layers)
    assert {p.kind for p in result.packages} == {"deb", "apk", "rpm"}
    assert validate_spdx(spdx_document(result, created=CREATED), tmp_path) == []
    assert_cyclonedx_valid(cyclonedx_document(result, created=CREATED))


def test_documents_are_deterministic(debian):
    first = json.dumps(spdx_document(debian, created=CREATED))
    assert first == json.dumps(spdx_document(debian, created=CREATED))
    namespace = spdx_document(debian, created=CREATED)["documentNamespace"]
    other = spdx_document(debian._replace(image_digest="sha256:" + "0" * 64), created=CREATED)
    assert other["documentNamespace"] != namespace  # derived from the image's digest
    assert json.dumps(cyclonedx_document(debian, created=CREATED)) == \
        json.dumps(cyclonedx_document(debian, created=CREATED))
    assert creation_time({"SOURCE_DATE_EPOCH": "1704067200"}) == CREATED


def assert_cyclonedx_valid(document: dict) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    assert error is None, str(error)


def test_cyclonedx_document_is_valid(debian):
    document = cyclonedx_document(debian, created=CREATED)
    assert_cyclonedx_valid(document)
    assert document["specVersion"] == "1.5" and document["metadata"]["component"]["type"] == "container"
    components = {c["name"]: c for c in document["components"]}
    assert components["debian"]["type"] == "operating-system"
    assert components["zlib1g"]["licenses"] == [{"license": {"id": "Zlib"}}]
    assert components["tzdata"]["licenses"] == [{"license": {"name": "public-domain"}}]
    properties = {p["name"]: p["value"] for p in components["openssl"]["properties"]}
    assert properties["dockyard:layer:digest"] == debian.layers[3].digest


# --- the command ---------------------------------------------------------------------------------------------

def test_sbom_command_formats_and_sources(tmp_path, capsys, monkeypatch):
    write_layout(tmp_path / "layout", debian_image_layers())
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1704067200")
    assert main(["sbom", f"oci:{tmp_path / 'layout'}:1", "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "Debian GNU/Linux 12 (bookworm)" in table and f"openssl     {UPGRADED_OPENSSL}  deb" in table
    assert table.rstrip().endswith("7 packages")
    out = tmp_path / "sbom.json"
    assert main(["sbom", f"oci:{tmp_path / 'layout'}", "--format", "cyclonedx-json", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["metadata"]["timestamp"] == "2024-01-01T00:00:00Z"
    sbom_images.docker_archive(tmp_path / "layout", "1", tmp_path / "image.tar", "example/app:1")
    assert main(["sbom", f"docker-archive:{tmp_path / 'image.tar'}", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["name"] == "docker.io/example/app:1"  # as skopeo writes RepoTags
    assert validate_spdx(document, tmp_path) == []
    assert {p["name"] for p in document["packages"]} >= {"openssl", "zlib1g", "requests"}


def test_sbom_command_errors_are_clear(tmp_path, capsys):
    assert main(["sbom", f"oci:{tmp_path / 'nothing'}"]) == ContextError.exit_code
    assert "no OCI layout at" in capsys.readouterr().err
    assert main(["sbom", f"docker-archive:{tmp_path / 'none.tar'}"]) == ContextError.exit_code
    assert "no docker archive at" in capsys.readouterr().err
    write_layout(tmp_path / "layout", distroless_layers())
    assert main(["sbom", f"oci:{tmp_path / 'layout'}:2"]) == ContextError.exit_code
    assert "has no image tagged '2'" in capsys.readouterr().err
    assert main(["sbom", f"oci:{tmp_path / 'layout'}:1", "--format", "table"]) == 0
    captured = capsys.readouterr()
    assert "warning: /var/lib/dpkg/status.d/broken:1: skipped a malformed package entry" in captured.err
    assert "Traceback" not in captured.err
    assert main(["sbom", "oci:x", "--format", "xml"]) == 2
