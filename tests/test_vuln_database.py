"""The OSV database: downloaded from a loopback stand-in for osv.dev's bucket (tests/support/osv_server.py) with
conditional requests, reused when the network is gone, kept whole when a download is cut short, given by the
user (`--vuln-db DIR|ZIP`), its index made once per archive digest, and clear errors when there is none."""

from __future__ import annotations

import datetime as dt
import json
import zipfile

import pytest

from dockyard.errors import VulnerabilityDatabaseError
from dockyard.scan import database as database_module
from dockyard.scan.database import open_database
from tests.support.osv_server import OsvServer, archives, fixture_records, zip_of


def names(database, ecosystem, name):
    return sorted(r["id"] for r in database.records(ecosystem, name))


def test_download_then_conditional_requests_then_offline(tmp_path):
    notes: list[str] = []
    with OsvServer(archives(fixture_records())) as server:
        first = open_database(["Debian", "PyPI"], cache_root=tmp_path, url=server.url, notify=notes.append)
        assert names(first, "Debian:12", "openssl") == ["DSA-5417-1", "DSA-5532-1"]
        assert names(first, "PyPI", "Requests") == ["PYSEC-2023-74"]  # PEP 503 names
        assert [(i.ecosystem, i.records, i.source) for i in first.infos] == [
            ("Debian", 4, f"{server.url}/Debian/all.zip"), ("PyPI", 2, f"{server.url}/PyPI/all.zip")]
        meta = json.loads((tmp_path / "vulndb/Debian/all.zip.json").read_text())
        assert meta["etag"] and meta["last_modified"] and meta["sha256"]
        assert [code for _, code in server.requests] == [200, 200]
        again = open_database(["Debian"], cache_root=tmp_path, url=server.url, notify=notes.append)
        assert server.requests[-1] == ("/Debian/all.zip", 304)  # If-None-Match answered: nothing downloaded
        assert again.infos[0].fetched == first.infos[0].fetched
    # The server is gone: the cached archive is used, and the scan says from when.
    offline = open_database(["Debian"], cache_root=tmp_path, url=server.url, notify=notes.append)
    assert names(offline, "Debian:12", "zlib") == ["DEBIAN-CVE-2023-45853", "DSA-5218-1"]
    assert len(notes) == 1 and "cannot download" in notes[0] and first.infos[0].fetched in notes[0]


def test_an_interrupted_download_keeps_the_previous_database(tmp_path):
    records = fixture_records()
    with OsvServer(archives(records)) as server:
        open_database(["Debian"], cache_root=tmp_path, url=server.url)
        before = (tmp_path / "vulndb/Debian/all.zip").read_bytes()
        # A new export (one more record) whose download is cut off halfway.
        newer = dict(next(r for r in records if r["id"] == "DSA-5532-1"), id="DSA-9999-1")
        server.files = archives([*records, newer])
        server.cut_short = True
        notes: list[str] = []
        kept = open_database(["Debian"], cache_root=tmp_path, url=server.url, notify=notes.append)
        assert (tmp_path / "vulndb/Debian/all.zip").read_bytes() == before
        assert "DSA-9999-1" not in names(kept, "Debian:12", "openssl")
        assert notes and "cannot download" in notes[0]
        assert not list((tmp_path / "vulndb/Debian").glob("*.part-*"))
        server.cut_short = False
        updated = open_database(["Debian"], cache_root=tmp_path, url=server.url)
        assert "DSA-9999-1" in names(updated, "Debian:12", "openssl")
        # The replaced archive's index went with it.
        assert len(list((tmp_path / "vulndb/Debian").glob("all.zip.*.index"))) == 1


def test_no_database_at_all_is_a_clear_error(tmp_path):
    with OsvServer({}) as server:
        with pytest.raises(VulnerabilityDatabaseError) as raised:
            open_database(["Alpine"], cache_root=tmp_path, url=server.url)
    error = raised.value
    assert error.exit_code == 13
    assert f"no Alpine vulnerability database: {server.url}/Alpine/all.zip answered 404" in error.message
    assert "--vuln-db" in error.hint
    with pytest.raises(VulnerabilityDatabaseError, match="no vulnerability database at"):
        open_database(["Debian"], cache_root=tmp_path, db=tmp_path / "missing")


def test_vuln_db_directory_zip_and_broken_archives(tmp_path):
    by_ecosystem = archives(fixture_records())
    (tmp_path / "db/Debian").mkdir(parents=True)
    (tmp_path / "db/Debian/all.zip").write_bytes(by_ecosystem["Debian"])
    from_dir = open_database(["Debian", "Alpine"], cache_root=tmp_path / "cache", db=tmp_path / "db")
    assert names(from_dir, "Debian:11", "zlib") == ["DEBIAN-CVE-2023-45853", "DSA-5218-1"]  # by name: any release
    assert from_dir.warnings == (f"the vulnerability database {tmp_path / 'db'} has no Alpine/all.zip: Alpine "
                                 "packages were not matched",)
    one_zip = tmp_path / "everything.zip"
    one_zip.write_bytes(zip_of(fixture_records()))
    from_zip = open_database(["Alpine"], cache_root=tmp_path / "cache", db=one_zip)
    assert names(from_zip, "Alpine:v3.18", "openssl") == ["ALPINE-CVE-2023-5363"]
    assert from_zip.has("PyPI") and from_zip.infos[0].ecosystem == "*"
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(VulnerabilityDatabaseError, match="is not a zip archive"):
        open_database(["Debian"], cache_root=tmp_path / "cache", db=broken)
    bad_record = tmp_path / "bad-record.zip"
    with zipfile.ZipFile(bad_record, "w") as archive:
        archive.writestr("DSA-1.json", "{not json")
    with pytest.raises(VulnerabilityDatabaseError, match=r"has a broken record DSA-1\.json"):
        open_database(["Debian"], cache_root=tmp_path / "cache", db=bad_record)


def test_the_index_is_made_once_per_archive_digest(tmp_path, monkeypatch):
    built: list[str] = []
    real = database_module.build_index

    def counting(path, digest, *args):
        built.append(digest)
        return real(path, digest, *args)

    monkeypatch.setattr(database_module, "build_index", counting)
    archive = tmp_path / "all.zip"
    archive.write_bytes(zip_of(fixture_records()))
    for _ in range(3):
        open_database(["Debian"], cache_root=tmp_path / "cache", db=archive)
    assert len(built) == 1
    archive.write_bytes(zip_of(fixture_records()[:2]))  # new content: a new index
    assert open_database(["Debian"], cache_root=tmp_path / "cache", db=archive).infos[0].records == 2
    assert len(built) == 2 and built[0] != built[1]


def test_an_old_database_is_a_warning(tmp_path):
    archive = tmp_path / "all.zip"
    archive.write_bytes(zip_of(fixture_records()))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    opened = open_database(["Debian"], cache_root=tmp_path / "cache", db=archive, now=later)
    assert any("vulnerability database is 30 days old" in w for w in opened.warnings)
