"""isolation/emulation.py: reading binfmt_misc entries and Debian's definitions, telling which entry serves which
CPU (as the kernel does: masked ELF header bytes), how each platform runs in each mode, the preflight's errors;
the builder's platforms that RUN; proot's command line for a foreign step. Debian's own definitions (the
qemu-user-static package) are read where these tests compare against them; entries of the machine's
binfmt_misc are never read here (their text is given), nor registered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.builder import run_platforms
from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.errors import IsolationError
from dockyard.events import Events, Message
from dockyard.image.model import Platform
from dockyard.isolation import emulation
from dockyard.isolation.proot import ProotRunner
from dockyard.isolation.runner import RunSpec
from dockyard.plan import make_plan

AARCH64 = emulation.CPUS["arm64"]
# What the kernel shows for Debian's qemu-aarch64 entry (/proc/sys/fs/binfmt_misc/qemu-aarch64).
PROC_ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


class Recorder(Events):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def emit(self, event) -> None:
        if isinstance(event, Message):
            self.messages.append(event.text)


def debian(cpu: emulation.Cpu) -> emulation.Definition:
    definition = emulation.debian_definition(cpu)
    if definition is None:
        pytest.skip(f"Debian's binfmt definition of qemu-{cpu.qemu} is not installed (qemu-user-static)")
    return definition


def test_a_proc_entry_is_read_and_serves_exactly_its_cpu():
    entry = emulation.parse_entry("qemu-aarch64", PROC_ENTRY)
    assert entry is not None
    assert (entry.enabled, entry.interpreter, entry.flags, entry.offset) == (
        True, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "POF", 0)
    assert entry.magic[:4] == b"\x7fELF" and len(entry.mask) == len(entry.magic) == 20
    assert [arch for arch, cpu in emulation.CPUS.items() if entry.matches(cpu)] == ["arm64"]
    assert emulation.parse_entry("jar", "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n") is None


def test_debian_definitions_each_serve_their_own_cpu_only():
    for arch, cpu in emulation.CPUS.items():
        if emulation.native(Platform("linux", arch)) is not None:
            continue  # Debian ships no definition for the host's own CPUs
        definition = debian(cpu)
        assert definition.name == f"qemu-{cpu.qemu}"
        entry = emulation.BinfmtEntry(definition.name, True, definition.interpreter, definition.flags,
                                      definition.offset, definition.magic, definition.mask)
        assert [a for a, c in emulation.CPUS.items() if entry.matches(c)] == [arch], arch


def test_the_two_debian_formats_agree_and_the_register_line_round_trips():
    conf = debian(AARCH64)
    shared = Path(emulation.BINFMTS, "qemu-aarch64")
    if not shared.exists():
        pytest.skip("no /usr/share/binfmts/qemu-aarch64")
    other = emulation.parse_binfmts("qemu-aarch64", shared.read_text())
    assert other is not None
    assert (other.magic, other.mask, other.interpreter) == (conf.magic, conf.mask, conf.interpreter)
    assert sorted(other.flags) == sorted(conf.flags) and "F" in conf.flags
    line = conf.register_line()
    assert line.startswith(b":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02") and line.endswith(b":" + conf.flags.encode())
    assert emulation.parse_register_line(line.decode()) == conf


def test_the_serving_entry_is_an_enabled_one_preferably_with_f():
    proc = emulation.parse_entry("qemu-aarch64", PROC_ENTRY)
    assert proc is not None
    without_f = proc._replace(name="old", flags="P")
    disabled = proc._replace(name="off", enabled=False)
    assert emulation.serving_entry(AARCH64, [without_f, proc]) == proc
    assert emulation.serving_entry(AARCH64, [disabled]) is None
    assert emulation.serving_entry(emulation.CPUS["arm"], [proc]) is None


def test_native_platforms_follow_the_host_cpu():
    host = emulation.host_architecture()
    assert emulation.native(Platform("linux", host)) == "native"
    assert not emulation.is_foreign(None) and not emulation.is_foreign(f"linux/{host}")
    foreign = "s390x" if host != "s390x" else "arm64"
    assert emulation.is_foreign(f"linux/{foreign}")
    if host == "amd64":
        assert emulation.native(Platform("linux", "386")) is not None
        assert emulation.is_foreign("linux/arm64") and emulation.is_foreign("linux/arm/v7")


@pytest.fixture
def qemu_dir(tmp_path, monkeypatch):
    """DOCKYARD_QEMU_DIR: a directory with one (fake) emulator, qemu-aarch64-static."""
    directory = tmp_path / "qemu"
    directory.mkdir()
    program = directory / "qemu-aarch64-static"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv(emulation.QEMU_DIR_VARIABLE, str(directory))
    return directory


def test_proot_mode_runs_what_qemu_is_found_for(qemu_dir):
    if emulation.host_architecture() not in ("amd64", "386"):
        pytest.skip("the platforms below are foreign on x86 hosts")
    arm64 = emulation.emulation(Platform.parse("linux/arm64"), "proot")
    assert (arm64.how, arm64.qemu) == ("proot", str(qemu_dir / "qemu-aarch64-static"))
    riscv = emulation.emulation(Platform.parse("linux/riscv64"), "proot")
    assert riscv.how == "none" and not riscv.runs
    assert f"no QEMU emulator qemu-riscv64-static in {qemu_dir}" in riscv.detail
    assert "apt-get install qemu-user-static" in riscv.hint and "dockyard manifest create" in riscv.hint
    unknown = emulation.emulation(Platform.parse("linux/sparc64"), "proot")
    assert unknown.how == "none" and "knows no emulator for the sparc64 CPU" in unknown.detail
    windows = emulation.emulation(Platform.parse("windows/amd64"), "proot")
    assert windows.how == "none" and "Linux programs only, not windows ones" in windows.detail
    assert emulation.qemu_for("linux/arm64") == str(qemu_dir / "qemu-aarch64-static")
    assert emulation.qemu_for(f"linux/{emulation.host_architecture()}") is None


def test_namespaces_mode_uses_a_registered_entry_with_f_only(qemu_dir):
    if emulation.host_architecture() != "amd64":
        pytest.skip("linux/arm64 is foreign on amd64 hosts")
    platform = Platform.parse("linux/arm64")
    proc = emulation.parse_entry("qemu-aarch64", PROC_ENTRY)
    assert proc is not None
    found = emulation.emulation(platform, "namespaces", [proc], "not root")
    assert found.how == "binfmt" and "qemu-aarch64 registered" in found.detail
    lacking = emulation.emulation(platform, "namespaces", [proc._replace(flags="P")], "not root")
    assert lacking.how == "none" and "lacks the F flag" in lacking.detail and "tonistiigi/binfmt" in lacking.hint
    off = emulation.emulation(platform, "namespaces", [proc._replace(enabled=False)], "not root")
    assert off.how == "none" and "disabled" in off.detail
    unregistered = emulation.emulation(platform, "namespaces", [], "not root")
    assert unregistered.how == "none" and "may not register one (not root)" in unregistered.detail
    assert "--isolation=proot" in unregistered.hint and "CAP_SYS_ADMIN" in unregistered.hint
    unmounted = emulation.emulation(platform, "namespaces", None, "not root")
    assert unmounted.how == "none" and "binfmt_misc is not mounted" in unmounted.detail
    assert "mount -t binfmt_misc" in unmounted.hint


def test_root_may_register_debians_definition_with_f(qemu_dir, monkeypatch):
    if emulation.host_architecture() != "amd64":
        pytest.skip("linux/arm64 is foreign on amd64 hosts")
    definition = debian(AARCH64)
    found = emulation.emulation(Platform.parse("linux/arm64"), "namespaces", [], None)
    assert found.how == "register" and found.definition is not None
    # The emulator found (DOCKYARD_QEMU_DIR) is not Debian's interpreter: it is registered itself, flag F only
    # (Debian's P flag belongs to its interpreter's name), with Debian's magic and mask.
    assert found.definition == definition._replace(interpreter=str(qemu_dir / "qemu-aarch64-static"), flags="F")
    monkeypatch.delenv(emulation.QEMU_DIR_VARIABLE)
    if emulation.qemu_program(AARCH64) is None:
        pytest.skip("qemu-aarch64-static is not installed")
    as_debian = emulation.emulation(Platform.parse("linux/arm64"), "namespaces", [], None)
    assert as_debian.definition == definition  # Debian's line as it is: it already has F


def test_the_preflight_names_the_platform_and_the_fix_before_anything_else(qemu_dir):
    if emulation.host_architecture() != "amd64":
        pytest.skip("the platforms below are foreign on amd64 hosts")
    events = Recorder()
    emulation.require_emulation({Platform.parse("linux/amd64"), Platform.parse("linux/386")}, "proot",
                                events=events)
    assert events.messages == []  # native platforms need nothing, and say nothing
    emulation.require_emulation({Platform.parse("linux/arm64")}, "proot", events=events)
    assert events.messages == [f"emulation: RUN steps for linux/arm64 run through QEMU (proot -q "
                               f"{qemu_dir / 'qemu-aarch64-static'})"]
    with pytest.raises(IsolationError) as caught:
        emulation.require_emulation({Platform.parse("linux/arm64"), Platform.parse("linux/arm/v7")}, "proot",
                                    events=events)
    error = caught.value
    assert error.exit_code == 8
    assert error.render().startswith("RUN steps for linux/arm/v7 need an emulator of that CPU, and none can run "
                                     "here: no QEMU emulator qemu-arm-static in ")
    assert "hint: install QEMU's user-mode emulators (apt-get install qemu-user-static)" in error.render()


def test_the_platforms_that_run_something():
    arm, amd = Platform("linux", "arm", "v7"), Platform("linux", "amd64")
    text = ("FROM --platform=linux/amd64 busybox AS tools\nRUN make\n"
            "FROM tools AS more\nRUN more\n"
            "FROM busybox AS target\nCOPY --from=more /x /x\n"
            "FROM target\nRUN uname -m\n")
    plan = make_plan(parse_dockerfile(text, "Dockerfile"), None, {}, set(), platform=arm, build_platform=amd)
    assert run_platforms(plan, arm) == {amd, arm}
    only_copy = make_plan(parse_dockerfile("FROM busybox\nCOPY a /a\n", "Dockerfile"), None, {}, set(),
                          platform=arm, build_platform=amd)
    assert run_platforms(only_copy, arm) == frozenset()


def test_proot_runs_a_foreign_step_through_qemu(qemu_dir, tmp_path):
    if emulation.host_architecture() != "amd64":
        pytest.skip("linux/arm64 is foreign on amd64 hosts")
    runner = ProotRunner("/usr/bin/proot")
    spec = RunSpec(rootfs=str(tmp_path), argv=("/bin/sh", "-c", "true"), env=(), platform="linux/arm64")
    argv = runner.command(spec, str(tmp_path))
    assert argv[argv.index("-q") + 1] == str(qemu_dir / "qemu-aarch64-static")
    assert argv[-3:] == ["/bin/sh", "-c", "true"]
    for native in (None, "linux/amd64"):
        assert "-q" not in runner.command(spec.__class__(**{**spec.__dict__, "platform": native}), str(tmp_path))
    os.unlink(qemu_dir / "qemu-aarch64-static")
    with pytest.raises(IsolationError, match="RUN for linux/arm64 needs QEMU's emulator"):
        runner.command(spec, str(tmp_path))
