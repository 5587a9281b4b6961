"""Matching an image's packages against real OSV records (tests/vuln_data): ranges with introduced/fixed/
last_affected and explicit versions, releases told apart, source packages, severities from CVSS vectors and
the distribution's urgency, the ignore file and --ignore-unfixed, and vulnerabilities as findings."""

from __future__ import annotations

import datetime as dt

import pytest

from dockyard.diagnostics.model import Severity
from dockyard.diagnostics.render import render
from dockyard.errors import UsageError, VulnerabilitiesFound
from dockyard.sbom.catalog import package_url
from dockyard.sbom.layers import LayerInfo
from dockyard.sbom.model import APK, DEB, PYPI, Catalog, Distro, Package
from dockyard.scan.database import open_database
from dockyard.scan.findings import scan_findings
from dockyard.scan.ignores import load_ignore_file
from dockyard.scan.matching import release_matches
from dockyard.scan.model import Origin, VulnSeverity, report_from_json, report_to_json
from dockyard.scan.scanner import check_gate, scan_catalog
from dockyard.scan.settings import ScanSettings
from tests.support.osv_server import fixture_records, zip_of

BASE = LayerInfo(0, "sha256:" + "a" * 64, "sha256:" + "b" * 64, "/bin/sh -c #(nop) ADD file:... in /")
APP = LayerInfo(1, "sha256:" + "c" * 64, "sha256:" + "d" * 64, "RUN apt-get install -y libssl3")
TODAY = dt.date(2026, 1, 15)


def deb(name, version, source=None, source_version=None, layer=BASE):
    return Package(DEB, name, version, "amd64", source, source_version, location="var/lib/dpkg/status", layer=layer)


BOOKWORM = Distro("debian", "12", "bookworm")


def image(packages, distro=BOOKWORM):
    packages = tuple(p._replace(purl=package_url(p, distro)) for p in packages)
    return Catalog("app:1", "sha256:" + "e" * 64, "linux/amd64", distro, packages, (BASE, APP))


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    root = tmp_path_factory.mktemp("osv")
    (root / "all.zip").write_bytes(zip_of(fixture_records()))
    return open_database(["Debian", "Alpine", "PyPI"], cache_root=root / "cache", db=root / "all.zip")


def scan(catalog, database, **settings):
    ignores = settings.pop("ignores", ())
    return scan_catalog(catalog, database, ScanSettings(**settings), image="app:1", ignores=ignores, today=TODAY)


def found(report):
    return {(v.package, v.advisory): v for v in report.vulnerabilities}


def test_below_at_and_above_a_fix_with_tilde_revisions(database):
    report = scan(image([deb("libssl3", "3.0.11-1~deb12u1", "openssl"),   # below the fix
                         deb("openssl", "3.0.11-1~deb12u2"),              # at it
                         deb("libssl-dev", "3.0.13-1~deb12u1", "openssl")]), database)  # above it
    hits = found(report)
    assert set(hits) == {("libssl3", "DSA-5532-1")}
    hit = hits["libssl3", "DSA-5532-1"]
    assert hit.fixed_version == "3.0.11-1~deb12u2"
    assert hit.source_package == "openssl"
    assert hit.aliases == ("CVE-2023-5363", "CVE-2023-5678")
    assert hit.ecosystem == "Debian:12"
    assert hit.links[0] == "https://osv.dev/vulnerability/DSA-5532-1"
    assert "https://www.debian.org/security/2023/dsa-5532" in hit.links
    assert (hit.severity, hit.cvss_score) == (VulnSeverity.HIGH, 7.5)
    assert hit.purl.startswith("pkg:deb/debian/libssl3@")
    assert report.packages == 3 and report.distro == "debian-12"


def test_releases_are_told_apart(database):
    # Debian 11's openssl advisory does not apply to Debian 12's openssl, whatever its version; and the reverse.
    bookworm = found(scan(image([deb("openssl", "1.1.1n-0+deb11u4")]), database))
    assert ("openssl", "DSA-5417-1") not in bookworm
    bullseye = found(scan(image([deb("openssl", "1.1.1n-0+deb11u4")], Distro("debian", "11")), database))
    assert set(bullseye) == {("openssl", "DSA-5417-1")}
    assert bullseye["openssl", "DSA-5417-1"].fixed_version == "1.1.1n-0+deb11u5"
    assert release_matches("Debian:12", "Debian") and not release_matches("Debian:12", "Debian:11")
    assert release_matches("Ubuntu:22.04", "Ubuntu:22.04:LTS")
    assert not release_matches("Ubuntu:22.04", "Ubuntu:Pro:22.04:LTS")


