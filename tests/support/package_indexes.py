"""Package indexes for pip and npm, laid out as static files that tests/support/debian_repo.py's `serve` puts on
loopback: what `pip install --index-url URL/simple/ NAME` and `npm install --registry URL NAME` read.

* pip: a PEP 503 "simple" index (``simple/NAME/index.html`` linking each wheel with its sha256) of wheels made
  here (``pure_wheel``: a one-module, pure-Python wheel) or repacked by tests/support/wheelhouse.py.
* npm: a registry's two kinds of document: the packument (``NAME``: every version's package.json with
  ``dist.tarball`` and ``dist.integrity``) and the tarballs (``NAME/-/NAME-VERSION.tgz``, files under
  ``package/``), as registry.npmjs.org serves them for unscoped names.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

MTIME = 1704067200  # 2024-01-01, so the tarballs are the same every run


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pure_wheel(directory: Path, name: str, version: str, modules: dict[str, str]) -> Path:
    """A py3-none-any wheel of `modules` (file name -> source), with METADATA, WHEEL and RECORD."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = dict(modules)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: dockyard-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(text.encode())])
    writer.writerow([f"{info}/RECORD", "", ""])
    files[f"{info}/RECORD"] = record.getvalue()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return wheel


def simple_index(root: Path, wheels: list[Path]) -> Path:
    """A PEP 503 index of `wheels` under `root`/simple (the wheels themselves go to `root`/files)."""
    by_project: dict[str, list[Path]] = {}
    (root / "files").mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        target = root / "files" / wheel.name
        target.write_bytes(wheel.read_bytes())
        by_project.setdefault(_normalized(wheel.name.split("-")[0]), []).append(target)
    for project, files in by_project.items():
        links = "".join(
            f'<a href="../../files/{html.escape(f.name)}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">'
            f"{html.escape(f.name)}</a>\n" for f in files)
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    top = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project))
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{top}</body></html>\n")
    return root / "simple"


def npm_tarball(package_json: dict, files: dict[str, str]) -> bytes:
    """An npm package tarball: package.json and `files` under package/, gzip'd."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, text in {"package.json": json.dumps(package_json, indent=2), **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, MTIME
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npm_registry(root: Path, base_url: str, packages: list[tuple[dict, dict[str, str]]]) -> Path:
    """Packuments and tarballs under `root` for `packages` ((package.json, files) pairs), their tarball
    URLs under `base_url` (the URL `root` will be served at, ending in a slash)."""
    packuments: dict[str, dict] = {}
    for manifest, files in packages:
        name, version = manifest["name"], manifest["version"]
        data = npm_tarball(manifest, files)
        tarball = root / name / "-" / f"{name}-{version}.tgz"
        tarball.parent.mkdir(parents=True, exist_ok=True)
        tarball.write_bytes(data)
        packument = packuments.setdefault(name, {"name": name, "dist-tags": {}, "versions": {}})
        packument["versions"][version] = {
            **manifest,
            "dist": {"tarball": f"{base_url}{name}/-/{name}-{version}.tgz",
                     "shasum": hashlib.sha1(data).hexdigest(),
                     "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}}
        packument["dist-tags"]["latest"] = version
    for name, packument in packuments.items():
        # The packument sits beside the directory of the same name: served as the file `root/NAME`... which
        # cannot coexist with the directory `root/NAME/`, so it is NAME/index.html, what `GET /NAME/` serves;
        # the registry URL's handler answers `GET /NAME` with a redirect there (SimpleHTTPRequestHandler does).
        (root / name / "index.html").write_text(json.dumps(packument))
    return root
