"""Package managers in RUN, in every execution mode, as they behave under docker: apt (its download methods
sandboxed as the `_apt` user, and no warning docker does not print), pip and npm, each installing from a
package repository served on loopback (tests/support/debian_repo.py, package_indexes.py).

One Debian base (tests/support/debian_base.py: dash, coreutils, python3, apt, dpkg, Node.js and npm from this
machine, with `_apt` in /etc/passwd as Debian has it) and one Dockerfile are built in each mode:

  namespaces    root with CAP_SYS_ADMIN;
  proot-root    root, `--isolation proot`;
  proot-user    a uid with no subordinate ids (`setpriv --reuid`), `--isolation proot`;
  userns        a user with /etc/subuid and /etc/subgid ranges (user namespace, namespaces mode inside);
  podman-default, podman-restricted
                the same dockyard in a real podman container (tests/support/podman.py run_with_host_root: the host's
                own root filesystem as the container's), with docker's default profile (root without
                CAP_SYS_ADMIN and CAP_SYS_PTRACE: dockyard picks proot by itself) and with Kubernetes'
                "restricted" one (uid 1000, no capabilities, no_new_privs).

and the images are compared file by file with the namespaces mode's.

dnf is Debian's (4.14, with its Python bindings in the same base), installing an rpm made with rpmbuild from
a repository made with createrepo_c (tests/support/rpm_repo.py). Not tested: apk and microdnf, which Debian 12
does not have (`apt-cache policy apk-tools microdnf` knows neither), and whose binaries or an Alpine package
index cannot be had here without the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.helpers import write_context
from tests.support.debian_apt_base import APT_DIRECTORIES, APT_PACKAGES, APT_PASSWD
from tests.support.debian_base import PACKAGES, push_debian_python_base
from tests.support import podman
from tests.support.debian_repo import build_deb, cached_debs, make_repo, serve
from tests.support.images import GROUP
from tests.support.oci_files import image_files
from tests.support.rpm_repo import build_rpm, make_rpm_repo
from tests.support.package_indexes import npm_registry, pure_wheel, simple_index
from tests.support.users import open_directory, owned_directory, user_with_subordinate_ids
from tests.support.wheelhouse import build_wheelhouse

pytestmark = pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("dpkg-scanpackages", "node", "npm", "dnf", "rpmbuild", "createrepo_c")),
    reason="needs dpkg-dev, node, npm, dnf, rpm and createrepo-c: scripts/install.sh")

# dnf 4 from Debian with what it imports and reads (libraries come with their ELF files), and bash, which
# dnf runs as rpm-based images have it.
DNF_PACKAGES = ("dnf", "dnf-data", "python3-dnf", "python3-gpg", "python3-hawkey", "python3-libdnf",
                "python3-libcomps", "python3-rpm", "python3-distutils", "libmodulemd2", "python3-dbus", "rpm-common",
                "librpm9", "librpmio9", "libdnf2", "libdnf2-common", "librepo0", "libsolv1", "libsolvext1",
                "libcomps0", "bash")
APT_FILES = (("var/lib/dpkg/status", b"", 0o644), ("var/lib/dpkg/available", b"", 0o644),
             # What an rpm-based image's system-release package gives dnf: $releasever.
             ("etc/dnf/vars/releasever", b"1\n", 0o644))

# A package with what apt and dpkg must get right: files, a directory, and a postinst that chowns to a
# system user (as packages creating their service users do).
REAL_PACKAGE = "busybox-static"
DEMO_POSTINST = """#!/bin/sh
set -e
mkdir -p /var/lib/dockyard-demo
echo configured > /var/lib/dockyard-demo/state
chown _apt:nogroup /var/lib/dockyard-demo/state
"""
DOCKERFILE = """\
FROM {base}
ENV PIP_BREAK_SYSTEM_PACKAGES=1
RUN echo 'deb [trusted=yes] {url}debian/ ./' > /etc/apt/sources.list \\
 && apt-get update && apt-get install -y --no-install-recommends dockyard-demo {real} \\
 && cd /root && apt-get download dockyard-demo && rm -f /root/*.deb \\
 && rm -rf /var/lib/apt/lists/*_* /var/cache/apt/*.bin
COPY pip/ /opt/pip/
RUN python3 /opt/pip/{pip_wheel}/pip install --no-cache-dir --disable-pip-version-check \\
      --index-url {url}pypi/simple/ dockyard-greeting \\
 && python3 -c 'import dockyard_greeting; print(dockyard_greeting.GREETING)' \\
 && python3 -c 'import os; print("effective access:", \\
                                 os.access("/usr/share/dockyard-demo/hello", os.R_OK, effective_ids=True))'
RUN mkdir /app && cd /app && echo '{{"name": "app", "version": "1.0.0"}}' > package.json \\
 && npm install --registry {url}npm/ --no-audit --no-fund --no-update-notifier dockyard-left-pad \\
 && node -e 'console.log(require("dockyard-left-pad")("x", 3))' && rm -rf /root/.npm
RUN mkdir -p /etc/yum.repos.d \\
 && printf '[loop]\\nname=loop\\nbaseurl={url}rpm/\\ngpgcheck=0\\n' > /etc/yum.repos.d/loop.repo \\
 && dnf -y install dockyard-rpmdemo && dnf clean all && cat /usr/share/dockyard-rpmdemo/hello
"""


def _node_paths() -> tuple[str, ...]:
    """node and npm of this machine: NodeSource's npm lives in /usr/lib/node_modules/npm, Debian's npm in
    /usr/share/nodejs with its dependencies beside it."""
    npm_cli = os.path.realpath(shutil.which("npm"))
    npm_root = os.path.dirname(os.path.dirname(npm_cli))
    tree = "/usr/share/nodejs" if npm_root.startswith("/usr/share/nodejs/") else npm_root
    return (shutil.which("node"), shutil.which("npm"), tree)


def push_package_base(registry_host: str, workdir: Path) -> str:
    return push_debian_python_base(registry_host, workdir, PACKAGES + APT_PACKAGES + DNF_PACKAGES,
                                   tag="package-managers", passwd=APT_PASSWD, group=GROUP,
                                   directories=APT_DIRECTORIES, files=APT_FILES, host_paths=_node_paths())


@contextmanager
def served_indexes(root: Path) -> Iterator[str]:
    """The loopback server's base URL: debian/ (a flat repository), rpm/ (dnf's), pypi/ (a simple index), npm/
    (a registry)."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    debs = [build_deb(root / "debs", "dockyard-demo", "1.0", {
        "usr/share/dockyard-demo/hello": b"hello from a .deb\n",
        "usr/bin/dockyard-demo": (b"#!/bin/sh\ncat /usr/share/dockyard-demo/hello\n", 0o755),
    }, scripts={"postinst": DEMO_POSTINST})]
    # A package of Debian's own, as this machine's apt fetched it (scripts/install.sh makes sure of one).
    real = cached_debs((REAL_PACKAGE,))
    if real is None:
        pytest.skip(f"no {REAL_PACKAGE} .deb cached: run scripts/install.sh")
    make_repo(root / "debian", debs + real)
    make_rpm_repo(root / "rpm", [build_rpm(root / "rpms", "dockyard-rpmdemo", "1.0", {
        "/usr/share/dockyard-rpmdemo/hello": (b"hello from an rpm\n", 0o640)}, post_lua='print("post-install ran")')])
    simple_index(root / "pypi", [pure_wheel(root / "wheels", "dockyard-greeting", "1.0",
                                            {"dockyard_greeting.py": "GREETING = 'hello from a wheel'\n"})])
    with serve(root) as url:
        npm_registry(root / "npm", f"{url}npm/", [
            ({"name": "dockyard-left-pad", "version": "1.0.0", "main": "index.js"},
             {"index.js": "module.exports = (s, n) => s.padStart(n, '.');\n"})])
        yield url


def write_package_context(root: Path, base: str, url: str) -> Path:
    pip = build_wheelhouse(root / "pip", only=("pip",))
    (pip_wheel,) = [p.name for p in pip.iterdir()]
    return write_context(root, {"Dockerfile": DOCKERFILE.format(base=base, url=url, real=REAL_PACKAGE,
                                                                pip_wheel=pip_wheel)})


@pytest.fixture(scope="module")
def context(registry, tmp_path_factory) -> Iterator[Path]:
    base = push_package_base(registry.host, tmp_path_factory.mktemp("package-base"))
    with open_directory("dockyard-pkg-") as root, served_indexes(root / "indexes") as url:
        yield write_package_context(root / "ctx", base, url)


def _build_cmd(ctx: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache", *extra, "--output",
            f"type=oci,dest={out}", str(ctx)]


def _run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CI": "true", **(env or {})})


def _skip_unless_loadable_by(uid: int, gid: int) -> None:
    probe = _run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", sys.executable, "-c",
                  "import dockyard.cli"])
    if probe.returncode != 0:
        pytest.skip(f"uid {uid} cannot load dockyard from this checkout: {probe.stderr.strip()[-200:]}")


def _as_user(uid: int, gid: int, ctx: Path, extra: tuple[str, ...]) -> tuple[subprocess.CompletedProcess, dict]:
    _skip_unless_loadable_by(uid, gid)
    with open_directory("dockyard-pkg-user-") as shared:
        home = owned_directory(shared, "home", uid, gid)
        out = owned_directory(shared, "out", uid, gid)
        env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "DOCKYARD_WORK_DIR": str(home)}
        result = _run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                       *_build_cmd(ctx, out / "image", *extra)], env)
        return result, (image_files(out / "image") if result.returncode == 0 else {})


def _in_podman(ctx: Path, flags: tuple[str, ...], uid: int) -> tuple[subprocess.CompletedProcess, dict]:
    reason = podman.available()
    if reason is not None:
        pytest.skip(reason)
    _skip_unless_loadable_by(uid, uid)
    with open_directory("dockyard-pkg-podman-") as shared:
        home, out = owned_directory(shared, "home", uid, uid), owned_directory(shared, "out", uid, uid)
        env = {"CI": "true", "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "DOCKYARD_WORK_DIR": str(home)}
        repo = Path(__file__).resolve().parents[2]
        result = podman.Podman(shared / "podman").run_with_host_root(
            _build_cmd(ctx, out / "image"), flags=flags, env=env,
            binds=sorted({str(shared), str(ctx.parent), str(repo), sys.prefix}))
        return result, (image_files(out / "image") if result.returncode == 0 else {})


def _build(mode: str, ctx: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    if mode == "podman-default":
        return _in_podman(ctx, podman.DEFAULT_PROFILE, 0)
    if mode == "podman-restricted":
        return _in_podman(ctx, podman.RESTRICTED_PROFILE, 1000)
    if mode == "proot-user":
        return _as_user(1000, 1000, ctx, ("--isolation", "proot"))
    if mode == "userns":
        with user_with_subordinate_ids() as (uid, gid):
            return _as_user(uid, gid, ctx, ())
    result = _run(_build_cmd(ctx, out, *(("--isolation", "proot") if mode == "proot-root" else ())))
    return result, (image_files(out) if result.returncode == 0 else {})


MODE_LINES = {"namespaces": "isolation: namespaces", "proot-root": "isolation: proot (asked for",
              "proot-user": "isolation: proot (asked for", "userns": "isolation: namespaces (root of a user namespace",
              "podman-default": "isolation: proot (no mount namespace allowed",
              "podman-restricted": "isolation: proot (not root"}


@pytest.fixture(scope="module")
def reference(context, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """The namespaces mode's build (root with CAP_SYS_ADMIN, as docker builds): the image the others must equal."""
    return _build("namespaces", context, tmp_path_factory.mktemp("reference") / "image")


def _apt_notices(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(f" {kind}: " in f" {line}" for kind in ("W", "N", "E"))]


# Where the step is one uid for the kernel (proot's id emulation, in every proot run: proot never keeps
# CAP_SYS_PTRACE, see isolation/proot.py), apt's switch to _apt is emulated too and _apt can write wherever root
# can: the notice docker prints for a download into root's home does not come. Nothing else differs.
EMULATED_IDS = ("proot-root", "proot-user", "podman-default", "podman-restricted")
DOWNLOAD_NOTICE = ("Download is performed unsandboxed as root as file '/root/dockyard-demo_1.0_all.deb' couldn't be "
                   "accessed by user '_apt'")
# What differs between any two runs of the same build, under docker too: logs with times, byte-compiled files
# stamped with their source's mtime, npm's and pip's records of when. Their owners and modes are compared.
VOLATILE = ("var/log/", "var/cache/debconf/", "var/lib/dpkg/lock", "root/.rpmdb/", "var/lib/dnf/", "var/cache/dnf/")


def _comparable(files: dict) -> dict:
    return {name: (entry._replace(sha256=None) if name.startswith(VOLATILE) or name.endswith(".pyc") else entry)
            for name, entry in files.items()}


@pytest.mark.parametrize("mode", ["namespaces", "proot-root", "proot-user", "userns", "podman-default",
                                  "podman-restricted"])
def test_apt_pip_npm_and_dnf_install_from_loopback_as_under_docker(mode, context, reference, tmp_path):
    if mode == "namespaces":
        result, files = reference
    else:
        result, files = _build(mode, context, tmp_path / "image")
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stderr
    assert MODE_LINES[mode] in log
    # apt's methods ran as _apt and apt had nothing to warn of: `apt-get update` and `install` print no W: or
    # N: line. The one notice is docker's too, for `apt-get download` into root's 0700 home, which _apt cannot
    # write: a method that did not switch to _apt would not have printed it.
    notices = _apt_notices(log)
    if mode in EMULATED_IDS:
        assert notices == [], notices
    else:
        assert len(notices) == 1 and DOWNLOAD_NOTICE in notices[0], notices
    assert "hello from a wheel" in log and "..x" in log
    # glibc asks faccessat2 first, which proot 5.1 would let look at the host's file of that name (absent).
    assert "effective access: True" in log
    assert files["usr/bin/dockyard-demo"][1:4] == (oct(0o755), 0, 0)
    assert files["usr/bin/busybox"].kind == tarfile.REGTYPE
    assert files["var/lib/dockyard-demo/state"][2:4] == (42, 65534)  # the postinst's chown
    assert files["var/lib/apt/lists/partial"][1:4] == (oct(0o700), 42, 0)
    assert "app/node_modules/dockyard-left-pad/index.js" in files
    assert "usr/local/lib/python3.11/dist-packages/dockyard_greeting.py" in files
    assert "post-install ran" in log and "hello from an rpm" in log
    assert "not found" not in log and "Unable to detect release version" not in log
    assert files["usr/share/dockyard-rpmdemo/hello"][1:4] == (oct(0o640), 0, 0)
    if mode != "namespaces":
        ours, theirs = _comparable(files), _comparable(reference[1])
        different = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
        assert not different, different

