"""RUN for another CPU, for real: `dockyard build --platform linux/arm64` (and linux/arm/v7) FROM busybox
images made of Debian's own busybox-static of that architecture (tests/support/foreign_images.py), whose RUN
records `uname -m` and a file listing. The step runs through QEMU: binfmt_misc in the namespaces mode (root,
and a user with subordinate ids in a user namespace), `proot -q` in the proot mode (root, and a plain uid).
The image is read back from its OCI layout; buildah (`--platform`) is the oracle for the files the RUN made.

binfmt_misc entries are global to the machine: `emulators` registers what the tests need as dockyard does
(Debian's definitions, F flag), uses entries already there, and never removes any.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support import oracle
from tests.support.binfmt import ensure_registered
from tests.support.foreign_images import FOREIGN_PLATFORMS, UNAME_MACHINE, push_foreign_busybox_base
from tests.support.users import open_directory, owned_directory, user_with_subordinate_ids

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN mkdir /out && uname -m > /out/machine && ls /home /opt/old > /out/listing \\
 && busybox --help 2>&1 | head -1 | cut -d' ' -f1 > /out/busybox && echo made > /out/made && chown 1000:50 /out/made
"""
ARM64, ARMV7 = "linux/arm64", "linux/arm/v7"
EXPECTED_LISTING = "/home:\napp\n\n/opt/old:\na.txt\nb.txt\n"


@pytest.fixture(scope="module")
def emulators():
    """binfmt_misc entries for arm64 and arm, registered as dockyard registers them (or already there)."""
    why = ensure_registered(tuple(FOREIGN_PLATFORMS))
    if why is not None:
        pytest.skip(f"QEMU cannot be registered in binfmt_misc here: {why}")


@pytest.fixture(scope="module")
def bases(registry, tmp_path_factory) -> dict[str, str]:
    workdir = tmp_path_factory.mktemp("foreign-bases")
    return {platform: push_foreign_busybox_base(registry.host, workdir, platform) for platform in FOREIGN_PLATFORMS}


@pytest.fixture(scope="module")
def context(bases):
    with open_directory("dockyard-emulation-") as root:
        yield write_context(root / "ctx", {"Dockerfile": DOCKERFILE})


def _read_layout(layout: Path) -> tuple[dict, dict[str, tuple[tarfile.TarInfo, bytes]]]:
    """(config, path -> (entry, content)) of the one image in an OCI layout, its layers applied in order."""
    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    files: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data) if layer["mediaType"].endswith("gzip")
                                             else data)) as tar:
            for member in tar:
                name = "/" + member.name.strip("/").removeprefix("./")
                content = tar.extractfile(member).read() if member.isreg() else b""
                files[name] = (member, content)
    return config, files


def _build(context: Path, base: str, platform: str, out: Path, *extra: str, user: int | None = None,
           env: dict | None = None):
    return dockyard("build", "--progress=plain", "--no-cache", "--platform", platform, "--build-arg",
                    f"BASE={base}", "--output", f"type=oci,dest={out}", *extra, str(context), user=user, env=env)


