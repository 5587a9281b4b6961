"""The package catalog of an image: what its package databases list once all its layers are applied, each
package with its package URL, its licenses and the layer that brought it in.

The layers are streamed in order (layers.py); after every layer that touched a package database the packages
present are compared with those before it, so a package's layer is the first layer of the run of layers in
which it has been installed at its final version (an upgrade in a later layer moves it there; a layer that
rewrites the database without touching the package does not).
"""

from __future__ import annotations

import re
from typing import Callable

from packageurl import PackageURL

from ..image.model import Image
from . import apk, dpkg, npm, osrelease, pythondist, rpmdb
from .licenses import dep5_licenses
from .layers import (BlobSource, ImageFile, LayerInfo, LayerRecords, LayerView, layer_infos, resolve,
                     walk_layers)
from .model import APK, DEB, NPM, PYPI, RPM, Catalog, Distro, Package, Parsed

__all__ = ["CatalogMemo", "catalog", "package_url"]

Parser = Callable[[str, bytes], Parsed]


def _parser(path: str) -> Parser | None:
    if dpkg.is_database(path):
        return dpkg.parse_status
    if apk.is_database(path):
        return apk.parse_installed
    if rpmdb.is_database(path):
        return rpmdb.parse_rpmdb
    if pythondist.is_metadata(path):
        return pythondist.parse_metadata
    if npm.is_manifest(path):
        return npm.parse_package_json
    return None


def wanted(path: str) -> bool:
    """The files a catalog reads: package databases (and package manifests), Debian copyright files and doc
    directory links, os-release."""
    return (_parser(path) is not None or dpkg.copyright_package(path) is not None or dpkg.is_doc_link(path)
            or path in osrelease.PATHS)


