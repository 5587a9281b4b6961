"""The OSV database: osv.dev's per-ecosystem archives (`<base>/<Ecosystem>/all.zip`, one OSV JSON record per
member), downloaded into the cache with conditional requests and reused when the network is not there, or given
by the user (`--vuln-db DIR|ZIP`), and an index of each archive by package name so that a scan reads only the
records of the packages it has.

Cache layout (CACHE_ROOT/vulndb/): `<Ecosystem>/all.zip` and `all.zip.json` (where it came from, its ETag and
Last-Modified, when it was fetched, its sha256), and beside them the index: `all.zip.<digest>.index` (marshal's
{ecosystem-release-and-name: (offset, length)}, in buckets by the key's hash) and `all.zip.<digest>.records`:
for each such key one JSON array of the records' parts for that release and package, `details` and other fields
no scan reads left out; a scan parses one array per package.
An index is named by the archive's digest, so a replaced archive is never read through an old index. A download
goes to a temporary file that replaces the archive only once it is complete and a valid zip: an interrupted
download leaves the previous database as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mmap
import os
import marshal
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, NamedTuple

from ..errors import VulnerabilityDatabaseError
from .model import DatabaseInfo

DEFAULT_URL = "https://osv-vulnerabilities.storage.googleapis.com"
ARCHIVE = "all.zip"
INDEX_VERSION = 4
# The index is split into this many buckets by a hash of the key, each marshalled apart: a scan unmarshals only
# the buckets of its own packages' keys, not the whole index (~100,000 keys for Debian's archive).
BUCKETS = 4096
# An archive older than this is worth a warning (osv.dev refreshes its exports several times a day).
STALE_AFTER = dt.timedelta(days=7)


def index_key(ecosystem: str, name: str) -> str:
    """The index's key of a package: its ecosystem with release ("Debian:12"; Ubuntu's without its ":LTS") and its
    name (PyPI's normalized as PEP 503 says, so `Foo_Bar` finds `foo-bar`). Each release has its own key, so a
    scan reads (and parses) only its own release's part of a record."""
    base = ecosystem.split(":", 1)[0]
    if base == "PyPI":
        name = re.sub(r"[-_.]+", "-", name).lower()
    if base == "Ubuntu":
        ecosystem = ecosystem.removesuffix(":LTS")
    return f"{ecosystem}\0{name}"


def lookup_keys(ecosystem: str, name: str) -> list[str]:
    """The keys a package of `ecosystem` (with its release) is found under: its release's, and the bare
    ecosystem's (an entry without a release applies to every release)."""
    base = ecosystem.split(":", 1)[0]
    keys = [index_key(ecosystem, name)]
    if base != ecosystem:
        keys.append(index_key(base, name))
    return keys


def bucket_of(key: str) -> int:
    return zlib.crc32(key.encode()) % BUCKETS


class NameIndex:
    """The index of an archive as stored: each bucket's {key: (offset, length)} marshalled, unmarshalled when
    first asked for."""

    def __init__(self, buckets: list[bytes]) -> None:
        self._buckets = buckets
        self._loaded: dict[int, dict[str, tuple[int, int]]] = {}

    def get(self, key: str) -> tuple[int, int] | None:
        number = bucket_of(key)
        bucket = self._loaded.get(number)
        if bucket is None:
            bucket = self._loaded[number] = marshal.loads(self._buckets[number])
        return bucket.get(key)


class Archive(NamedTuple):
    """One indexed archive: where its records are, and what the scan says about it."""

    path: Path
    names: NameIndex  # index_key -> where the JSON array of its records is in records_path
    records_path: Path
    info: DatabaseInfo


class Database:
    """The archives a scan reads; `records(ecosystem, name)` are the OSV records that name that package."""

    def __init__(self, archives: list[Archive], warnings: tuple[str, ...] = ()) -> None:
        self.archives = archives
        self.warnings = warnings
        self._data: dict[Path, mmap.mmap] = {}
        self._parsed: dict[str, list[dict[str, Any]]] = {}  # index_key -> records (binaries share a source's)

    @property
    def infos(self) -> tuple[DatabaseInfo, ...]:
        return tuple(a.info for a in self.archives)

    def has(self, ecosystem: str) -> bool:
        """Whether an archive covers `ecosystem` (a --vuln-db ZIP covers every one)."""
        base = ecosystem.split(":", 1)[0]
        return any(a.info.ecosystem in (base, "*") for a in self.archives)

    def records(self, ecosystem: str, name: str) -> list[dict[str, Any]]:
        keys = lookup_keys(ecosystem, name)
        found = self._parsed.get(keys[0])
        if found is not None:
            return found
        found = []
        for archive in self.archives:
            for key in keys:
                span = archive.names.get(key)
                if span is None:
                    continue
                data = self._data.get(archive.records_path)
                if data is None:  # mapped, not read: a scan touches only its packages' pages
                    with open(archive.records_path, "rb") as stream:
                        data = self._data[archive.records_path] = mmap.mmap(stream.fileno(), 0,
                                                                            access=mmap.ACCESS_READ)
                offset, length = span
                found += json.loads(data[offset:offset + length])
        self._parsed[keys[0]] = found
        return found


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
                stored = marshal.load(stream)
            if isinstance(stored, dict) and stored.get("version") == INDEX_VERSION and stored.get("digest") == digest:
                index = stored
        except (OSError, EOFError, ValueError, TypeError):
            index = None
    if index is None:
        index = build_index(path, digest, index_path, records_path)
    return Archive(path, NameIndex(index["buckets"]), records_path,
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
    """Each record split by release and package, the parts written out, then gathered per key into one JSON
    array each (the records file), with the index of where each array is."""
    parts: dict[str, list[tuple[int, int]]] = {}
    count = 0
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise VulnerabilityDatabaseError(f"the vulnerability database {path} is not a zip archive: {exc}",
                                         hint="download it again (remove it from the cache) or give another "
                                              "with --vuln-db") from None
    index_path.parent.mkdir(parents=True, exist_ok=True)
    scattered = records_path.with_name(f"{records_path.name}.parts-{os.getpid()}")
    temporary = records_path.with_name(f"{records_path.name}.tmp-{os.getpid()}")
    names: dict[str, tuple[int, int]] = {}
    offset = 0
    try:
        with archive, open(scattered, "wb") as out:
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
                count += 1
                slim = {k: record[k] for k in _KEPT if k in record}
                by_key: dict[str, list[dict[str, Any]]] = {}
                for entry in affected:
                    package = entry["package"]
                    key = index_key(str(package.get("ecosystem", "")), str(package.get("name", "")))
                    by_key.setdefault(key, []).append(entry)
                for key, entries in by_key.items():  # each release's part of the record stored apart
                    blob = json.dumps(dict(slim, affected=entries), separators=(",", ":")).encode()
                    out.write(blob)
                    parts.setdefault(key, []).append((offset, len(blob)))
                    offset += len(blob)
        offset = 0
        with open(scattered, "rb") as source, open(temporary, "wb") as out:
            data = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) if parts else b""
            for key, spans in parts.items():
                array = b"[" + b",".join(data[o:o + n] for o, n in spans) + b"]"
                out.write(array)
                names[key] = (offset, len(array))
                offset += len(array)
            if isinstance(data, mmap.mmap):
                data.close()
        os.replace(temporary, records_path)
    finally:
        scattered.unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
    buckets: list[dict[str, tuple[int, int]]] = [{} for _ in range(BUCKETS)]
    for key, span in names.items():
        buckets[bucket_of(key)][key] = span
    index = {"version": INDEX_VERSION, "digest": digest, "records": count,
             "buckets": [marshal.dumps(bucket) for bucket in buckets]}
    temporary_index = index_path.with_name(f"{index_path.name}.tmp-{os.getpid()}")
    with open(temporary_index, "wb") as stream:
        marshal.dump(index, stream)
    os.replace(temporary_index, index_path)
    if index_path.parent == path.parent:  # the cache's own archive: the index of the archive it replaced goes
        for old in path.parent.glob(f"{path.name}.*"):
            if old.suffix in (".index", ".records") and old not in (index_path, records_path):
                old.unlink(missing_ok=True)
    return index
