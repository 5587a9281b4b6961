"""Alpine's package database, `/lib/apk/db/installed`: one record per package of `K:value` lines (P name,
V version, A architecture, L license, o origin, m maintainer, U url, T description), records separated by a
blank line (apk's "installed database" format, the same as its APKINDEX)."""

from __future__ import annotations

from .model import APK, Package, Parsed

INSTALLED = ("lib/apk/db/installed", "usr/lib/apk/db/installed")


def is_database(path: str) -> bool:
    return path in INSTALLED


def parse_installed(path: str, data: bytes) -> Parsed:
    packages: list[Package] = []
    warnings: list[str] = []
    record: dict[str, str] = {}
    start = 1
    lines = data.decode("utf-8", "replace").splitlines() + [""]
    for number, line in enumerate(lines, 1):
        if line.strip():
            if not record:
                start = number
            key, colon, value = line.partition(":")
            if colon and len(key) == 1:
                record.setdefault(key, value)  # file lines (F:, R:, Z:...) repeat: the package fields do not
            continue
        if not record:
            continue
        if not record.get("P") or not record.get("V"):
            warnings.append(f"/{path}:{start}: skipped a malformed package entry: it has no "
                            f"{'P (name)' if not record.get('P') else 'V (version)'} line")
        else:
            packages.append(Package(
                kind=APK, name=record["P"], version=record["V"], arch=record.get("A") or None,
                source_name=record.get("o") if record.get("o") not in (None, record["P"]) else None,
                licenses=(record["L"],) if record.get("L") else (), supplier=record.get("m") or None,
                homepage=record.get("U") or None, summary=record.get("T") or None, location=path))
        record = {}
    return Parsed(tuple(packages), tuple(warnings))