class CatalogMemo:
    """What a catalog computes from a file's bytes or a package alone (the parsed package database, a copyright
    file's licenses, a package URL), kept for the next catalog of the same build: an image built on a base
    shares the base's databases and copyright files, so a catalog of the base made while the steps run
    (attest/prefetch.py) leaves the final image's catalog little to compute. Pure functions of their
    arguments: a memo changes how fast a catalog is made, never what it holds. Kept per build, not per process
    (the keys hold the files' bytes)."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[Parser, str, bytes], Parsed] = {}
        self._licenses: dict[bytes, tuple[str, ...]] = {}
        self._purls: dict[tuple[Package, Distro | None], str] = {}
        self._walked: dict[tuple[LayerInfo, ...], _Walked] = {}

    def walked(self, layers: list[LayerInfo]) -> _Walked:
        """Where a catalog of an image with these layers starts: after the longest run of its first layers an
        earlier catalog walked (a copy of that walk's state), else at the bottom."""
        for count in range(len(layers), 0, -1):
            found = self._walked.get(tuple(layers[:count]))
            if found is not None:
                return _Walked(found.view.copy(), dict(found.parsed), dict(found.introduced))
        return _Walked(LayerView(), {}, {})

    def keep_walk(self, layers: list[LayerInfo], walked: _Walked) -> None:
        self._walked[tuple(layers)] = _Walked(walked.view.copy(), dict(walked.parsed), dict(walked.introduced))

    def parsed(self, parser: Parser, path: str, data: bytes) -> Parsed:
        key = (parser, path, data)
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = parser(path, data)
        return found

    def licenses(self, data: bytes) -> tuple[str, ...]:
        found = self._licenses.get(data)
        if found is None:
            found = self._licenses[data] = dep5_licenses(data.decode("utf-8", "replace")) or ()
        return found

    def package_url(self, package: Package, distro: Distro | None) -> str:
        key = (package, distro)
        found = self._purls.get(key)
        if found is None:
            found = self._purls[key] = package_url(package, distro)
        return found


class _Walked:
    """A catalog's state after some layers: the view of the wanted files, the package databases parsed, and the
    layer that introduced each package present."""

    def __init__(self, view: LayerView, parsed: dict[str, Parsed],
                 introduced: dict[tuple[str, str, str, str, str], LayerInfo]):
        self.view = view
        self.parsed = parsed
        self.introduced = introduced


def catalog(image: Image, blobs: BlobSource, *, name: str = "", digest: str | None = None,
            records: LayerRecords | None = None, memo: CatalogMemo | None = None) -> Catalog:
    """The catalog of `image`, whose layer blobs `blobs` opens. `name` and `digest` say what the image is called
    and pinned as (default: no name, the digest of its manifest as dockyard writes it). `records`: the layer
    records already made (record_cache.py), used instead of reading those layers again; `memo`: what earlier
    catalogs of this build computed (CatalogMemo)."""
    memo = memo or CatalogMemo()
    infos = layer_infos(image)
    walked = memo.walked(infos)
    parsed, introduced = walked.parsed, walked.introduced
    for change in walk_layers(image, blobs, wanted, records, walked.view):
        databases = [p for p in change.changed if _parser(p) is not None]
        if not databases:
            continue
        for path in databases:
            entry = change.files.get(path)
            parser = _parser(path)
            if entry is None or entry.data is None or parser is None:
                parsed.pop(path, None)
            else:
                parsed[path] = memo.parsed(parser, path, entry.data)
        present = {package.key for result in parsed.values() for package in result.packages}
        introduced = walked.introduced = {key: introduced.get(key, change.layer) for key in present}
    memo.keep_walk(infos, walked)
    files = walked.view.files
    distro = _distro(files)
    packages = []
    warnings: list[str] = []
    for path in sorted(parsed):
        warnings += parsed[path].warnings
        for package in parsed[path].packages:
            if package.kind == DEB and not package.licenses:
                package = package._replace(licenses=_copyright_licenses(files, package.name, memo))
            packages.append(package._replace(purl=memo.package_url(package, distro),
                                            layer=introduced.get(package.key)))
    packages.sort(key=lambda p: p.sort_key)
    return Catalog(image_name=name, image_digest=digest or image.digest, platform=str(image.platform),
                   distro=distro, packages=tuple(packages), layers=tuple(infos),
                   warnings=tuple(warnings))


def _distro(files: dict[str, ImageFile]) -> Distro | None:
    for path in osrelease.PATHS:
        found = resolve(files, path)
        if found is not None and found[1].data is not None:
            return osrelease.parse_os_release(found[1].data)
    return None


def _copyright_licenses(files: dict[str, ImageFile], package: str, memo: CatalogMemo) -> tuple[str, ...]:
    found = resolve(files, f"{dpkg.DOC_DIR}{package}/copyright")
    if found is None or found[1].data is None:
        return ()
    return memo.licenses(found[1].data)


def package_url(package: Package, distro: Distro | None) -> str:
    """The package URL (purl) of a package of an image of `distro`: pkg:deb/debian/NAME@VERSION?arch=..&distro=..,
    pkg:apk/alpine/..., pkg:rpm/fedora/...?epoch=.., pkg:pypi/NAME@VERSION, pkg:npm/%40SCOPE/NAME@VERSION."""
    if package.kind == PYPI:
        return PackageURL(type="pypi", name=re.sub(r"[-_.]+", "-", package.name).lower(),
                          version=package.version).to_string()
    if package.kind == NPM:
        scope, _, name = package.name.rpartition("/")
        return PackageURL(type="npm", namespace=scope or None, name=name, version=package.version).to_string()
    default_namespace = {DEB: "debian", APK: "alpine", RPM: "redhat"}[package.kind]
    namespace = distro.id if distro is not None else default_namespace
    version = package.version
    qualifiers: dict[str, str] = {}
    if package.arch:
        qualifiers["arch"] = package.arch
    if distro is not None:
        qualifiers["distro"] = distro.purl_distro
    if package.kind == RPM:
        epoch, colon, rest = version.partition(":")
        if colon and epoch.isdigit():
            qualifiers["epoch"], version = epoch, rest
    if package.source_name:
        same_version = package.source_version in (None, package.version)
        qualifiers["upstream"] = package.source_name if same_version else \
            f"{package.source_name}@{package.source_version}"
    return PackageURL(type=package.kind, namespace=namespace, name=package.name, version=version,
                      qualifiers=qualifiers).to_string()
