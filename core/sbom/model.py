"""What a catalog is made of: packages as the image's package databases record them, the distribution, and the
layer each package came in with. Plain immutable values; the writers (spdx.py, cyclonedx.py) and the later
consumers (attestations, vulnerability matching) read them."""

from __future__ import annotations

from typing import NamedTuple

from .layers import LayerInfo

# Package kinds, as package URLs name their types.
DEB = "deb"
APK = "apk"
RPM = "rpm"
PYPI = "pypi"
NPM = "npm"


class Distro(NamedTuple):
    """The distribution /etc/os-release names (ID, VERSION_ID, VERSION_CODENAME, PRETTY_NAME)."""

    id: str
    version_id: str | None = None
    codename: str | None = None
    pretty_name: str | None = None

    @property
    def purl_distro(self) -> str:
        """The `distro` qualifier of package URLs: debian-12, ubuntu-22.04, alpine-3.20 (Alpine: major.minor,
        the release its package repository is named after)."""
        if not self.version_id:
            return self.codename or self.id
        version = self.version_id
        if self.id == "alpine":
            version = ".".join(version.split(".")[:2])
        return f"{self.id}-{version}"


class Package(NamedTuple):
    """One installed package. `licenses` are the strings the package records (a DEP-5 copyright file's
    License: short names, a METADATA License-Expression or classifier, an apk L: field), unconverted; `location`
    is the database file (root-relative path) it was read from; `layer` the layer that brought it in."""

    kind: str  # DEB, APK, RPM, PYPI, NPM
    name: str
    version: str
    arch: str | None = None
    source_name: str | None = None  # deb Source:, apk origin, rpm source package
    source_version: str | None = None
    licenses: tuple[str, ...] = ()
    supplier: str | None = None  # maintainer / vendor / author, as recorded
    homepage: str | None = None
    summary: str | None = None
    location: str = ""
    purl: str = ""
    layer: LayerInfo | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What stays the same while a package stays installed at one version in one place."""
        return (self.kind, self.name, self.version, self.arch or "", self.location)

    @property
    def sort_key(self) -> tuple[str, str, str, str, str]:
        return self.key


class Parsed(NamedTuple):
    """What one package database file holds: its packages, and a warning per entry that had to be skipped."""

    packages: tuple[Package, ...]
    warnings: tuple[str, ...] = ()


class Catalog(NamedTuple):
    """Everything an image's package databases say: its packages (sorted), its distribution, its layers, and
    the warnings met on the way (a malformed database entry that was skipped, naming the file)."""

    image_name: str
    image_digest: str
    platform: str
    distro: Distro | None
    packages: tuple[Package, ...]
    layers: tuple[LayerInfo, ...]
    warnings: tuple[str, ...] = ()

    def of_kind(self, kind: str) -> tuple[Package, ...]:
        return tuple(p for p in self.packages if p.kind == kind)
