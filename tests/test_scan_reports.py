"""The scan report renderers (core/scan/reports.py) on ScanReports made here: SARIF against the official SARIF
2.1.0 schema, GitLab's container scanning report against what GitLab's schema requires, Warnings NG's native
issue fields, the job summary's markdown table, and dockyard's json (the metadata file's form)."""

from __future__ import annotations

import json
import re
from datetime import datetime, UTC
from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard.scan.model import (DatabaseInfo, ExpiredIgnore, IgnoredVulnerability, Origin, ScanReport,
                                 Vulnerability, VulnSeverity, report_from_json)
from dockyard.scan.reports import FORMATS, MARKDOWN_ROWS, render_scan

SCHEMAS = Path(__file__).parent / "support" / "schemas"

RUN_LINE = Origin("sha256:" + "b" * 64, 1, "RUN apt-get install -y openssl", "app/Dockerfile", 4, 5)
BASE = Origin("sha256:" + "a" * 64, 0, "/bin/sh -c #(nop) ADD file:1234 in /")

# Facts of real advisories (OSV records DSA-5532-1 and DLA-3325-1, Alpine's CVE-2023-5678, PyPI's
# PYSEC-2023-74): ids, aliases, packages and fixed versions as published.
OPENSSL = Vulnerability(
    "DSA-5532-1", ("CVE-2023-5363",), "openssl - security update", VulnSeverity.HIGH, 7.5,
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "libssl3", "3.0.11-1~deb12u1", "Debian:12",
    "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12", "3.0.11-1~deb12u2",
    ("https://osv.dev/vulnerability/DSA-5532-1", "https://www.debian.org/security/2023/dsa-5532"), RUN_LINE,
    source_package="openssl")
ZLIB = Vulnerability(
    "CVE-2023-45853", (), "MiniZip in zlib through 1.3 has an integer overflow", VulnSeverity.CRITICAL, 9.8,
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "zlib1g", "1:1.2.13.dfsg-1", "Debian:12",
    "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12", None,
    ("https://osv.dev/vulnerability/CVE-2023-45853",), BASE, source_package="zlib")
REQUESTS = Vulnerability(
    "PYSEC-2023-74", ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q"), "Unintended leak of Proxy-Authorization header",
    VulnSeverity.MEDIUM, None, None, "requests", "2.30.0", "PyPI", "pkg:pypi/requests@2.30.0", "2.31.0",
    ("https://osv.dev/vulnerability/PYSEC-2023-74",), RUN_LINE)


def report(platform: str = "linux/amd64", vulnerabilities: tuple[Vulnerability, ...] = (ZLIB, OPENSSL, REQUESTS),
           **more) -> ScanReport:
    fields = {"distro": "debian-12", **more}
    return ScanReport("registry.example/app:1.0", "sha256:" + "c" * 64, platform, packages=142,
                      vulnerabilities=tuple(sorted(vulnerabilities, key=lambda v: v.sort_key)), **fields)


IGNORED = IgnoredVulnerability(REQUESTS._replace(advisory="GHSA-xxxx"), "not reachable: no proxy in use")
EXPIRED = ExpiredIgnore("CVE-2022-1234", "libc6", "2024-01-31", "waiting for the point release",
                        ".trivyignore.yaml", 3)
DATABASE = DatabaseInfo("Debian", "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip",
                        "2026-12-07T08:00:00Z", 77012)
FULL = report(ignored=(IGNORED,), expired_ignores=(EXPIRED,), databases=(DATABASE,),
              warnings=("no advisories for ecosystem Wolfi in the database",))
START = datetime(2026, 12, 7, 21, 0, 1, tzinfo=UTC)
END = datetime(2026, 12, 7, 21, 0, 3, 500000, tzinfo=UTC)


def test_every_format_renders_and_an_unknown_one_is_a_usage_error():
    assert FORMATS == ("json", "sarif", "gitlab", "jenkins", "markdown")
    for fmt in FORMATS:
        assert render_scan([FULL], fmt).endswith("\n")
    with pytest.raises(UsageError, match="unknown scan report format 'html'"):
        render_scan([FULL], "html")


