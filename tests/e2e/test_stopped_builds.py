"""Builds stopped mid-RUN, as CI jobs are cancelled: SIGTERM and SIGINT end the build cleanly (its work
directory, mounts and step processes gone, exit status 128 + the signal's number); what a SIGKILL'ed build
leaves, the next build (or `dockyard cache prune`) removes, while a build running beside it keeps its own.

Real builds of the dockyard command, stopped once their RUN step's process (a `sleep` with a command line of
its own) is seen running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support.processes import processes_running as _processes_running
from tests.support.processes import wait_for as _wait_for
from tests.support.users import (
    open_directory,
    owned_directory,
    user_with_subordinate_ids,
)


def _work_dirs(parent: Path) -> set[Path]:
    return {p for p in parent.iterdir() if p.name.startswith("dockyard-")} if parent.exists() else set()


def _mounts_under(path: Path) -> set[str]:
    """Mount points below `path` in any process's mount namespace (a build's overlays are in its own)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/mountinfo") as f:
                    found.update(p for p in (line.split()[4] for line in f) if p.startswith(str(path) + "/"))
            except OSError:
                continue
    return found


class SleepingBuild:
    """A `dockyard build` whose RUN sleeps (a command line of its own), started and waited for until it runs."""

    def __init__(self, base: str, tmp_path: Path, work: Path, *extra: str, prefix: tuple[str, ...] = (),
                 env: dict | None = None):
        self.sleep = ["sleep", str(3000 + uuid.uuid4().int % 1000)]
        name = f"ctx-{self.sleep[1]}"
        context = write_context(tmp_path / name, {"Dockerfile": f"FROM {base}\nRUN echo started && "
                                                                f"{' '.join(self.sleep)}\n"})
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "dockyard", "build", "--progress=plain", "--work-dir", str(work),
             *extra, str(context)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "CI": "true", **(env or {})})
        if not _wait_for(lambda: self._running() or self.process.poll() is not None, timeout=60) or not self._running():
            self.process.kill()
            pytest.fail(f"the RUN step never started: {self.process.communicate()[1][-2000:]}")

    def _running(self) -> bool:
        return bool(_processes_running(self.sleep))

    def stop(self, signum: int) -> tuple[int, str]:
        """Sends `signum` to the builder alone (not its group); its exit status and stderr."""
        self.process.send_signal(signum)
        _, stderr = self.process.communicate(timeout=120)
        return self.process.returncode, stderr

    def step_gone(self) -> bool:
        return _wait_for(lambda: not self._running(), timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        for pid in _processes_running(self.sleep):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum,isolation", [(signal.SIGTERM, "auto"), (signal.SIGINT, "auto"),
                                              (signal.SIGTERM, "proot")],
                         ids=["SIGTERM", "SIGINT", "SIGTERM-proot"])
def test_a_signal_stops_the_build_and_cleans_up(busybox_base, tmp_path, signum, isolation):
    work = tmp_path / "work"
    build = SleepingBuild(busybox_base, tmp_path, work, f"--isolation={isolation}")
    try:
        assert len(_work_dirs(work)) == 1
        code, stderr = build.stop(signum)
        name = signal.Signals(signum).name
        assert code == 128 + signum, stderr
        assert f"error: stopped by {name}; the build was cancelled" in stderr
        assert "Traceback" not in stderr
        assert build.step_gone(), "the RUN step outlived its build"
        assert _work_dirs(work) == set()
        assert _mounts_under(work) == set()
    finally:
        build.close()


def test_the_next_build_removes_a_killed_build_s_work_dir_but_not_a_running_one_s(busybox_base, tmp_path):
    work = tmp_path / "work"
    running = SleepingBuild(busybox_base, tmp_path, work)
    killed = None
    try:
        (running_dir,) = _work_dirs(work)
        killed = SleepingBuild(busybox_base, tmp_path, work)
        (killed_dir,) = _work_dirs(work) - {running_dir}
        assert _mounts_under(killed_dir)  # the RUN's overlay, in the build's own mount namespace
        killed.process.kill()  # SIGKILL: nothing of dockyard's runs
        killed.process.wait()
        assert killed.step_gone(), "the RUN step outlived its killed build"
        assert killed_dir.is_dir()  # left behind ...
        # ... without mounts: the build's overlays were in its own mount namespace, which died with it.
        assert _wait_for(lambda: not _mounts_under(killed_dir), timeout=30), _mounts_under(killed_dir)

        context = write_context(tmp_path / "quick", {"Dockerfile": f"FROM {busybox_base}\nRUN true\n"})
        result = dockyard("build", "--progress=plain", "--work-dir", str(work), str(context))
        assert result.returncode == 0, result.stderr
        assert f"removed the work directories of 1 stopped build(s) from {work}" in result.stderr
        assert _work_dirs(work) == {running_dir}
        assert running.process.poll() is None and running._running()

        code, stderr = running.stop(signal.SIGTERM)
        assert code == 143, stderr
        assert _work_dirs(work) == set()
    finally:
        running.close()
        if killed is not None:
            killed.close()


def test_cache_prune_removes_a_killed_build_s_work_dir(busybox_base, tmp_path):
    work = tmp_path / "work"
    killed = SleepingBuild(busybox_base, tmp_path, work)
    try:
        killed.process.kill()
        killed.process.wait()
        assert killed.step_gone()
        assert len(_work_dirs(work)) == 1
        result = dockyard("cache", "prune", "--older-than", "30d", "--work-dir", str(work))
        assert result.returncode == 0, result.stderr
        assert f"removed 1 work directories of stopped builds from {work}" in result.stdout
        assert _work_dirs(work) == set()
        again = dockyard("cache", "prune", "--older-than", "30d", "--work-dir", str(work))
        assert f"removed 0 work directories of stopped builds from {work}" in again.stdout
    finally:
        killed.close()


def test_a_user_namespace_build_is_stopped_through_its_parent(busybox_base):
    """A user with subordinate ids builds in a child re-executed in a user namespace; SIGTERM to the command the
    CI job started reaches that child, which cleans up as root of its namespace (its files belong to the
    user's subordinate ids)."""
    with user_with_subordinate_ids() as (uid, gid), open_directory("dockyard-stop-") as shared:
        as_user = ("setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups")
        probe = subprocess.run([*as_user, "unshare", "--user", "--map-root-user", sys.executable, "-c",
                                "import dockyard.cli"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"{sys.executable} cannot be run in a user namespace by a plain user: "
                        f"{probe.stderr.strip()[-200:]}")
        home = owned_directory(shared, "home", uid, gid)
        work = home / "work"
        build = SleepingBuild(busybox_base, shared, work, prefix=as_user,
                              env={"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache")})
        try:
            assert len(_work_dirs(work)) == 1
            code, stderr = build.stop(signal.SIGTERM)
            assert code == 143, stderr
            assert "isolation: namespaces (root of a user namespace" in stderr
            assert "error: stopped by SIGTERM; the build was cancelled" in stderr
            assert build.step_gone(), "the RUN step outlived its build"
            assert _work_dirs(work) == set()
        finally:
            build.close()
