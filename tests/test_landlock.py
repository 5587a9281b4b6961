"""The Landlock domain proot steps run in (core/isolation/landlock.py), against the real kernel: a child that
entered it reads and writes what it was granted and nothing else, and cannot reach its parent through /proc
nor signal it; proot's embedded loaders are found in its file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from dockyard.isolation import landlock
from dockyard.isolation import proot as proot_runner

CHILD = textwrap.dedent("""
    import os, signal, sys
    granted, other, parent = sys.argv[1], sys.argv[2], int(sys.argv[3])  # "parent": a process outside
    def attempt(name, call):
        try:
            call()
            print(name, "allowed")
        except OSError as exc:
            print(name, "refused", exc.errno)
    attempt("write granted", lambda: open(os.path.join(granted, "new"), "w").write("x"))
    attempt("read granted", lambda: open(os.path.join(granted, "given")).read())
    attempt("read other", lambda: open(os.path.join(other, "secret")).read())
    attempt("read other through /proc", lambda: open(f"/proc/{parent}/root{other}/secret").read())
    attempt("parent environ", lambda: open(f"/proc/{parent}/environ", "rb").read())
    attempt("parent fd", lambda: os.readlink(f"/proc/{parent}/fd/0"))
    attempt("parent cwd", lambda: os.listdir(f"/proc/{parent}/cwd"))
    attempt("signal parent", lambda: os.kill(parent, 0))
""")


@pytest.fixture
def domain_dirs(tmp_path):
    if isinstance(landlock.abi(), str):
        pytest.skip(str(landlock.abi()))
    granted, other = tmp_path / "granted", tmp_path / "other"
    granted.mkdir()
    other.mkdir()
    (granted / "given").write_text("given\n")
    (other / "secret").write_text("secret\n")
    return granted, other


def _without_capabilities():
    import ctypes

    libc = ctypes.CDLL(None)
    for cap in range(64):  # as proot.py leaves a root step: without CAP_SYS_PTRACE (here without any), so that
        libc.prctl(24, cap, 0, 0, 0)  # only Landlock stands between it and a process of the same uid


def _attempts(granted, other, domain: landlock.Domain | None) -> dict[str, str]:
    """What a child (inside `domain`, or outside any) may do to a process outside it with its uid and
    capabilities, and to the two directories."""
    outside = subprocess.Popen(["sleep", "60"], preexec_fn=_without_capabilities, cwd=str(other))

    def enter():
        _without_capabilities()
        if domain is not None:
            import ctypes

            ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # no_new_privs
            domain.enter()

    try:
        result = subprocess.run([sys.executable, "-S", "-c", CHILD, str(granted), str(other), str(outside.pid)],
                                capture_output=True, text=True, preexec_fn=enter, timeout=60)
    finally:
        outside.kill()
        outside.wait()
    assert result.returncode == 0, result.stderr
    return {line.rsplit(" ", 1)[0] if line.endswith("allowed") else line.split(" refused")[0]:
            "allowed" if line.endswith("allowed") else "refused" for line in result.stdout.splitlines()}


def test_a_child_in_the_domain_reaches_only_what_it_was_granted(domain_dirs):
    granted, other = domain_dirs
    domain = landlock.Domain([landlock.Grant(str(granted), landlock.EVERYTHING),
                              *(landlock.Grant(path, landlock.READ) for path in ("/usr", "/lib", "/lib64", "/etc")),
                              landlock.Grant(os.path.dirname(os.path.realpath(sys.executable)), landlock.RUN_FROM),
                              landlock.Grant(sys.prefix, landlock.READ), landlock.Grant("/proc", landlock.READ)])
    try:
        confined = _attempts(granted, other, domain)
    finally:
        domain.close()
    free = _attempts(granted, other, None)
    assert confined["write granted"] == "allowed" and confined["read granted"] == "allowed"
    assert (granted / "new").read_text() == "x"
    # Each refusal is the domain's: the same child outside it is allowed.
    for attempt in ("read other", "read other through /proc", "parent environ", "parent fd", "parent cwd"):
        assert (confined[attempt], free[attempt]) == ("refused", "allowed"), attempt
    if domain.scoped:
        assert (confined["signal parent"], free["signal parent"]) == ("refused", "allowed")


def test_proots_loaders_are_found_in_its_file():
    proot = shutil.which("proot")
    if proot is None:
        pytest.skip("proot is not installed")
    loaders = proot_runner.embedded_loaders(proot)
    assert set(loaders) <= {"PROOT_LOADER", "PROOT_LOADER_32"}
    for program in loaders.values():
        assert program.startswith(b"\x7fELF")
    with open(proot, "rb") as f:
        data = f.read()
    # Each is a whole ELF file: found where it is, and its length ends inside proot's.
    for program in loaders.values():
        assert data.find(program) > 0


def test_kill_groups_leaves_a_group_whose_leader_proot_does_not_trace():
    from dockyard.isolation.proot_supervisor import kill_groups

    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        kill_groups(os.getpid(), [other.pid])  # "traced by" this test process: it is not
        assert other.poll() is None
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