def test_json_is_the_metadata_form_and_reads_back():
    data = json.loads(render_scan([FULL, report("linux/arm64")], "json"))
    assert [entry["platform"] for entry in data["reports"]] == ["linux/amd64", "linux/arm64"]
    assert report_from_json(data["reports"][0]) == FULL
    assert data["reports"][0]["counts"] == {"critical": 1, "high": 1, "medium": 1, "low": 0, "unknown": 0}


# --- SARIF ---------------------------------------------------------------------------------------------------

def sarif_validator():
    """The complete official SARIF 2.1.0 schema (vendored for the findings renderer: schemas/README.md says why
    the validator is built directly)."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_sarif_is_valid_and_puts_each_vulnerability_on_its_dockerfile_line():
    validator = sarif_validator()
    log = json.loads(render_scan([FULL, report("linux/arm64", (OPENSSL,))], "sarif"))
    validator.validate(log)
    broken = json.loads(render_scan([FULL], "sarif"))
    broken["runs"][0]["results"][0]["level"] = "critical"
    assert len(list(validator.iter_errors(broken))) == 1
    run = log["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert list(rules) == ["CVE-2023-45853", "DSA-5532-1", "PYSEC-2023-74"]
    # GitHub code scanning ranks security alerts by security-severity: the CVSS score, else the severity's.
    assert rules["DSA-5532-1"]["properties"]["security-severity"] == "7.5"
    assert rules["PYSEC-2023-74"]["properties"]["security-severity"] == "5.5"
    assert "security" in rules["DSA-5532-1"]["properties"]["tags"]
    assert rules["DSA-5532-1"]["helpUri"] == "https://osv.dev/vulnerability/DSA-5532-1"
    results = {result["ruleId"]: result for result in run["results"]}
    assert len(run["results"]) == 3  # openssl on two platforms is one alert naming both
    openssl = results["DSA-5532-1"]
    assert openssl["level"] == "error"
    assert openssl["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "app/Dockerfile"}, "region": {"startLine": 4, "endLine": 5}}
    message = openssl["message"]["text"]
    for fact in ("libssl3", "3.0.11-1~deb12u1", "DSA-5532-1", "CVE-2023-5363", "3.0.11-1~deb12u2", "high",
                 "linux/amd64, linux/arm64"):
        assert fact in message
    assert openssl["properties"]["platforms"] == ["linux/amd64", "linux/arm64"]
    # A package of the base image has no Dockerfile line outside a build: the image is the location.
    zlib = results["CVE-2023-45853"]
    assert zlib["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "registry.example/app:1.0"
    assert "no fix yet" in zlib["message"]["text"]
    assert results["PYSEC-2023-74"]["level"] == "warning"
    prints = [next(iter(result["partialFingerprints"].values())) for result in run["results"]]
    assert len(set(prints)) == 3
    # The fingerprint is what and in which image, not the line: moving the RUN keeps the alert.
    moved = report(vulnerabilities=(OPENSSL._replace(origin=RUN_LINE._replace(line=9, end_line=9)),))
    assert json.loads(render_scan([moved], "sarif"))["runs"][0]["results"][0]["partialFingerprints"] == \
        openssl["partialFingerprints"]


def test_sarif_of_a_clean_image_is_valid_and_empty():
    log = json.loads(render_scan([report(vulnerabilities=())], "sarif"))
    sarif_validator().validate(log)
    assert log["runs"][0]["results"] == []


# --- GitLab container scanning ---------------------------------------------------------------------------------

GITLAB_SCHEMA = SCHEMAS / "container-scanning-report-format.json"
GITLAB_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def gitlab_errors(data: dict) -> list[str]:
    """What GitLab's container scanning schema (security-report-schemas, dist/container-scanning-report-format.json,
    15.x) requires, written out from its published definitions: the required properties, the enums and the
    patterns GitLab rejects a report for. Kept next to the full-schema test below, which runs when the
    published file is vendored (schemas/README.md)."""
    errors = []

    def need(obj: dict, keys: tuple[str, ...], where: str) -> None:
        errors.extend(f"{where}.{key} missing" for key in keys if key not in obj)

    need(data, ("version", "vulnerabilities", "scan"), "report")
    if not re.match(r"^\d+\.\d+\.\d+$", str(data.get("version"))):
        errors.append("version is not MAJOR.MINOR.PATCH")
    scan = data.get("scan", {})
    need(scan, ("analyzer", "scanner", "type", "start_time", "end_time", "status"), "scan")
    for part in ("analyzer", "scanner"):
        need(scan.get(part, {}), ("id", "name", "version", "vendor"), f"scan.{part}")
        need(scan.get(part, {}).get("vendor", {}), ("name",), f"scan.{part}.vendor")
    if scan.get("type") != "container_scanning":
        errors.append("scan.type is not container_scanning")
    if scan.get("status") not in ("success", "failure"):
        errors.append("scan.status is not success or failure")
    for key in ("start_time", "end_time"):
        if not GITLAB_TIME.match(str(scan.get(key))):
            errors.append(f"scan.{key} is not yyyy-mm-ddThh:mm:ss")
    for index, entry in enumerate(data.get("vulnerabilities", [])):
        where = f"vulnerabilities[{index}]"
        need(entry, ("id", "identifiers", "location"), where)
        if entry.get("severity") not in ("Info", "Unknown", "Low", "Medium", "High", "Critical"):
            errors.append(f"{where}.severity {entry.get('severity')!r}")
        if not entry.get("identifiers") or len(entry["identifiers"]) > 20:
            errors.append(f"{where}.identifiers: 1 to 20 required")
        for identifier in entry.get("identifiers", []):
            need(identifier, ("type", "name", "value"), f"{where}.identifiers[]")
            if not all(isinstance(identifier.get(k), str) and identifier.get(k) for k in ("type", "name", "value")):
                errors.append(f"{where}.identifiers[]: empty type/name/value")
        if len(entry.get("name", "")) > 255 or len(entry.get("solution", "")) > 7000:
            errors.append(f"{where}: name over 255 or solution over 7000 characters")
        location = entry.get("location", {})
        need(location, ("dependency", "operating_system", "image"), f"{where}.location")
        need(location.get("dependency", {}), ("package", "version"), f"{where}.location.dependency")
        need(location.get("dependency", {}).get("package", {}), ("name",), f"{where}.location.dependency.package")
        for link in entry.get("links", []):
            need(link, ("url",), f"{where}.links[]")
        for key, detail in entry.get("details", {}).items():
            need(detail, ("type",), f"{where}.details.{key}")
    return errors


def test_gitlab_container_scanning_report_has_what_gitlab_requires():
    data = json.loads(render_scan([FULL, report("linux/arm64", (OPENSSL,))], "gitlab", started=START,
                                  finished=END))
    assert gitlab_errors(data) == []
    assert data["scan"]["start_time"] == "2026-12-07T21:00:01"
    assert data["scan"]["end_time"] == "2026-12-07T21:00:03"
    entries = {entry["identifiers"][0]["value"]: entry for entry in data["vulnerabilities"]}
    assert list(entries) == ["CVE-2023-45853", "DSA-5532-1", "PYSEC-2023-74"]
    openssl = entries["DSA-5532-1"]
    assert openssl["severity"] == "High"
    assert openssl["location"] == {"dependency": {"package": {"name": "libssl3"}, "version": "3.0.11-1~deb12u1"},
                                   "operating_system": "debian 12", "image": "registry.example/app:1.0"}
    assert [(i["type"], i["value"]) for i in openssl["identifiers"]] == [("dsa", "DSA-5532-1"),
                                                                         ("cve", "CVE-2023-5363")]
    assert openssl["solution"] == "Upgrade libssl3 from 3.0.11-1~deb12u1 to 3.0.11-1~deb12u2"
    assert openssl["details"]["introduced_by"]["value"] == "app/Dockerfile:4 (RUN apt-get install -y openssl)"
    assert [item["value"] for item in openssl["details"]["platforms"]["items"]] == ["linux/amd64", "linux/arm64"]
    assert entries["CVE-2023-45853"]["severity"] == "Critical"
    assert entries["CVE-2023-45853"]["solution"].startswith("No fixed version")
    assert len({entry["id"] for entry in data["vulnerabilities"]}) == 3
    # The checker is not a rubber stamp: what GitLab refuses, it refuses.
    openssl["severity"] = "high"
    del openssl["location"]["operating_system"]
    data["scan"]["start_time"] = "2026-12-07T21:00:01Z"
    assert len(gitlab_errors(data)) == 3


def test_gitlab_report_of_a_clean_image_still_names_the_scan():
    data = json.loads(render_scan([report(vulnerabilities=(), distro=None)], "gitlab", started=START, finished=END))
    assert gitlab_errors(data) == [] and data["vulnerabilities"] == []


@pytest.mark.skipif(not GITLAB_SCHEMA.exists(), reason="GitLab's published container scanning schema is not "
                    "vendored (no network when it was written): schemas/README.md says where it comes from")
def test_gitlab_report_is_valid_against_gitlabs_published_schema():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    schema = json.loads(GITLAB_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    validator.validate(json.loads(render_scan([FULL], "gitlab", started=START, finished=END)))


# --- Jenkins Warnings NG ---------------------------------------------------------------------------------------

def test_jenkins_native_issues_carry_package_advisory_and_line():
    issues = json.loads(render_scan([FULL], "jenkins"))["issues"]
    assert [issue["type"] for issue in issues] == ["CVE-2023-45853", "DSA-5532-1", "PYSEC-2023-74"]
    assert [issue["severity"] for issue in issues] == ["ERROR", "HIGH", "NORMAL"]
    openssl = issues[1]
    assert (openssl["fileName"], openssl["lineStart"], openssl["lineEnd"]) == ("app/Dockerfile", 4, 5)
    assert openssl["packageName"] == "libssl3" and openssl["category"] == "Debian:12"
    assert "3.0.11-1~deb12u1" in openssl["message"] and "3.0.11-1~deb12u2" in openssl["message"]
    assert '<a href="https://www.debian.org/security/2023/dsa-5532">' in openssl["description"]
    # Only Warnings NG's own issue properties: anything else makes its JSON parser drop the issue.
    known = {"fileName", "lineStart", "lineEnd", "severity", "message", "category", "type", "packageName",
             "moduleName", "description", "fingerprint"}
    assert all(set(issue) <= known for issue in issues)


# --- markdown (the GitHub job summary) -------------------------------------------------------------------------

def test_markdown_table_lists_the_vulnerabilities_most_severe_first():
    text = render_scan([FULL], "markdown")
    assert "### Vulnerabilities: `registry.example/app:1.0` (linux/amd64)" in text
    assert "142 packages (debian-12): 1 critical, 1 high, 1 medium, 0 low, 0 unknown" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| critical", "| high", "| medium"]
    assert ("| high | [DSA-5532-1](https://osv.dev/vulnerability/DSA-5532-1) (CVE-2023-5363) | `libssl3` "
            "| `3.0.11-1~deb12u1` | `3.0.11-1~deb12u2` | app/Dockerfile:4 (RUN apt-get install -y openssl) |") in rows
    assert "no fix" in rows[0]
    assert "1 ignored: GHSA-xxxx in `requests` (not reachable: no proxy in use)" in text
    assert "ignore entry for CVE-2022-1234 expired on 2024-01-31 (.trivyignore.yaml:3)" in text
    assert "Debian (77012 records, fetched 2026-12-07T08:00:00Z)" in text
    assert "no advisories for ecosystem Wolfi" in text


def test_markdown_caps_a_long_table():
    many = tuple(OPENSSL._replace(advisory=f"DSA-{9000 + n}-1") for n in range(MARKDOWN_ROWS + 7))
    text = render_scan([report(vulnerabilities=many)], "markdown")
    assert sum(line.startswith("| high |") for line in text.splitlines()) == MARKDOWN_ROWS
    assert "and 7 more" in text
