"""A RUN step cannot change the host or read it, and runs with docker's capabilities and nothing more."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support.processes import processes_running as _processes_running
from tests.support.processes import wait_for as _wait_for
from tests.support.users import open_directory, owned_directory

DOCKER_DEFAULT_CAPS = "00000000a80425fb"  # moby's default set: CHOWN, DAC_OVERRIDE, ..., SETFCAP


def _output(stderr: str, step: int = 2) -> str:
    """The RUN's own output lines from --progress=plain (not the step header, which echoes the script)."""
    prefix = f"#{step} "
    lines = [line.split(prefix, 1)[1] for line in stderr.splitlines() if prefix in line]
    return "\n".join(line for line in lines if not line.startswith("[") and not line.startswith("DONE"))


def _build(base: str, tmp_path: Path, script: str):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base}\nRUN {script}\n"})
    return dockyard("build", "--progress=plain", str(context))


def test_run_cannot_write_or_read_the_host(busybox_base, tmp_path):
    marker = f"dockyard-escape-{uuid.uuid4().hex}"
    secret = tmp_path / "host-secret.txt"
    secret.write_text("top secret\n")
    script = " ; ".join([
        f"touch /{marker}",  # lands in the image root, never the host's /
        f"cat {secret} && echo READ-HOST-FILE || echo no-host-file",
        "ls /proc/1/root/ >/dev/null; cat /proc/1/root/etc/hostname >/dev/null 2>&1",
        "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED || echo mount-denied",
        "mknod /tmp/disk b 254 0 2>/dev/null; head -c1 /tmp/disk >/dev/null 2>&1 && echo READ-DISK || echo disk-denied",
        "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo WROTE-SYSCTL || echo sysctl-denied",
        "touch /sys/kernel/x 2>/dev/null && echo WROTE-SYS || echo sys-denied",
        "echo 'nameserver 6.6.6.6' > /etc/resolv.conf 2>/dev/null && echo WROTE-RESOLV || echo resolv-denied",
        "grep CapBnd /proc/self/status",
        "ls /proc | grep -c '^[0-9]'",
        "ls /proc/self/fd | tr '\\n' ' '",
    ])
    resolv_before = Path("/etc/resolv.conf").read_bytes() if Path("/etc/resolv.conf").exists() else None
    result = _build(busybox_base, tmp_path, script)
    assert result.returncode == 0, result.stderr
    log = _output(result.stderr)
    assert not os.path.exists(f"/{marker}")
    for denied in ("no-host-file", "mount-denied", "disk-denied", "sysctl-denied", "sys-denied", "resolv-denied"):
        assert denied in log, (denied, log)
    for escaped in ("READ-HOST-FILE", "MOUNTED", "READ-DISK", "WROTE-SYSCTL", "WROTE-SYS", "WROTE-RESOLV"):
        assert escaped not in log
    assert f"CapBnd:\t{DOCKER_DEFAULT_CAPS}" in log
    if resolv_before is not None:
        assert Path("/etc/resolv.conf").read_bytes() == resolv_before


def test_run_sees_only_its_own_processes_and_fds(busybox_base, tmp_path):
    result = _build(busybox_base, tmp_path, "echo pid=$$; ls /proc/self/fd | tr '\\n' ' '; echo; hostname")
    assert result.returncode == 0, result.stderr
    lines = _output(result.stderr).splitlines()
    assert lines[0] == "pid=1"  # pid namespace: the step is pid 1
    # 0-2, plus the one `ls` opens itself to read the directory: nothing inherited from dockyard.
    assert lines[1].split() == ["0", "1", "2", "3"]
    assert lines[2] == "dockyard"


def _as_nobody(busybox_base: str, env: dict | None = None):
    """Build `RUN id -u` as uid 65534 (no /etc/subuid range: the proot mode); the build's result."""
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                            "-c", "import dockyard.cli"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot load dockyard from this interpreter/checkout: {probe.stderr.strip()[-200:]}")
    with open_directory("dockyard-nobody-") as shared:
        context = write_context(shared / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN id -u\n"})
        home = owned_directory(shared, "home", 65534, 65534)
        return dockyard("build", "--progress=plain", str(context), user=65534,
                        env={"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "DOCKYARD_WORK_DIR": str(home),
                             **(env or {})})


def test_an_unprivileged_user_builds_through_proot(busybox_base):
    result = _as_nobody(busybox_base)
    assert result.returncode == 0, result.stderr
    assert "isolation: proot (not root" in result.stderr
    assert _output(result.stderr).splitlines()[-1] == "0"  # the step's user is the image's root


def test_an_unprivileged_user_without_proot_or_subordinate_ids_gets_a_clear_error(busybox_base, tmp_path):
    """No mount namespace, no user namespace to re-enter, no proot: nothing can isolate RUN, so say so."""
    tools = tmp_path / "bin"  # the tools dockyard itself runs, without proot
    tools.mkdir()
    os.chmod(tmp_path, 0o755)
    for tool in ("setpriv", "newuidmap", "newgidmap", "unshare"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), tools / tool)
    result = _as_nobody(busybox_base, env={"PATH": str(tools)})
    assert result.returncode == 8, result.stderr
    assert "Traceback" not in result.stderr
    assert "RUN cannot be isolated here" in result.stderr and "proot" in result.stderr
    assert "/etc/subuid" in result.stderr  # the hint names both ways out


def test_a_missing_command_is_a_setup_error_naming_it(busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f'FROM {busybox_base}\nRUN ["/no/such/tool", "x"]\n'})
    result = dockyard("build", "--progress=plain", str(context))
    assert result.returncode == 5, result.stderr
    assert "Dockerfile:2: RUN could not start: /no/such/tool: no such file or directory in the image" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_killed_builder_takes_its_step_and_the_step_s_children_along(busybox_base, tmp_path):
    """The step runs in a child of the builder: if the builder is killed outright (a CI job cancelled), the
    step and what it started in the background must not live on, holding the build's mounts."""
    seconds = 3000 + uuid.uuid4().int % 1000  # a unique command line to find the processes by
    sleep = ["sleep", str(seconds)]
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN {' '.join(sleep)} & "
                                                             f"{' '.join(sleep)}\n"})
    builder = subprocess.Popen([sys.executable, "-m", "dockyard", "build", "--progress=plain", str(context)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: len(_processes_running(sleep)) == 2), "the step never started"
        builder.kill()
        builder.wait()
        assert _wait_for(lambda: not _processes_running(sleep), timeout=5), _processes_running(sleep)
    finally:
        builder.kill()
        builder.wait()
        for pid in _processes_running(sleep):
            os.kill(pid, signal.SIGKILL)


def test_a_root_builder_in_the_proot_mode_runs_a_user_s_step_as_that_user(busybox_base, tmp_path):
    # Root without CAP_SYS_ADMIN (a container's default profile) builds through proot and runs a USER step's proot
    # as that user, who must reach the step's root inside the build's work directory.
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nUSER app\n"
                                                             "RUN id -u > /tmp/uid && cat /tmp/uid\n"})
    result = dockyard("build", "--progress=plain", "--isolation", "proot", str(context))
    assert result.returncode == 0, result.stderr
    assert _output(result.stderr, 3).strip() == "1000"
