"""`dockyard build --scan` and `dockyard scan`, end to end: images built here (FROM scratch, a Debian 12
os-release and a dpkg status whose versions sit below, at and above DSA-5532-1's fix), the OSV archives served
from loopback (tests/support/osv_server.py). The gate stops the build before anything is written, naming the
package, version, advisory and Dockerfile line in the error, the findings reports (SARIF, GitLab code quality,
Warnings NG) and the metadata file; the fixed image passes."""

from __future__ import annotations

import json
import re

import pytest

from dockyard.cli import main
from dockyard.events import ScanFinished, event_from_json
from dockyard.scan.model import VulnSeverity, report_from_json
from tests.support.osv_server import OsvServer, archives, fixture_records

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
DOCKERFILE = """FROM scratch
COPY os-release /etc/os-release
COPY base-status /var/lib/dpkg/status
# the application's libraries
COPY app-status /var/lib/dpkg/status
"""


def stanza(name, version, source=None):
    return (f"Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n"
            + (f"Source: {source}\n" if source else "") + "\n")


def context(directory, libssl_version):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "os-release").write_text(OS_RELEASE)
    base = stanza("zlib1g", "1:1.2.13.dfsg-1", "zlib") + stanza("openssl", "3.0.11-1~deb12u2")
    (directory / "base-status").write_text(base)
    (directory / "app-status").write_text(base + stanza("libssl3", libssl_version, "openssl"))
    (directory / "Dockerfile").write_text(DOCKERFILE)
    return directory


@pytest.fixture(scope="module")
def osv():
    with OsvServer(archives(fixture_records())) as server:
        yield server


def test_build_scan_gate_fails_below_the_fix_and_passes_at_it(tmp_path, osv, capsys):
    vulnerable = context(tmp_path / "vulnerable", "3.0.11-1~deb12u1")
    reports = {fmt: tmp_path / f"report.{fmt}" for fmt in ("sarif", "gitlab", "jenkins")}
    metadata = tmp_path / "metadata.json"
    out = tmp_path / "out"
    common = ["--progress", "plain", "--vuln-db-url", osv.url, "--metadata-file", str(metadata),
              *(f"--report={fmt}={path}" for fmt, path in reports.items())]
    code = main(["build", str(vulnerable), "--scan", "--fail-on-vuln", "high", "-t", "app:1",
                 "--output", f"type=oci,dest={out}", "--scan-report", f"json={tmp_path / 'scan.json'}", *common])
    error = capsys.readouterr().err
    assert code == 12
    dockerfile = f"{vulnerable / 'Dockerfile'}"
    assert "the scan found 1 vulnerability at or above high" in error
    assert f"libssl3 3.0.11-1~deb12u1: DSA-5532-1 (high, fixed in 3.0.11-1~deb12u2) from {dockerfile}:5" in error
    assert not out.exists()  # stopped before any output was written
    # The metadata file carries the scan even so (the CI adapters read it), and so do the reports.
    scanned = [report_from_json(r) for r in json.loads(metadata.read_text())["dockyard.scan"]]
    assert [(v.package, v.advisory, v.origin.line) for v in scanned[0].vulnerabilities] == [
        ("libssl3", "DSA-5532-1", 5), ("zlib1g", "DEBIAN-CVE-2023-45853", 3)]
    assert scanned[0].vulnerabilities[0].origin.instruction == "COPY app-status /var/lib/dpkg/status"
    assert json.loads((tmp_path / "scan.json").read_text())["reports"][0]["counts"]["high"] == 1
    sarif = json.loads(reports["sarif"].read_text())["runs"][0]["results"]
    hit = next(r for r in sarif if r["ruleId"] == "DSA-5532-1")
    assert hit["level"] == "error" and hit["locations"][0]["physicalLocation"]["region"]["startLine"] == 5
    assert "libssl3 3.0.11-1~deb12u1" in hit["message"]["text"]
    gitlab = next(i for i in json.loads(reports["gitlab"].read_text()) if i["check_name"] == "DSA-5532-1")
    assert gitlab["location"]["lines"]["begin"] == 5 and "libssl3 3.0.11-1~deb12u1" in gitlab["description"]
    jenkins = next(i for i in json.loads(reports["jenkins"].read_text())["issues"] if i["type"] == "DSA-5532-1")
    assert jenkins["lineStart"] == 5 and jenkins["category"] == "scan" and jenkins["severity"] == "ERROR"

    fixed = context(tmp_path / "fixed", "3.0.11-1~deb12u2")
    assert main(["build", str(fixed), "--scan", "--fail-on-vuln", "high", "-t", "app:1",
                 "--output", f"type=oci,dest={out}", *common]) == 0
    document = json.loads(metadata.read_text())
    assert document["digest"].startswith("sha256:")
    report = report_from_json(document["dockyard.scan"][0])
    assert report.digest == document["platforms"][0]["digest"]
    assert [v.advisory for v in report.vulnerabilities] == ["DEBIAN-CVE-2023-45853"]
    assert report.counts()[VulnSeverity.LOW] == 1 and report.databases[0].ecosystem == "Debian"
    assert (out / "index.json").is_file()
    capsys.readouterr()

    # dockyard scan reads the image written: its origin is the layer's history entry.
    assert main(["scan", f"oci:{out}", "--vuln-db-url", osv.url, "--format", "json"]) == 0
    scanned_again = report_from_json(json.loads(capsys.readouterr().out))
    assert [(v.advisory, v.origin.layer_position) for v in scanned_again.vulnerabilities] == [
        ("DEBIAN-CVE-2023-45853", 1)]
    assert "COPY base-status" in scanned_again.vulnerabilities[0].origin.instruction


