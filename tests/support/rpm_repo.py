"""An rpm package repository (what dnf and microdnf read), made here with Debian's rpm (rpmbuild) and
createrepo-c; tests/support/debian_repo.py's `serve` puts it on loopback.

``build_rpm(directory, name, version, files, post_lua=...) -> Path`` makes a noarch package of `files` (image
path -> (content, mode)), owned by root; its %post scriptlet, if any, is Lua, which rpm runs itself, so that the
package needs no /bin/sh from the image's rpm database (a Debian base has none). ``make_rpm_repo(directory,
rpms) -> Path`` copies the packages and writes repodata/ with createrepo_c: a `baseurl` for a .repo file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Mapping

SPEC = """\
Name: {name}
Version: {version}
Release: 1
Summary: made by dockyard's tests
License: MIT
BuildArch: noarch
AutoReqProv: no
%description
made by dockyard's tests
%install
{install}
%files
{files}
"""


def available() -> str | None:
    """Why rpm packages cannot be made here (a missing program), or None."""
    for program in ("rpmbuild", "createrepo_c"):
        if shutil.which(program) is None:
            return f"{program} is not installed (scripts/install.sh installs rpm and createrepo-c)"
    return None


def build_rpm(directory: Path, name: str, version: str, files: Mapping[str, tuple[bytes, int]], *,
              post_lua: str = "") -> Path:
    top = directory / f"{name}-rpmbuild"
    sources = top / "SOURCES"
    sources.mkdir(parents=True, exist_ok=True)
    install, listed = [], []
    for index, (path, (content, mode)) in enumerate(files.items()):
        (sources / f"file{index}").write_bytes(content)
        install.append(f"install -D -m {mode:o} %{{_sourcedir}}/file{index} %{{buildroot}}{path}")
        listed.append(f"%attr({mode:o}, root, root) {path}")
    spec = SPEC.format(name=name, version=version, install="\n".join(install), files="\n".join(listed))
    if post_lua:
        spec += f"%post -p <lua>\n{post_lua}\n"
    (top / f"{name}.spec").write_text(spec)
    subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "-bb", str(top / f"{name}.spec")], check=True,
                   capture_output=True)
    (rpm,) = (top / "RPMS" / "noarch").glob(f"{name}-{version}-1.noarch.rpm")
    target = directory / rpm.name
    shutil.copyfile(rpm, target)
    shutil.rmtree(top)
    return target


def make_rpm_repo(directory: Path, rpms: list[Path]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rpm in rpms:
        shutil.copyfile(rpm, directory / rpm.name)
    subprocess.run(["createrepo_c", "--quiet", str(directory)], check=True, capture_output=True)
    return directory