def _check(platform: str, out: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """The image at `out` is `platform`'s, and its RUN ran on that CPU."""
    config, files = _read_layout(out)
    arch, *variant = platform.split("/")[1:]
    assert (config["os"], config["architecture"], config.get("variant")) == ("linux", arch, (variant or [None])[0])
    assert files["/out/machine"][1].decode() == UNAME_MACHINE[platform] + "\n"
    assert files["/out/listing"][1].decode() == EXPECTED_LISTING
    assert files["/out/busybox"][1].decode() == "BusyBox\n"
    assert (files["/out/made"][0].uid, files["/out/made"][0].gid) == (1000, 50)
    # Nothing of the emulation reaches the layer: no QEMU, nor proot's view of the host.
    made = {name for name in files if not name.startswith(("/bin", "/etc/", "/home", "/opt", "/usr", "/var"))}
    assert not [name for name in made if "qemu" in name or "host-rootfs" in name or "ld.so.preload" in name], made
    return files


@pytest.mark.parametrize("platform", [ARM64, ARMV7])
def test_namespaces_mode_runs_a_foreign_step_through_binfmt_misc(emulators, context, bases, platform, tmp_path):
    result = _build(context, bases[platform], platform, tmp_path / "image")
    assert result.returncode == 0, result.stderr
    assert "isolation: namespaces" in result.stderr
    assert f"emulation: RUN steps for {platform} run through QEMU (binfmt_misc:" in result.stderr
    _check(platform, tmp_path / "image")


@pytest.mark.parametrize("platform", [ARM64, ARMV7])
def test_proot_mode_as_root_runs_a_foreign_step_through_proot_q(context, bases, platform, tmp_path):
    result = _build(context, bases[platform], platform, tmp_path / "image", "--isolation", "proot")
    assert result.returncode == 0, result.stderr
    assert "isolation: proot" in result.stderr
    qemu = f"qemu-{FOREIGN_PLATFORMS[platform][1]}-static"
    assert f"emulation: RUN steps for {platform} run through QEMU (proot -q /usr/bin/{qemu})" in result.stderr
    assert "proot error" not in result.stderr  # (proot's notes about its glue directory are not the step's)
    _check(platform, tmp_path / "image")


def test_proot_mode_runs_qemu_from_where_dockyard_qemu_dir_says(context, bases, tmp_path):
    """An emulator outside /usr (a container's mounted directory): the Landlock domain lets QEMU be mapped there."""
    qemu_dir = tmp_path / "emulators"
    qemu_dir.mkdir()
    shutil.copy2("/usr/bin/qemu-aarch64-static", qemu_dir)
    result = _build(context, bases[ARM64], ARM64, tmp_path / "image", "--isolation", "proot",
                    env={"DOCKYARD_QEMU_DIR": str(qemu_dir)})
    assert result.returncode == 0, result.stderr
    assert f"run through QEMU (proot -q {qemu_dir}/qemu-aarch64-static)" in result.stderr
    _check(ARM64, tmp_path / "image")


def test_proot_mode_ends_what_a_foreign_step_left_running(bases, tmp_path):
    """proot_supervisor.py sees QEMU's exit_group for the step's command and ends the processes it left (here a
    sleep that would hold the build for 777 s, past the helper's timeout)."""
    context_dir = write_context(tmp_path / "ctx", {"Dockerfile": "ARG BASE\nFROM ${BASE}\n"
                                                                 "RUN (sleep 777 &) ; uname -m > /machine\n"})
    result = _build(context_dir, bases[ARM64], ARM64, tmp_path / "image", "--isolation", "proot")
    assert result.returncode == 0, result.stderr
    assert _read_layout(tmp_path / "image")[1]["/machine"][1] == b"aarch64\n"


def _probe_user(uid: int, gid: int) -> None:
    probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", sys.executable, "-c",
                            "import dockyard.cli"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"uid {uid} cannot load dockyard: {probe.stderr.strip()[-200:]}")


@pytest.mark.parametrize("platform", [ARM64, ARMV7])
def test_proot_mode_as_a_plain_user_runs_a_foreign_step(context, bases, platform):
    _probe_user(1000, 1000)
    with open_directory("dockyard-emulation-user-") as shared:
        home = owned_directory(shared, "home", 1000, 1000)
        out = owned_directory(shared, "out", 1000, 1000)
        env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "DOCKYARD_WORK_DIR": str(home)}
        result = _build(context, bases[platform], platform, out / "image", "--isolation", "proot", user=1000,
                        env=env)
        assert result.returncode == 0, result.stderr
        assert "isolation: proot (asked for" in result.stderr and "proot error" not in result.stderr
        files = _check(platform, out / "image")
    # RUN's chown is recorded for a plain user too (proot_supervisor.py sees QEMU's calls as proot translates them).
    assert (files["/out/made"][0].uid, files["/out/made"][0].gid) == (1000, 50)


def test_a_user_with_subordinate_ids_runs_a_foreign_step_in_a_user_namespace(emulators, context, bases):
    with user_with_subordinate_ids() as (uid, gid):
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "unshare", "--user",
                                "--map-root-user", sys.executable, "-c", "import dockyard.cli"],
                               capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            pytest.skip(f"{sys.executable} cannot be run in a user namespace by a plain user")
        with open_directory("dockyard-emulation-userns-") as shared:
            home = owned_directory(shared, "home", uid, gid)
            out = owned_directory(shared, "out", uid, gid)
            env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "DOCKYARD_WORK_DIR": str(home)}
            result = _build(context, bases[ARM64], ARM64, out / "image", user=uid, env=env)
            assert result.returncode == 0, result.stderr
            assert "isolation: namespaces (root of a user namespace" in result.stderr
            assert f"emulation: RUN steps for {ARM64} run through QEMU (binfmt_misc:" in result.stderr
            _check(ARM64, out / "image")
            dockyard("cache", "prune", "--all", user=uid, env=env)


def test_a_missing_emulator_stops_the_build_before_any_step(context, bases, tmp_path):
    empty = tmp_path / "no-qemu"
    empty.mkdir()
    result = _build(context, bases[ARM64], ARM64, tmp_path / "image", "--isolation", "proot",
                    env={"DOCKYARD_QEMU_DIR": str(empty)})
    assert result.returncode == 8, result.stderr
    assert f"error: RUN steps for {ARM64} need an emulator of that CPU" in result.stderr
    assert f"no QEMU emulator qemu-aarch64-static in {empty}" in result.stderr
    assert "hint: install QEMU's user-mode emulators (apt-get install qemu-user-static)" in result.stderr
    assert "FROM" not in result.stderr and "RUN" not in result.stderr.replace("RUN steps", "")  # no step began
    assert not (tmp_path / "image").exists()