def test_scan_command_on_a_docker_archive_gate_and_ignore_file(tmp_path, osv, capsys):
    image = context(tmp_path / "vulnerable", "3.0.11-1~deb12u1")
    archive = tmp_path / "app.tar"
    assert main(["build", str(image), "-t", "app:1", "--progress", "plain",
                 "--output", f"type=docker,dest={archive}"]) == 0
    capsys.readouterr()
    code = main(["scan", f"docker-archive:{archive}", "--vuln-db-url", osv.url, "--fail-on-vuln", "low"])
    captured = capsys.readouterr()
    assert code == 12
    assert re.search(r"^libssl3 +3\.0\.11-1~deb12u1 +DSA-5532-1 ", captured.out, re.MULTILINE)
    assert "HIGH 7.5" in captured.out and "3.0.11-1~deb12u2" in captured.out
    assert "2 vulnerabilities (1 high, 1 low)" in captured.out
    assert "vulnerability database: 4 Debian advisories" in captured.err
    ignore = tmp_path / ".trivyignore.yaml"
    ignore.write_text("vulnerabilities:\n  - id: CVE-2023-5363\n    statement: reviewed\n    expired_at: 2999-01-01\n"
                      "  - id: CVE-2023-45853\n    statement: minizip unused\n    expired_at: 2999-01-01\n")
    assert main(["scan", f"docker-archive:{archive}", "--vuln-db-url", osv.url, "--fail-on-vuln", "low",
                 "--vuln-ignore-file", str(ignore)]) == 0
    assert "ignored: libssl3 DSA-5532-1" in capsys.readouterr().out


def test_json_progress_carries_scan_finished_and_no_database_is_exit_13(tmp_path, osv, capsys):
    image = context(tmp_path / "app", "3.0.11-1~deb12u1")
    assert main(["build", str(image), "--scan", "--progress", "json", "--vuln-db-url", osv.url]) == 0
    events = [event_from_json(json.loads(line)) for line in capsys.readouterr().err.splitlines()
              if line.startswith("{")]
    finished = [e for e in events if isinstance(e, ScanFinished)]
    assert len(finished) == 1 and finished[0].platform == "linux/amd64"
    assert report_from_json(finished[0].report).vulnerabilities[0].advisory == "DSA-5532-1"
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["build", str(image), "--scan", "--progress", "plain", "--vuln-db", str(empty),
                 "--cache-dir", str(tmp_path / "fresh-cache")])
    # A directory without the ecosystem's archive: a warning, nothing matched (not an error).
    assert code == 0 and "has no Debian/all.zip" in capsys.readouterr().err
    code = main(["scan", f"oci:{tmp_path}/none", "--vuln-db-url", osv.url])
    assert code == 4  # no such layout: the image source's own error
    with OsvServer({}) as nothing:
        code = main(["build", str(image), "--scan", "--progress", "plain", "--vuln-db-url", nothing.url,
                     "--cache-dir", str(tmp_path / "fresh-cache")])
    assert code == 13
    assert "no Debian vulnerability database" in capsys.readouterr().err
