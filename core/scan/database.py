"""The OSV database: osv.dev's per-ecosystem archives (`<base>/<Ecosystem>/all.zip`, one OSV JSON record per
member), downloaded into the cache with conditional requests and reused when the network is not there, or given
by the user (`--vuln-db DIR|ZIP`), and an index of each archive by package name so that a scan reads only the
records of the packages it has.

Cache layout (CACHE_ROOT/vulndb/): `<Ecosystem>/all.zip` and `all.zip.json` (where it came from, its ETag and
Last-Modified, when it was fetched, its sha256), and beside them the index: `all.zip.<digest>.index` (a pickled
{ecosystem-and-name: [(offset, length), ...]}) and `all.zip.<digest>.records` (the records, compact JSON, one
after the other). An index is named by the archive's digest, so a replaced archive is never read through an old
index. A download goes to a temporary file that replaces the archive only once it is complete and a valid zip:
an interrupted download leaves the previous database as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from ..errors import VulnerabilityDatabaseError
from .model import DatabaseInfo

DEFAULT_URL = "https://osv-vulnerabilities.storage.googleapis.com"
ARCHIVE = "all.zip"
INDEX_VERSION = 1
# An archive older than this is worth a warning (osv.dev refreshes its exports several times a day).
STALE_AFTER = dt.timedelta(days=7)


def index_key(ecosystem: str, name: str) -> str:
    """The index's key of a package: its ecosystem without release ("Debian") and its name (PyPI's normalized as
    PEP 503 says, so `Foo_Bar` finds `foo-bar`)."""
    base = ecosystem.split(":", 1)[0]
    if base == "PyPI":
        name = re.sub(r"[-_.]+", "-", name).lower()
    return f"{base}\0{name}"


class Archive(NamedTuple):
    """One indexed archive: where its records are, and what the scan says about it."""

    path: Path
    names: dict[str, list[tuple[int, int]]]  # index_key -> where its records are in records_path
    records_path: Path
    info: DatabaseInfo


class Database:
    """The archives a scan reads; `records(ecosystem, name)` are the OSV records that name that package."""

    def __init__(self, archives: list[Archive], warnings: tuple[str, ...] = ()) -> None:
        self.archives = archives
        self.warnings = warnings
        self._data: dict[Path, bytes] = {}

    @property
    def infos(self) -> tuple[DatabaseInfo, ...]:
        return tuple(a.info for a in self.archives)

    def has(self, ecosystem: str) -> bool:
        base = ecosystem.split(":", 1)[0]
        return any(a.info.ecosystem in (base, "*") for a in self.archives)

    def records(self, ecosystem: str, name: str) -> Iterator[dict[str, Any]]:
        key = index_key(ecosystem, name)
        for archive in self.archives:
            spans = archive.names.get(key)
            if not spans:
                continue
            data = self._data.get(archive.records_path)
            if data is None:
                data = self._data[archive.records_path] = archive.records_path.read_bytes()
            for offset, length in spans:
                yield json.loads(data[offset:offset + length])


# --- where the archives come from ------------------------------------------------------------------------------

def open_database(ecosystems: list[str], *, cache_root: Path, db: Path | None = None, url: str | None = None,
                  notify: Callable[[str], None] = lambda text: None, now: dt.datetime | None = None) -> Database:
    """The database for `ecosystems` (OSV base names: "Debian", "Alpine", "PyPI"): from `db` (a directory of
    `<Ecosystem>/all.zip`, or one zip of records of any ecosystems) when given, else downloaded from `url`
    (default osv.dev's) into `cache_root`/vulndb. Raises VulnerabilityDatabaseError when an ecosystem the image
    needs has no archive at all (none given, none downloadable, none cached)."""
    now = now or dt.datetime.now(dt.UTC)
    archives: list[Archive] = []
    warnings: list[str] = []
    if db is not None:
        if db.is_file():
            archives.append(load_archive(db, "*", source=str(db), fetched=_mtime(db), index_dir=_index_dir(cache_root)))
        elif db.is_dir():
            for ecosystem in ecosystems:
                path = next((p for p in (db / ecosystem / ARCHIVE, db / "osv-scanner" / ecosystem / ARCHIVE,
                                         db / f"{ecosystem}.zip") if p.is_file()), None)
                if path is None:
                    warnings.append(f"the vulnerability database {db} has no {ecosystem}/{ARCHIVE}: {ecosystem} "
                                    "packages were not matched")
                    continue
                archives.append(load_archive(path, ecosystem, source=str(path), fetched=_mtime(path),
                                             index_dir=_index_dir(cache_root)))
        else:
            raise VulnerabilityDatabaseError(f"no vulnerability database at {db}",
                                             hint="give a directory of <Ecosystem>/all.zip (as osv.dev publishes "
                                                  "them) or one zip of OSV records")
    else:
        base = (url or DEFAULT_URL).rstrip("/")
        for ecosystem in ecosystems:
            archive = cached_archive(ecosystem, base, cache_root / "vulndb", notify=notify)
            archives.append(archive)
    for archive in archives:
        fetched = dt.datetime.fromisoformat(archive.info.fetched)
        if now - fetched > STALE_AFTER:
            warnings.append(f"the {archive.info.ecosystem} vulnerability database is {(now - fetched).days} days "
                            f"old ({archive.info.source})")
    return Database(archives, tuple(warnings))


def _index_dir(cache_root: Path) -> Path:
    return cache_root / "vulndb" / "index"


def _mtime(path: Path) -> str:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat(timespec="seconds")


def cached_archive(ecosystem: str, base_url: str, root: Path, *, notify: Callable[[str], None]) -> Archive:
    """The archive of `ecosystem`, brought up to date with a conditional request (If-None-Match /
    If-Modified-Since); when the request fails the cached archive is used as it is, with a note."""
    import requests

    directory = root / ecosystem
    path = directory / ARCHIVE
    meta_path = directory / f"{ARCHIVE}.json"
    meta = _read_meta(meta_path) if path.is_file() else {}
    url = f"{base_url}/{ecosystem}/{ARCHIVE}"
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = str(meta["etag"])
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = str(meta["last_modified"])
    failure = None
    try:
        with requests.get(url, headers=headers, stream=True, timeout=(10, 60)) as response:
            if response.status_code == 304:
                pass
            elif response.status_code == 200:
                meta = _download(response, directory, path, url)
                _write_meta(meta_path, meta)
            else:
                failure = f"{url} answered {response.status_code} {response.reason}"
    except (requests.RequestException, OSError) as exc:
        failure = f"cannot download {url}: {_reason(exc)}"
    if failure is not None:
        if not path.is_file():
            raise VulnerabilityDatabaseError(
                f"no {ecosystem} vulnerability database: {failure}, and none was downloaded before",
                hint="check the network or --vuln-db-url (a mirror of osv.dev's archives), or give one with "
                     "--vuln-db DIR|ZIP (air-gapped runners: copy <Ecosystem>/all.zip from a machine that has "
                     "the network)")
        notify(f"{failure}; using the {ecosystem} vulnerability database fetched {meta.get('fetched', '?')}")
    if not meta:  # an archive without its record (placed by hand): its file time stands for when it was fetched
        meta = {"url": url, "fetched": _mtime(path), "sha256": _sha256(path)}
    return load_archive(path, ecosystem, source=str(meta.get("url", url)), fetched=str(meta["fetched"]),
                        index_dir=directory, digest=str(meta.get("sha256") or "") or None)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else type(exc).__name__


def _download(response: Any, directory: Path, path: Path, url: str) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f"{ARCHIVE}.part-{os.getpid()}"
    digest = hashlib.sha256()
    try:
        with open(temporary, "wb") as out:
            for chunk in response.iter_content(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if not zipfile.is_zipfile(temporary):
            raise OSError(0, "the download is not a zip archive")
        expected = response.headers.get("Content-Length")
        if expected is not None and int(expected) != temporary.stat().st_size:
            raise OSError(0, "the download ended early")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return {"url": url, "etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"),
            "fetched": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "sha256": digest.hexdigest()}


def _read_meta(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(path: Path, meta: dict[str, object]) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(meta, indent=2))
    os.replace(temporary, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- the index --------------------------------------------------------------------------------------------------

def load_archive(path: Path, ecosystem: str, *, source: str, fetched: str, index_dir: Path,
                 digest: str | None = None) -> Archive:
    """The archive at `path` with its index, made (and kept in `index_dir`) the first time this archive is read.
    `digest`: its sha256 when already known (a download records it), else it is computed (remembered by the file's
    size and time)."""
    digest = digest or _known_digest(path, index_dir)
    stem = f"{path.name}.{digest[:16]}"
    index_path, records_path = index_dir / f"{stem}.index", index_dir / f"{stem}.records"
    index = None
    if index_path.is_file() and records_path.is_file():
        try:
            with open(index_path, "rb") as stream:
                stored = pickle.load(stream)
            if stored.get("version") == INDEX_VERSION and stored.get("digest") == digest:
                index = stored
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            index = None
    if index is None:
        index = build_index(path, digest, index_path, records_path)
    return Archive(path, index["names"], records_path,
                   DatabaseInfo(ecosystem=ecosystem, source=source, fetched=fetched, records=index["records"]))


def _known_digest(path: Path, index_dir: Path) -> str:
    stat = path.stat()
    memo_path = index_dir / "digests.json"
    memo = _read_meta(memo_path)
    key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    found = memo.get(key)
    if isinstance(found, str):
        return found
    digest = _sha256(path)
    memo[key] = digest
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        _write_meta(memo_path, memo)
    except OSError:
        pass  # a read-only cache: the digest is computed again next time
    return digest


# The fields of a record a scan reads; the rest (details, credits, ...) are left out of the index's copy.
_KEPT = ("id", "aliases", "summary", "severity", "references", "database_specific", "modified", "withdrawn")


def build_index(path: Path, digest: str, index_path: Path, records_path: Path) -> dict[str, Any]:
    names: dict[str, list[tuple[int, int]]] = {}
    count = 0
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise VulnerabilityDatabaseError(f"the vulnerability database {path} is not a zip archive: {exc}",
                                         hint="download it again (remove it from the cache) or give another "
                                              "with --vuln-db") from None
    index_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = records_path.with_name(f"{records_path.name}.tmp-{os.getpid()}")
    offset = 0
    try:
        with archive, open(temporary, "wb") as out:
            for member in archive.infolist():
                if member.is_dir() or not member.filename.endswith(".json"):
                    continue
                try:
                    record = json.loads(archive.read(member))
                except (ValueError, zipfile.BadZipFile, OSError) as exc:
                    raise VulnerabilityDatabaseError(
                        f"the vulnerability database {path} has a broken record {member.filename}: {exc}",
                        hint="download it again or give another with --vuln-db") from None
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    continue
                affected = [a for a in record.get("affected") or [] if isinstance(a, dict)
                            and isinstance(a.get("package"), dict)]
                if not affected or record.get("withdrawn"):
                    continue
                slim = {k: record[k] for k in _KEPT if k in record}
                slim["affected"] = affected
                blob = json.dumps(slim, separators=(",", ":")).encode()
                out.write(blob)
                count += 1
                keys = {index_key(str(a["package"].get("ecosystem", "")), str(a["package"].get("name", "")))
                        for a in affected}
                for key in keys:
                    names.setdefault(key, []).append((offset, len(blob)))
                offset += len(blob)
        os.replace(temporary, records_path)
    finally:
        temporary.unlink(missing_ok=True)
    index = {"version": INDEX_VERSION, "digest": digest, "records": count, "names": names}
    temporary_index = index_path.with_name(f"{index_path.name}.tmp-{os.getpid()}")
    with open(temporary_index, "wb") as stream:
        pickle.dump(index, stream, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary_index, index_path)
    if index_path.parent == path.parent:  # the cache's own archive: the index of the archive it replaced goes
        for old in path.parent.glob(f"{path.name}.*"):
            if old.suffix in (".index", ".records") and old not in (index_path, records_path):
                old.unlink(missing_ok=True)
    return index
