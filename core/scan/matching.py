"""An image's packages matched against OSV records: which ecosystem (and release) each package belongs to, which
records name it, and whether its installed version lies in one of their affected ranges, in the ecosystem's own
version order (versions.py)."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, NamedTuple

from ..sbom.model import APK, DEB, NPM, PYPI, Catalog, Distro, Package
from .database import Database
from .model import Origin, Vulnerability
from .severity import rate
from .versions import ZERO, key_function

OSV_PAGE = "https://osv.dev/vulnerability/"


class Target(NamedTuple):
    """A package as the database is asked about it: its OSV ecosystem with release ("Debian:12", "PyPI"), the
    names records may list it under (its own, its source package's) and the version compared under each."""

    package: Package
    ecosystem: str
    names: tuple[tuple[str, str], ...]  # (name, version)


def distro_ecosystem(distro: Distro | None) -> str | None:
    """The OSV ecosystem of an image's distribution packages: Debian:12, Ubuntu:22.04, Alpine:v3.20."""
    if distro is None:
        return None
    if distro.id == "debian":
        major = (distro.version_id or "").split(".")[0]
        return f"Debian:{major}" if major else "Debian"
    if distro.id == "ubuntu":
        return f"Ubuntu:{distro.version_id}" if distro.version_id else "Ubuntu"
    if distro.id == "alpine":
        parts = (distro.version_id or "").split(".")
        return f"Alpine:v{parts[0]}.{parts[1]}" if len(parts) >= 2 else "Alpine"
    return None


def targets(catalog: Catalog) -> tuple[list[Target], list[str]]:
    """What to look up for each package, and a warning per kind of package no database covers."""
    distro_eco = distro_ecosystem(catalog.distro)
    found: list[Target] = []
    skipped: dict[str, int] = {}
    for package in catalog.packages:
        if package.kind in (DEB, APK):
            expected = "alpine" if package.kind == APK else "debian/ubuntu"
            if distro_eco is None or (package.kind == APK) != distro_eco.startswith("Alpine"):
                skipped[f"{package.kind} packages of a distribution that is not {expected}"] = \
                    skipped.get(f"{package.kind} packages of a distribution that is not {expected}", 0) + 1
                continue
            names = [(package.name, package.version)]
            if package.source_name and package.source_name != package.name:
                names.append((package.source_name, package.source_version or package.version))
            found.append(Target(package, distro_eco, tuple(names)))
        elif package.kind == PYPI:
            found.append(Target(package, "PyPI", ((package.name, package.version),)))
        elif package.kind == NPM:
            found.append(Target(package, "npm", ((package.name, package.version),)))
        else:
            skipped[f"{package.kind} packages"] = skipped.get(f"{package.kind} packages", 0) + 1
    warnings = [f"{count} {what} were not matched: no vulnerability database covers them"
                for what, count in sorted(skipped.items())]
    return found, warnings


def release_matches(wanted: str, listed: str) -> bool:
    """Whether an affected entry's ecosystem (`listed`) is the image's (`wanted`): Debian:12 is not Debian:11;
    an entry without a release applies to every release; Ubuntu's "22.04:LTS" is 22.04 (its "Pro:" streams are
    not the image's)."""
    if listed == wanted:
        return True
    base, _, release = listed.partition(":")
    wanted_base, _, wanted_release = wanted.partition(":")
    if base != wanted_base:
        return False
    if not release:
        return True
    return base == "Ubuntu" and bool(wanted_release) and release.startswith(wanted_release + ":")


def affected_state(ecosystem: str, version: str, affected: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether `version` is affected per this entry's `versions` and ECOSYSTEM/SEMVER `ranges`, and the fixed
    version of the range that holds it (the next `fixed` event above it; None when there is none)."""
    key = key_function(ecosystem)
    if version in (affected.get("versions") or ()):
        return True, _next_fixed(ecosystem, version, affected)
    try:
        installed = key(version)
    except Exception:
        return False, None
    for range_ in affected.get("ranges") or ():
        if not isinstance(range_, dict) or range_.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        events = []
        for event in range_.get("events") or ():
            if not isinstance(event, dict):
                continue
            for kind in ("introduced", "fixed", "last_affected", "limit"):
                value = event.get(kind)
                if isinstance(value, str):
                    events.append((kind, value))
        # Sorted by version; "0" before all. At one version "introduced" comes first, so that a range
        # introduced and fixed at the same version affects nothing.
        order = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
        events.sort(key=lambda e: ((0, None) if e[1] == ZERO else (1, key(e[1])), order[e[0]]))
        affected_now = False
        fixed_above = None
        for kind, value in events:
            at_or_below = value == ZERO or key(value) <= installed
            if kind == "introduced" and at_or_below:
                affected_now = True
            elif kind == "fixed":
                if at_or_below:
                    affected_now = False
                elif affected_now:
                    fixed_above = value
                    break
            elif kind == "last_affected" and value != ZERO and key(value) < installed:
                affected_now = False
            elif kind == "last_affected" and affected_now:
                break  # installed <= last_affected: affected, with no fix in this range
        if affected_now:
            return True, fixed_above
    return False, None


def _next_fixed(ecosystem: str, version: str, affected: dict[str, Any]) -> str | None:
    key = key_function(ecosystem)
    fixes = [e["fixed"] for r in affected.get("ranges") or () if isinstance(r, dict)
             for e in r.get("events") or () if isinstance(e, dict) and isinstance(e.get("fixed"), str)
             and key(e["fixed"]) > key(version)]
    return min(fixes, key=key) if fixes else None


def match(catalog: Catalog, database: Database, origin: Callable[[Package], Origin | None]) -> tuple[
        list[Vulnerability], list[str]]:
    """Every (package, advisory) pair whose installed version an advisory affects, and warnings (package kinds no
    database covers, ecosystems the database has no archive for)."""
    wanted, warnings = targets(catalog)
    missing = sorted({t.ecosystem.split(":")[0] for t in wanted if not database.has(t.ecosystem)})
    for ecosystem in missing:
        warnings.append(f"the vulnerability database has no {ecosystem} archive: {ecosystem} packages were not "
                        "matched")
    found: dict[tuple[str, str, str, str], Vulnerability] = {}
    for target in wanted:
        for name, version in target.names:
            for record in database.records(target.ecosystem, name):
                vulnerability = _vulnerability(record, target, name, version, origin)
                if vulnerability is None:
                    continue
                key = (target.package.name, target.package.version, target.package.location, vulnerability.advisory)
                known = found.get(key)
                if known is None or (known.fixed_version is None and vulnerability.fixed_version is not None):
                    found[key] = vulnerability
    return sorted(found.values(), key=lambda v: v.sort_key), warnings


def _vulnerability(record: dict[str, Any], target: Target, name: str, version: str,
                   origin: Callable[[Package], Origin | None]) -> Vulnerability | None:
    key = key_function(target.ecosystem)
    best: tuple[dict[str, Any], str | None] | None = None
    for affected in record.get("affected") or ():
        package = affected.get("package") or {}
        listed = str(package.get("ecosystem", ""))
        if not release_matches(target.ecosystem, listed) or not _same_name(listed, str(package.get("name")), name):
            continue
        hit, fixed = affected_state(target.ecosystem, version, affected)
        if hit and (best is None or (fixed is not None and (best[1] is None or key(fixed) < key(best[1])))):
            best = (affected, fixed)
    if best is None:
        return None
    affected, fixed = best
    rated = rate(record, affected)
    package = target.package
    advisory = str(record["id"])
    references = [str(r["url"]) for r in record.get("references") or () if isinstance(r, dict)
                  and isinstance(r.get("url"), str)]
    return Vulnerability(
        advisory=advisory, aliases=tuple(sorted({str(a) for a in record.get("aliases") or ()} - {advisory})),
        summary=str(record.get("summary") or ""), severity=rated.severity, cvss_score=rated.score,
        cvss_vector=rated.vector, package=package.name, version=package.version, ecosystem=target.ecosystem,
        purl=package.purl, fixed_version=fixed, links=tuple(dict.fromkeys([OSV_PAGE + advisory, *references])),
        origin=origin(package),
        source_package=name if name != package.name else None)


def _same_name(ecosystem: str, listed: str, name: str) -> bool:
    if ecosystem.startswith("PyPI"):
        return _pep503(listed) == _pep503(name)
    return listed == name


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ecosystems_needed(catalogs: Iterable[Catalog]) -> list[str]:
    """The OSV archives (base ecosystems) the catalogs' packages need, in a stable order."""
    needed: set[str] = set()
    for catalog in catalogs:
        for target in targets(catalog)[0]:
            needed.add(target.ecosystem.split(":")[0])
    return sorted(needed)
