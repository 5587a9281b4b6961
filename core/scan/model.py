"""What a vulnerability scan produces: one `Vulnerability` per (package, advisory) pair that matched, and the
`ScanReport` of an image. Plain immutable values: the matcher (matching.py) makes them, the gates (gates.py) judge
them, and every renderer (the CLI's table, SARIF, GitLab's container scanning report, Warnings NG, the GitHub job
summary, the merge-request note, the JSON event stream) only reads them."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class VulnSeverity(Enum):
    """Ordered like the CVSS v3 qualitative ratings; UNKNOWN (no vector, no distribution urgency) sorts lowest.
    `--fail-on-vuln high` fails on HIGH and CRITICAL."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def __lt__(self, other: VulnSeverity) -> bool:
        return self.rank < other.rank

    def __le__(self, other: VulnSeverity) -> bool:
        return self.rank <= other.rank

    def __gt__(self, other: VulnSeverity) -> bool:
        return self.rank > other.rank

    def __ge__(self, other: VulnSeverity) -> bool:
        return self.rank >= other.rank


_RANKS = {VulnSeverity.UNKNOWN: 0, VulnSeverity.LOW: 1, VulnSeverity.MEDIUM: 2, VulnSeverity.HIGH: 3,
          VulnSeverity.CRITICAL: 4}


class Origin(NamedTuple):
    """Where a package came into the image: its layer (blob digest, position from the bottom) and, when the build's
    history ties that layer to a Dockerfile instruction of this build, the file and line range of it. A package of
    the base image has `file` None and `instruction` the base's history entry (or the FROM line's place when
    the scan runs inside the build: then `file`/`line` name the FROM)."""

    layer_digest: str
    layer_position: int
    instruction: str = ""  # the history entry's created_by, or the Dockerfile instruction's text
    file: str | None = None  # the Dockerfile, as given to the build
    line: int | None = None  # 1-based
    end_line: int | None = None


class Vulnerability(NamedTuple):
    """One advisory that affects one installed package."""

    advisory: str  # the OSV id: DSA-5532-1, DLA-..., CVE-..., ALPINE-CVE-..., GHSA-..., PYSEC-...
    aliases: tuple[str, ...]  # CVE ids and other names of the same advisory, sorted
    summary: str
    severity: VulnSeverity
    cvss_score: float | None  # the base score of the vector the severity came from, when one did
    cvss_vector: str | None
    package: str  # the package's name as installed (dpkg's binary package, apk's package, the dist's name)
    version: str  # the installed version
    ecosystem: str  # OSV's ecosystem with release: "Debian:12", "Alpine:v3.20", "PyPI"
    purl: str
    fixed_version: str | None  # the lowest fixed version above the installed one, None when unfixed
    links: tuple[str, ...]  # the advisory's references (osv.dev's page first)
    origin: Origin | None
    source_package: str | None = None  # dpkg's Source: when the advisory names the source package

    @property
    def fixed(self) -> bool:
        return self.fixed_version is not None

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        """Most severe first, then by package and advisory."""
        return (-self.severity.rank, self.package, self.version, self.advisory)


class IgnoredVulnerability(NamedTuple):
    """A match the ignore file (or --ignore-unfixed) set aside, and why; kept so reports can say what was hidden."""

    vulnerability: Vulnerability
    reason: str


class ExpiredIgnore(NamedTuple):
    """An ignore-file entry whose expiry date has passed: it no longer hides anything, and the scan says so."""

    advisory: str
    package: str | None
    expired: str  # ISO date
    reason: str
    file: str
    line: int | None


class DatabaseInfo(NamedTuple):
    """One ecosystem archive the scan read: where from, when it was fetched (or the file's time), how many records."""

    ecosystem: str  # "Debian", "Alpine", "PyPI", ...
    source: str  # the URL or the --vuln-db path
    fetched: str  # ISO 8601 UTC
    records: int


class ScanReport(NamedTuple):
    """A scan of one image (one platform of a multi-platform build is one report)."""

    image: str  # the reference scanned, as the user named it (or the build's first tag / digest)
    digest: str  # the image manifest's digest
    platform: str  # "linux/amd64"
    distro: str | None  # "debian-12", "alpine-3.20", None when the image names none
    packages: int  # how many packages were matched against the database
    vulnerabilities: tuple[Vulnerability, ...]  # sorted by sort_key
    ignored: tuple[IgnoredVulnerability, ...] = ()
    expired_ignores: tuple[ExpiredIgnore, ...] = ()
    databases: tuple[DatabaseInfo, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. an ecosystem the database has no archive for

    def counts(self) -> dict[VulnSeverity, int]:
        """How many vulnerabilities of each severity (every severity present, zero included)."""
        result = dict.fromkeys(VulnSeverity, 0)
        for vulnerability in self.vulnerabilities:
            result[vulnerability.severity] += 1
        return result


# The JSON form of a ScanReport: what the metadata file (`dockyard.scan`, a list, one per platform) and the JSON
# event stream carry, and what the CI adapters read back. Field names are the NamedTuples' own; severities are
# their values; absent values are null.

def report_to_json(report: ScanReport) -> dict[str, object]:
    return {
        "image": report.image, "digest": report.digest, "platform": report.platform, "distro": report.distro,
        "packages": report.packages,
        "counts": {severity.value: count for severity, count in report.counts().items()},
        "vulnerabilities": [_vulnerability_to_json(v) for v in report.vulnerabilities],
        "ignored": [{"vulnerability": _vulnerability_to_json(i.vulnerability), "reason": i.reason}
                    for i in report.ignored],
        "expired_ignores": [e._asdict() for e in report.expired_ignores],
        "databases": [d._asdict() for d in report.databases],
        "warnings": list(report.warnings),
    }


def report_from_json(data: dict[str, object]) -> ScanReport:
    def items(key: str) -> list[dict[str, object]]:
        value = data.get(key) or []
        assert isinstance(value, list)
        return value

    return ScanReport(
        image=str(data["image"]), digest=str(data["digest"]), platform=str(data["platform"]),
        distro=None if data.get("distro") is None else str(data["distro"]), packages=int(str(data["packages"])),
        vulnerabilities=tuple(_vulnerability_from_json(v) for v in items("vulnerabilities")),
        ignored=tuple(IgnoredVulnerability(_vulnerability_from_json(i["vulnerability"]),  # type: ignore[arg-type]
                                           str(i["reason"])) for i in items("ignored")),
        expired_ignores=tuple(ExpiredIgnore(**e) for e in items("expired_ignores")),  # type: ignore[arg-type]
        databases=tuple(DatabaseInfo(**d) for d in items("databases")),  # type: ignore[arg-type]
        warnings=tuple(str(w) for w in items("warnings")),
    )


def _vulnerability_to_json(vulnerability: Vulnerability) -> dict[str, object]:
    data = vulnerability._asdict()
    data["severity"] = vulnerability.severity.value
    data["aliases"] = list(vulnerability.aliases)
    data["links"] = list(vulnerability.links)
    data["origin"] = None if vulnerability.origin is None else vulnerability.origin._asdict()
    return data


def _vulnerability_from_json(data: dict[str, object]) -> Vulnerability:
    fields = dict(data)
    fields["severity"] = VulnSeverity(fields["severity"])
    fields["aliases"] = tuple(fields["aliases"])  # type: ignore[arg-type]
    fields["links"] = tuple(fields["links"])  # type: ignore[arg-type]
    origin = fields.get("origin")
    fields["origin"] = None if origin is None else Origin(**origin)  # type: ignore[arg-type]
    return Vulnerability(**fields)  # type: ignore[arg-type]