def test_epochs_decide(database):
    bullseye = Distro("debian", "11")
    below = found(scan(image([deb("zlib1g", "1:1.2.11.dfsg-2+deb11u1", "zlib")], bullseye), database))
    assert below["zlib1g", "DSA-5218-1"].fixed_version == "1:1.2.11.dfsg-2+deb11u2"
    # Without its epoch 1.2.13 is below 1:1.2.11: a version that lost its epoch is still affected.
    no_epoch = found(scan(image([deb("zlib1g", "1.2.13.dfsg-1", "zlib")], bullseye), database))
    assert ("zlib1g", "DSA-5218-1") in no_epoch
    fixed = found(scan(image([deb("zlib1g", "1:1.2.11.dfsg-2+deb11u2", "zlib")], bullseye), database))
    assert ("zlib1g", "DSA-5218-1") not in fixed


def test_source_version_of_a_binnmu_is_the_one_compared(database):
    # A binNMU's binary version (+b1) differs from its source's; advisories name the source package and version.
    hits = found(scan(image([deb("libssl3", "3.0.11-1~deb12u2+b1", "openssl", "3.0.11-1~deb12u1")]), database))
    assert ("libssl3", "DSA-5532-1") in hits


def test_unfixed_advisory_and_debian_urgency(database):
    report = scan(image([deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")]), database)
    hit = found(report)["zlib1g", "DEBIAN-CVE-2023-45853"]
    assert hit.fixed_version is None and not hit.fixed
    assert hit.severity is VulnSeverity.LOW  # Debian's "unimportant"
    assert hit.cvss_score is None
    ignored = scan(image([deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")]), database, ignore_unfixed=True)
    assert not ignored.vulnerabilities
    assert [i.reason for i in ignored.ignored] == ["no fixed version yet (--ignore-unfixed)"]


def test_alpine_release_and_apk_order(database):
    v318 = Distro("alpine", "3.18.4")
    below = found(scan(image([Package(APK, "openssl", "3.1.3-r0", "x86_64", "openssl")], v318), database))
    assert below["openssl", "ALPINE-CVE-2023-5363"].fixed_version == "3.1.4-r0"
    assert below["openssl", "ALPINE-CVE-2023-5363"].ecosystem == "Alpine:v3.18"
    assert not scan(image([Package(APK, "openssl", "3.1.4-r0", "x86_64")], v318), database).vulnerabilities
    # Alpine 3.17's fix is 3.0.12-r0: 3.1.3-r0 there is past it.
    v317 = Distro("alpine", "3.17.5")
    assert not scan(image([Package(APK, "openssl", "3.1.3-r0", "x86_64")], v317), database).vulnerabilities
    assert scan(image([Package(APK, "openssl", "3.0.11-r0", "x86_64")], v317), database).vulnerabilities


def test_pypi_ranges_names_and_last_affected(database):
    report = scan(image([Package(PYPI, "Requests", "2.30.0"), Package(PYPI, "Jinja2", "3.1.2"),
                         Package(PYPI, "urllib3", "2.0.0")]), database)
    hits = found(report)
    assert set(hits) == {("Requests", "PYSEC-2023-74"), ("Jinja2", "GHSA-h5c8-rqwp-cp95")}
    assert hits["Requests", "PYSEC-2023-74"].fixed_version == "2.31.0"
    assert hits["Requests", "PYSEC-2023-74"].severity is VulnSeverity.MEDIUM  # CVSS 6.1
    assert hits["Requests", "PYSEC-2023-74"].cvss_score == 6.1
    assert hits["Jinja2", "GHSA-h5c8-rqwp-cp95"].fixed_version is None  # last_affected: no fix named
    outside = scan(image([Package(PYPI, "requests", "2.31.0"), Package(PYPI, "requests", "2.2.1"),
                          Package(PYPI, "jinja2", "3.1.3")]), database)
    assert not outside.vulnerabilities


def test_ignore_file_with_reason_and_expiry(database, tmp_path):
    ignore = tmp_path / ".trivyignore.yaml"
    ignore.write_text("vulnerabilities:\n"
                      "  - id: CVE-2023-5363\n"
                      "    statement: the service never sets cipher IV lengths\n"
                      "    expired_at: 2026-06-01\n"
                      "    purls: [pkg:deb/debian/libssl3]\n"
                      "  - id: DEBIAN-CVE-2023-45853\n"
                      "    statement: minizip is not used\n"
                      "    expired_at: 2025-12-31\n")
    entries = load_ignore_file(ignore)
    report = scan(image([deb("libssl3", "3.0.11-1~deb12u1", "openssl"), deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")]),
                  database, ignores=entries)
    assert [(i.vulnerability.advisory, i.reason) for i in report.ignored] == [
        ("DSA-5532-1", f"{ignore}:2: the service never sets cipher IV lengths (until 2026-06-01)")]
    # The expired entry hides nothing, and says so.
    assert [v.advisory for v in report.vulnerabilities] == ["DEBIAN-CVE-2023-45853"]
    assert [(e.advisory, e.expired, e.line) for e in report.expired_ignores] == [
        ("DEBIAN-CVE-2023-45853", "2025-12-31", 6)]
    assert any("expired on 2025-12-31" in w for w in report.warnings)
    # A purl that names another package leaves the match alone.
    other = tmp_path / "other.yaml"
    other.write_text("vulnerabilities:\n  - id: DSA-5532-1\n    purls: [pkg:deb/debian/openssl]\n")
    kept = scan(image([deb("libssl3", "3.0.11-1~deb12u1", "openssl")]), database, ignores=load_ignore_file(other))
    assert [v.advisory for v in kept.vulnerabilities] == ["DSA-5532-1"]


def test_plain_trivyignore_and_bad_ignore_files(tmp_path):
    plain = tmp_path / ".trivyignore"
    plain.write_text("# accepted: not reachable\nCVE-2023-5363 exp:2026-02-01\n\nDSA-5417-1  # bullseye only\n")
    entries = load_ignore_file(plain)
    assert [(e.advisory, e.reason, e.expires, e.line) for e in entries] == [
        ("CVE-2023-5363", "accepted: not reachable", dt.date(2026, 2, 1), 2), ("DSA-5417-1", "bullseye only", None, 4)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("vulnerabilities:\n  - id: CVE-1\n    expired_at: next week\n")
    with pytest.raises(UsageError, match=r"bad.yaml:2: expiry date 'next week' is not a date"):
        load_ignore_file(bad)
    with pytest.raises(UsageError, match="cannot read the vulnerability ignore file"):
        load_ignore_file(tmp_path / "missing.yaml")


def test_gate_and_findings_on_the_dockerfile_line(database):
    origin = Origin(APP.digest, 1, "RUN apt-get install -y libssl3", "Dockerfile", 3)
    base = Origin(BASE.digest, 0, "FROM", "Dockerfile", 1)
    report = scan_catalog(image([deb("libssl3", "3.0.11-1~deb12u1", "openssl", layer=APP),
                                 deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")]), database, ScanSettings(),
                          image="app:1", today=TODAY,
                          origin=lambda p: origin if p.layer == APP else base)
    check_gate([report], "critical")  # nothing critical
    check_gate([report], "none")
    with pytest.raises(VulnerabilitiesFound) as raised:
        check_gate([report], "high")
    error = raised.value
    assert error.exit_code == 12 and error.reports == (report,)
    assert "libssl3 3.0.11-1~deb12u1: DSA-5532-1 (high, fixed in 3.0.11-1~deb12u2) from Dockerfile:3" in error.render()
    findings = scan_findings([report, report], "Dockerfile")  # the same on two platforms: one finding
    assert [(f.rule, f.severity, f.line, f.source) for f in findings] == [
        ("DSA-5532-1", Severity.ERROR, 3, "scan"), ("DEBIAN-CVE-2023-45853", Severity.INFO, 1, "scan")]
    assert "libssl3 3.0.11-1~deb12u1 (source openssl) is affected by DSA-5532-1" in findings[0].message
    sarif = render(findings, "sarif")
    assert '"ruleId": "DSA-5532-1"' in sarif and '"startLine": 3' in sarif
    # The JSON form round-trips.
    assert report_from_json(report_to_json(report)) == report
