"""dpkg's package database: `/var/lib/dpkg/status` and distroless images' `/var/lib/dpkg/status.d/*` (one file per
package, the same stanza format), and the licenses of machine-readable `/usr/share/doc/PKG/copyright` files."""

from __future__ import annotations

from .control import stanzas
from .model import DEB, Package, Parsed

STATUS = "var/lib/dpkg/status"
STATUS_DIR = "var/lib/dpkg/status.d/"
DOC_DIR = "usr/share/doc/"
_COMPANIONS = (".md5sums", ".sha256sums", ".list", ".conffiles")
# dpkg states in which a package's files are on the disk (`config-files` and `not-installed` have none).
_PRESENT_STATES = frozenset({"installed", "half-configured", "unpacked", "half-installed", "triggers-awaited",
                             "triggers-pending"})


def is_database(path: str) -> bool:
    if path == STATUS:
        return True
    # status.d holds NAME (the stanza) and NAME.md5sums (file digests) per package; a package name may hold dots,
    # so only the companions' known suffixes are left out.
    return path.startswith(STATUS_DIR) and "/" not in path[len(STATUS_DIR):] and not path.endswith(_COMPANIONS)


def is_doc_link(path: str) -> bool:
    """usr/share/doc/NAME itself: a symlink there makes NAME's copyright another package's (kept to follow it)."""
    return path.startswith(DOC_DIR) and "/" not in path[len(DOC_DIR):]


def copyright_package(path: str) -> str | None:
    """The package whose copyright file `path` is (usr/share/doc/NAME/copyright), else None."""
    if path.startswith(DOC_DIR) and path.endswith("/copyright"):
        name = path[len(DOC_DIR):-len("/copyright")]
        return name if name and "/" not in name else None
    return None


def parse_status(path: str, data: bytes) -> Parsed:
    """The packages present in a status file; a malformed stanza is skipped with a warning naming the file and
    line (dpkg itself would refuse the whole database; an SBOM should still list the rest)."""
    text = data.decode("utf-8", "replace")
    packages: list[Package] = []
    warnings: list[str] = []
    for stanza in stanzas(text):
        where = f"/{path}:{stanza.line}"
        name, version = stanza.field("Package"), stanza.field("Version")
        if stanza.problem is not None or not name or not version:
            reason = stanza.problem or f"the stanza has no {'Package' if not name else 'Version'} field"
            warnings.append(f"{where}: skipped a malformed package entry: {reason}")
            continue
        status = (stanza.field("Status") or "").split()
        # status.d stanzas carry no Status field: everything in them is installed.
        if status and (len(status) != 3 or status[2] not in _PRESENT_STATES):
            continue
        source_name, source_version = _source(stanza.field("Source"), name, version)
        packages.append(Package(
            kind=DEB, name=name, version=version, arch=stanza.field("Architecture") or None,
            source_name=source_name, source_version=source_version, supplier=stanza.field("Maintainer"),
            homepage=stanza.field("Homepage"), summary=(stanza.field("Description") or "").split("\n")[0] or None,
            location=path))
    return Parsed(tuple(packages), tuple(warnings))


def _source(field: str | None, name: str, version: str) -> tuple[str | None, str | None]:
    """`Source: NAME` or `Source: NAME (VERSION)` (when the binary's version differs); None when the package
    is its own source."""
    if not field:
        return None, None
    source, _, rest = field.partition(" ")
    source_version = rest.strip().strip("()").strip() or version
    if source == name and source_version == version:
        return None, None
    return source, source_version
