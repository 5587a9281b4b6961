"""`dockyard doctor` reports what detection found and the mode a build would use, in the real environments
of tests/e2e/test_execution_modes.py: privileged root, root without CAP_SYS_ADMIN, and a plain user; and which
platforms RUN steps can run for, and how (natively, QEMU through binfmt_misc or proot, or not at all)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.e2e.helpers import dockyard
from tests.support.userns import run_as_namespace_root

ROWS = ("user", "CAP_SYS_ADMIN", "mount namespace", "overlayfs", "user namespaces", "subordinate ids",
        "newuidmap/newgidmap", "seccomp", "proot")


def _row(report: str, name: str) -> str:
    return next(line.strip() for line in report.splitlines() if line.strip().startswith(name + "  "))


def test_doctor_as_privileged_root_picks_namespaces():
    result = dockyard("doctor")
    assert result.returncode == 0, result.stderr
    for name in ROWS:
        _row(result.stdout, name)
    assert "yes" in _row(result.stdout, "CAP_SYS_ADMIN")
    assert "allowed" in _row(result.stdout, "mount namespace")
    assert "mode: namespaces (root with CAP_SYS_ADMIN and overlayfs)" in result.stdout


def test_doctor_without_cap_sys_admin_picks_proot_and_says_why():
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && capsh --drop=cap_sys_admin -- -c "
              f"'{sys.executable} -m dockyard doctor'")
    result = run_as_namespace_root(["sh", "-c", script], timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no" == _row(result.stdout, "CAP_SYS_ADMIN").split()[1]
    assert "refused" in _row(result.stdout, "mount namespace")
    assert "refused (max_user_namespaces=0)" in _row(result.stdout, "user namespaces")
    assert "uid 0 (root), in a user namespace" in _row(result.stdout, "user")
    assert "mode: proot (no mount namespace allowed (no CAP_SYS_ADMIN))" in result.stdout
    assert "RUN runs through proot" in result.stdout


def test_doctor_as_a_plain_user_without_proot_reports_that_no_mode_works(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    os.symlink(shutil.which("setpriv"), tools / "setpriv")
    result = dockyard("doctor", user=65534, cwd=tools, env={"PATH": str(tools)})
    assert result.returncode == 8, result.stderr
    assert "uid 65534 (not root)" in _row(result.stdout, "user")
    assert "missing" in _row(result.stdout, "proot")
    assert "mode: none: RUN cannot be isolated here" in result.stdout
    assert "hint: install Debian's proot package" in result.stdout


def test_doctor_says_what_a_denied_setgroups_and_landlock_mean():
    """`unshare -r`: root of a user namespace with one mapped id, where setgroups is denied."""
    result = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-m", "dockyard", "doctor",
                             "--isolation", "proot"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "setgroups").split()[1] == "denied"
    assert "RUN steps run without their user's" in result.stdout
    landlock = _row(result.stdout, "Landlock")
    if "ABI" in landlock:
        assert "a Landlock domain keeps each step out of the builder's and the job's processes" in result.stdout
    if _row(result.stdout, "seccomp user notification").split()[3] == "works":
        assert "when a step's command exits, the processes it left are killed" in result.stdout


def _platform_row(report: str, platform: str) -> str:
    return next(line.strip() for line in report.splitlines() if line.strip().startswith(platform + "  "))


def test_doctor_lists_the_platforms_and_how_each_runs():
    """As root: the host's platforms natively; arm64 through binfmt_misc (registered, or registered by a build)."""
    result = dockyard("doctor")
    assert result.returncode == 0, result.stderr
    assert "platforms (how RUN steps for each run in the namespaces mode):" in result.stdout
    host = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(os.uname().machine)
    if host is None:
        pytest.skip("the rows below are written for x86-64 and 64-bit ARM hosts")
    assert _platform_row(result.stdout, host).split()[1] == "native"
    foreign = "linux/s390x"
    row = _platform_row(result.stdout, foreign)
    assert row.startswith(f"{foreign}  ") and "QEMU through binfmt_misc: qemu-s390x " in row
    assert ("registered (" in row) or ("not registered yet; the build registers Debian's definition" in row)


def test_doctor_says_which_platforms_cannot_run_and_what_to_do(tmp_path):
    """In the proot mode, with no emulator where dockyard looks (DOCKYARD_QEMU_DIR)."""
    empty = tmp_path / "no-qemu"
    empty.mkdir()
    result = dockyard("doctor", "--isolation", "proot", env={"DOCKYARD_QEMU_DIR": str(empty)})
    assert result.returncode == 0, result.stderr
    assert "platforms (how RUN steps for each run in the proot mode):" in result.stdout
    foreign = "linux/arm64" if os.uname().machine != "aarch64" else "linux/s390x"
    lines = result.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith(foreign + "  "))
    assert "unavailable: no QEMU emulator qemu-" in lines[row] and f"in {empty} (DOCKYARD_QEMU_DIR)" in lines[row]
    assert lines[row + 1].strip().startswith("hint: install QEMU's user-mode emulators (apt-get install "
                                             "qemu-user-static)")
    with_qemu = dockyard("doctor", "--isolation", "proot")
    if shutil.which("qemu-s390x-static"):
        assert "QEMU through proot -q " in _platform_row(with_qemu.stdout, "linux/s390x")
