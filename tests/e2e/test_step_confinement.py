"""What a RUN step can reach of the builder and the CI job, and what it leaves running, in every execution mode.

The "job" is a shell holding a secret in its environment that starts dockyard (which inherits it), with a
docker config holding another secret in $DOCKER_CONFIG. The RUN tries every way through /proc and direct paths
and writes what it read into the image; the layers are read back and must not contain either secret. Modes:
namespaces (root), proot as root (--isolation proot), proot as uid 1000 (setpriv, no subordinate ids), proot
as root of a user namespace with one mapped id (`unshare -r`: setgroups denied), proot chosen by itself in a
container-like profile (no CAP_SYS_ADMIN), and a user with subordinate ids (namespaces in a user namespace).
Then command lines, and the processes a proot step leaves: ended when its command exits (or is killed), and
when the build is interrupted or killed.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import write_context
from tests.support.users import open_directory, owned_directory

JOB_SECRET = "job-secret-5f1c0a"
CONFIG_SECRET = "config-secret-9b27e4"
JOB_ENV = {**os.environ, "CI_REGISTRY_PASSWORD": JOB_SECRET}

SNOOP = r"""
RUN for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/[0-9]*/task/*/environ; do \
      cat "$f" 2>/dev/null | tr '\0' '\n'; done > /environ.txt; \
    for p in /proc/[0-9]*; do [ "$p" = /proc/$$ ] && continue; \
      for fd in "$p"/fd/*; do [ -f "$fd" ] && cat "$fd"; done 2>/dev/null; \
      cat "$p"/root{{{dirs}}}/config.json "$p"/cwd/config.json 2>/dev/null; \
      ls -la "$p"/root/ "$p"/cwd/ 2>/dev/null; done > /through-proc.txt; \
    cat {dirs_direct} 2>/dev/null > /direct.txt; \
    grep -c . /environ.txt /through-proc.txt; true
"""


def _layers_text(layout: Path, config: bool = True) -> bytes:
    """Every layer of the image in an OCI layout, decompressed and concatenated (and its config)."""
    index = json.loads((layout / "index.json").read_text())
    blob = lambda digest: (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    data = b""
    for layer in manifest["layers"]:
        raw = blob(layer["digest"])
        data += gzip.decompress(raw) if layer["mediaType"].endswith("gzip") else raw
    return data + (blob(manifest["config"]["digest"]) if config else b"")


def _job(docker_config: Path, out: Path, ctx: Path, isolation: str, wrap: list[str]) -> str:
    """The CI job's script: a shell with the secret in its environment, running dockyard (not exec'd, so the
    shell stays the builder's parent)."""
    build = [*wrap, sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache",
             "--isolation", isolation, "--output", f"type=oci,dest={out}", str(ctx)]
    # The secret comes in the shell's environment (a job's variables do), never on a command line.
    return (f"export CI_REGISTRY_PASSWORD DOCKER_CONFIG={shlex.quote(str(docker_config))} CI=true; "
            + " ".join(shlex.quote(a) for a in build) + "; echo exit=$?")


@pytest.fixture
def job_files(busybox_base):
    with open_directory("dockyard-confine-") as root:
        config_dir = owned_directory(root, "docker", 1000, 1000)
        (config_dir / "config.json").write_text(json.dumps({"auths": {"x": {"auth": CONFIG_SECRET}}}))
        os.chown(config_dir / "config.json", 1000, 1000)
        os.chmod(config_dir / "config.json", 0o600)
        dirs = [str(config_dir), "/root/.docker"]
        ctx = write_context(root / "ctx", {"Dockerfile": f"FROM {busybox_base}\n" + SNOOP.format(
            dirs=",".join(dirs), dirs_direct=" ".join(f"{d}/config.json" for d in dirs))})
        os.chmod(root / "ctx", 0o755)
        os.chmod(ctx / "Dockerfile", 0o644)
        out = owned_directory(root, "out", 1000, 1000)
        home = owned_directory(root, "home", 1000, 1000)
        yield config_dir, ctx, out, home


def _check(result: subprocess.CompletedProcess, out: Path) -> None:
    assert "exit=0" in result.stdout, result.stdout + result.stderr
    assert JOB_SECRET in result.stdout or True  # the job's own shell holds it; the image must not
    data = _layers_text(out / "image")
    assert b"/environ.txt" in data or b"environ.txt" in data  # the step ran and wrote its findings
    assert JOB_SECRET.encode() not in data
    assert CONFIG_SECRET.encode() not in data


@pytest.mark.parametrize("isolation", ["namespaces", "proot"])
def test_a_root_build_keeps_the_job_secrets_out_of_the_image(job_files, isolation):
    config_dir, ctx, out, _ = job_files
    result = subprocess.run(["sh", "-c", _job(config_dir, out / "image", ctx, isolation, [])],
                            capture_output=True, text=True, timeout=120, env=JOB_ENV)
    _check(result, out)
    assert f"isolation: {isolation}" in result.stderr


def test_an_unprivileged_build_keeps_the_job_secrets_out_of_the_image(job_files):
    config_dir, ctx, out, home = job_files
    probe = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", sys.executable, "-c",
                            "import dockyard.cli"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"uid 1000 cannot load dockyard: {probe.stderr.strip()[-200:]}")
    script = f"export HOME={home} XDG_CACHE_HOME={home}/cache DOCKYARD_WORK_DIR={home}; " + _job(
        config_dir, out / "image", ctx, "proot", [])
    result = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "sh", "-c", script],
                            capture_output=True, text=True, timeout=120, env=JOB_ENV)
    _check(result, out)
    assert "isolation: proot (asked for" in result.stderr


def test_where_setgroups_is_denied_run_steps_run_and_keep_the_secrets_out(job_files):
    config_dir, ctx, _, _ = job_files
    out = ctx.parent / "root-out"  # written by the namespace's root, which is this test's uid
    out.mkdir()
    result = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                             _job(config_dir, out / "image", ctx, "proot", [])],
                            capture_output=True, text=True, timeout=120, env=JOB_ENV)
    _check(result, out)
    assert "cannot start proot" not in result.stderr


def test_a_container_profile_build_keeps_the_job_secrets_out_of_the_image(job_files):
    """Root of a user namespace without CAP_SYS_ADMIN (a container's default profile, as the reference's recipe
    makes it): the proot mode, chosen by itself."""
    from tests.support.userns import run_as_namespace_root

    config_dir, ctx, _, _ = job_files
    out = ctx.parent / "root-out"
    out.mkdir()
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && capsh --drop=cap_sys_admin -- -c "
              + shlex.quote(_job(config_dir, out / "image", ctx, "auto", [])))
    result = run_as_namespace_root(["sh", "-c", script], env=JOB_ENV, timeout=120)
    _check(result, out)
    assert "isolation: proot (no mount namespace allowed" in result.stderr


def test_a_user_namespace_build_keeps_the_job_secrets_out_of_the_image(job_files):
    """A non-root user with subordinate ids: the build re-enters itself as root of a user namespace."""
    from tests.support.users import user_with_subordinate_ids

    config_dir, ctx, _, _ = job_files
    with user_with_subordinate_ids() as (uid, gid), open_directory("dockyard-confine-user-") as root:
        home, out = owned_directory(root, "home", uid, gid), owned_directory(root, "out", uid, gid)
        config = owned_directory(root, "docker", uid, gid)
        (config / "config.json").write_text((config_dir / "config.json").read_text())
        os.chown(config / "config.json", uid, gid)
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "unshare",
                                "--user", "--map-root-user", sys.executable, "-c", "import dockyard.cli"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"{sys.executable} cannot be run in a user namespace by a plain user")
        script = f"export HOME={home} XDG_CACHE_HOME={home}/cache DOCKYARD_WORK_DIR={home}; " + _job(
            config, out / "image", ctx, "auto", [])
        result = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sh", "-c",
                                 script], capture_output=True, text=True, timeout=120, env=JOB_ENV)
        _check(result, out)
    assert "isolation: namespaces (root of a user namespace" in result.stderr


def _sleeps(*durations: int) -> list[int]:
    """Pids of live `sleep SECONDS` processes for these durations (the tests pick ones no other process uses;
    a zombie has an empty command line)."""
    wanted = {f"sleep\0{seconds}\0".encode() for seconds in durations}
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if entry.isdigit() and cmdline.read() in wanted:
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _wait_until(condition, what: str, limit: float = 120) -> None:
    """Polls `condition` (a safety limit only: what is tested is the state reached, not how fast)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def _end(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_a_build_through_proot_ends_what_a_step_leaves_running(busybox_base, tmp_path):
    first = 700000 + os.getpid() % 100000
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {busybox_base}\n"
        f"RUN (sleep {first} &); setsid sleep {first + 1} & echo started\n"
        "RUN echo next\n")})
    try:
        result = subprocess.run([sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache",
                                 "--isolation", "proot", str(ctx)], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "CI": "true"})
        left = _sleeps(first, first + 1)
    finally:
        _end(_sleeps(first, first + 1))
    assert result.returncode == 0, result.stderr
    assert "started" in result.stderr and "next" in result.stderr
    assert left == []


def test_a_step_whose_command_is_killed_by_a_signal_ends_what_it_left(busybox_base, tmp_path):
    """No exit_group then: the command's pidfd tells the builder, which ends the rest as after an exit."""
    left = 750000 + os.getpid() % 100000
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {busybox_base}\nRUN (sleep {left} &); kill -KILL $$\n")})
    try:
        result = subprocess.run([sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache",
                                 "--isolation", "proot", str(ctx)], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "CI": "true"})
        remaining = _sleeps(left)
    finally:
        _end(_sleeps(left))
    assert result.returncode != 0 and "RUN exited with" in result.stderr, result.stderr
    assert remaining == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["KILL", "TERM", "INT"])
def test_a_killed_proot_build_leaves_no_step_process(busybox_base, tmp_path, sig):
    first = 800000 + os.getpid() % 100000 + 10 * int(sig)
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {busybox_base}\nRUN setsid sleep {first} & sleep {first + 1}\n")})
    build = subprocess.Popen([sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache",
                              "--isolation", "proot", str(ctx)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "CI": "true"})
    try:
        _wait_until(lambda: len(_sleeps(first, first + 1)) == 2, "the step's two processes")
        build.send_signal(sig)
        build.wait()
        # SIGINT and SIGTERM: the builder ends the step; SIGKILL: the reaper, once the builder's end of its pipe
        # has closed (a moment after the builder is gone, hence the wait).
        _wait_until(lambda: not _sleeps(first, first + 1), "the step's processes to end", limit=60)
    finally:
        build.kill()
        _end(_sleeps(first, first + 1))


@pytest.mark.parametrize("isolation", ["namespaces", "proot"])
def test_build_arg_and_secret_values_are_on_no_command_line_a_step_can_read(busybox_base, tmp_path, isolation):
    """Values given as `--build-arg NAME` (from the environment) and `--secret id=...,env=...` reach the step as
    environment and files, never as arguments of dockyard's processes: /proc/*/cmdline is world-readable. A
    value given on dockyard's own command line (`--build-arg NAME=VALUE`) is masked there (core/cmdline.py)."""
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {busybox_base}\nARG TOKEN\n"
        "RUN --mount=type=secret,id=pass for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done "
        "> /cmdlines.txt 2>/dev/null; test -s /run/secrets/pass && grep -c . /cmdlines.txt\n")})
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache",
                             "--isolation", isolation, "--build-arg", "TOKEN", "--secret", "id=pass,env=PASS",
                             "--build-arg", "INLINE=inline-value-5e21",
                             "--output", f"type=oci,dest={out}", str(ctx)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "CI": "true", "TOKEN": "arg-value-71c3",
                                              "PASS": "secret-value-0d9a"})
    assert result.returncode == 0, result.stderr
    # The layers only: the config's history names build args with their values (`ARG TOKEN=...`), as docker's
    # does; build args are not for secrets.
    data = _layers_text(out, config=False)
    assert b"cmdlines.txt" in data
    assert b"arg-value-71c3" not in data and b"secret-value-0d9a" not in data
    assert b"inline-value-5e21" not in data
    if isolation == "proot":  # the step saw dockyard's command line, masked
        assert b"INLINE=*****************" in data


def test_a_proot_step_of_an_image_without_proc_leaves_no_mount_points_in_its_layer(tmp_path):
    """FROM scratch has no /dev, /proc or /sys: proot binds them through its glue directory, never by making
    them in the root (a proot killed with the step's leftovers could not remove them again)."""
    import tarfile

    ctx = write_context(tmp_path / "ctx", {"Dockerfile": (
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", "
        "\"/bin/busybox sleep 60 & /bin/busybox ls /proc/self/ > /seen\"]\n")})
    shutil.copy("/usr/bin/busybox", ctx / "busybox")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "dockyard", "build", "--progress=plain", "--no-cache",
                             "--isolation", "proot", "--output", f"type=oci,dest={out}", str(ctx)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "CI": "true"})
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "index.json").read_text())
    blob = lambda digest: out / "blobs" / "sha256" / digest.split(":")[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    with tarfile.open(blob(manifest["layers"][-1]["digest"])) as layer:
        names = {m.name.strip("/").removeprefix("./") for m in layer}
    assert "seen" in names
    assert not names & {"proc", "dev", "sys"}, names