def test_root_registers_debians_definition_with_f_and_says_so():
    """What a root build does for a CPU no entry serves: Debian's definition into binfmt_misc (global to the
    machine; an entry already there, from an earlier run, is used as it is and the build says so instead)."""
    from dockyard.events import Events, Message
    from dockyard.image.model import Platform
    from dockyard.isolation import emulation

    if emulation.may_register() is not None:
        pytest.skip(f"this process may not register binfmt_misc entries: {emulation.may_register()}")
    platform = Platform.parse("linux/riscv64")
    definition = emulation.debian_definition(emulation.CPUS["riscv64"])
    if definition is None or emulation.qemu_program(emulation.CPUS["riscv64"]) is None:
        pytest.skip("qemu-user-static's riscv64 emulator and definition are not installed")
    before = emulation.emulation(platform, "namespaces").how
    messages: list[str] = []
    events = Events(lambda event: messages.append(event.text) if isinstance(event, Message) else None)
    emulation.require_emulation([platform], "namespaces", events=events)
    entry = Path(emulation.BINFMT_DIR, "qemu-riscv64").read_text()
    assert "enabled" in entry.splitlines() and f"interpreter {definition.interpreter}" in entry
    assert "F" in next(line for line in entry.splitlines() if line.startswith("flags:"))
    assert emulation.emulation(platform, "namespaces").how == "binfmt"
    if before == "register":
        assert len(messages) == 1 and messages[0].startswith(
            f"emulation: registered qemu-riscv64 in binfmt_misc for linux/riscv64 ({definition.interpreter}, flags ")
        assert messages[0].endswith("): RUN steps for linux/riscv64 run through QEMU")
    else:
        assert messages[0].startswith("emulation: RUN steps for linux/riscv64 run through QEMU (binfmt_misc: ")


def test_namespaces_mode_without_an_emulator_to_register_stops_the_build(context, bases, tmp_path):
    """A CPU no entry serves yet, whose emulator is not found (DOCKYARD_QEMU_DIR): nothing to register."""
    from dockyard.image.model import Platform
    from dockyard.isolation import emulation

    candidates = [p for p in ("linux/riscv64", "linux/s390x", "linux/ppc64le", "linux/mips64le")
                  if emulation.emulation(Platform.parse(p), "namespaces").how != "binfmt"]
    if not candidates:
        pytest.skip("every candidate platform is already registered in this machine's binfmt_misc")
    platform = candidates[0]
    empty = tmp_path / "no-qemu"
    empty.mkdir()
    context_dir = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nRUN true\n"})
    result = dockyard("build", "--platform", platform, "--output", f"type=oci,dest={tmp_path / 'image'}",
                      str(context_dir), env={"DOCKYARD_QEMU_DIR": str(empty)})
    assert result.returncode == 8, result.stderr
    assert f"RUN steps for {platform} need an emulator of that CPU" in result.stderr
    assert "apt-get install qemu-user-static" in result.stderr
    assert emulation.emulation(Platform.parse(platform), "namespaces").how != "binfmt"  # nothing registered


def test_a_program_the_kernel_cannot_start_in_a_foreign_step_says_what_it_needs(emulators, bases, tmp_path):
    """The namespaces mode's exec of a program no binfmt_misc entry serves (here: not a program at all)."""
    context_dir = write_context(tmp_path / "ctx", {"Dockerfile": 'ARG BASE\nFROM ${BASE}\nCOPY notelf /notelf\n'
                                                                 'RUN ["/notelf"]\n', "notelf": "not a program\n"})
    (context_dir / "notelf").chmod(0o755)
    result = _build(context_dir, bases[ARM64], ARM64, tmp_path / "image")
    assert result.returncode == 5, result.stderr
    assert "cannot run /notelf: Exec format error (a linux/arm64 program needs QEMU registered in binfmt_misc" \
        in result.stderr


@pytest.mark.slow
def test_same_run_results_as_buildah(emulators, registry, context, bases, tmp_path):
    result = _build(context, bases[ARM64], ARM64, tmp_path / "image")
    assert result.returncode == 0, result.stderr
    ours = _check(ARM64, tmp_path / "image")
    theirs_ref = f"{registry.host}/emulation/buildah-arm64:1"
    oracle.buildah_build(context, context / "Dockerfile", theirs_ref, tmp_path / "buildah",
                         build_args={"BASE": bases[ARM64]}, extra_args=["--platform", ARM64])
    assert oracle.inspect(theirs_ref)["architecture"] == "arm64"
    theirs_root = oracle.unpack(oracle.fetch_oci(theirs_ref, tmp_path / "theirs-oci"), tmp_path / "theirs-bundle")
    for name in ("machine", "listing", "busybox", "made"):
        assert (theirs_root / "out" / name).read_bytes() == ours[f"/out/{name}"][1], name
    made = os.stat(theirs_root / "out" / "made")
    assert (made.st_uid, made.st_gid) == (ours["/out/made"][0].uid, ours["/out/made"][0].gid)
