"""RUN through proot (ptrace-based; Debian's `proot` package), for environments that allow no mount and no
unshare: a docker container's default profile, or a non-root user without user namespaces.

proot intercepts the step's system calls and translates paths, so the step sees the directory root as `/`
with the host's /dev, /proc and /sys and the RUN --mount sources bound in, without any privilege. What it does
not give: process, network and IPC isolation (the step shares the builder's; `--network=none` is refused),
and real ownership for a non-root builder: with `-0` the step believes it is root, and its chown/mknod are
answered by proot_supervisor.py, which records in the image what the host cannot do (it also answers the
statx calls Debian's proot 5.1 does not translate).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from typing import Callable

from ..errors import IsolationError
from ..rootfs.ownership import active_ledger
from . import RunResult, RunSpec
from .proot_supervisor import ProotSupervisor

HOST_PATHS = ("/dev", "/proc", "/sys")
CAP_SYS_PTRACE = 19


class ProotRunner:
    name = "proot"

    def __init__(self, proot: str | None = None, tail_lines: int = 20):
        self._proot = proot or shutil.which("proot")
        self._tail_lines = tail_lines

    def command(self, spec: RunSpec, scratch: str) -> list[str]:
        """proot's command line for `spec`; tmpfs mounts become empty directories under `scratch`."""
        if self._proot is None:
            raise IsolationError("RUN needs proot in this environment, and it is not installed",
                                 hint="install Debian's proot package (apt-get install proot)")
        argv = [self._proot, "-r", spec.rootfs, "-w", spec.cwd or "/"]
        for path in HOST_PATHS:
            argv += ["-b", path]
        for index, m in enumerate(spec.mounts):
            source = m.source
            if m.kind == "tmpfs":
                source = os.path.join(scratch, f"tmpfs{index}")
                os.mkdir(source, 0o1777)
            argv += ["-b", f"{source}:{m.target}"]
        if os.geteuid() != 0 or not can_trace_other_ids():
            # The host user cannot become another (or, see can_trace_other_ids, must not): proot makes the
            # step see the image user's ids instead, and answers its setuid calls itself.
            argv += ["-0"] if spec.uid == 0 else ["-i", f"{spec.uid}:{spec.gid}"]
        return argv + list(spec.argv)

    def run(self, spec: RunSpec, on_line: Callable[[str], None]) -> RunResult:
        if spec.network == "none":
            raise IsolationError("RUN --network=none needs a network namespace, which this environment does not "
                                 "allow (dockyard runs RUN through proot here)",
                                 hint="remove --network=none, or build where user namespaces or CAP_SYS_ADMIN "
                                      "are available (`dockyard doctor` shows what this one allows)")
        scratch = tempfile.mkdtemp(prefix="dockyard-proot-")
        os.chmod(scratch, 0o1777)  # proot writes its own files here, as whichever user the step runs as
        supervisor = _supervisor(spec)
        env = {**dict(spec.env), "PROOT_TMP_DIR": scratch}
        if supervisor is not None:
            env["PROOT_NO_SECCOMP"] = "1"  # proot's ptrace stop must come first: it translates the paths
        tail: deque[str] = deque(maxlen=self._tail_lines)
        try:
            argv = self.command(spec, scratch)
            as_root = os.geteuid() == 0
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
                # As root, switch to the step's user for real: its files then get their true owner.
                user=spec.uid if as_root else None, group=spec.gid if as_root else None,
                extra_groups=list(spec.groups) if as_root else None,
                preexec_fn=supervisor.listener.install if supervisor is not None else None)
            try:
                if supervisor is not None:
                    _start(supervisor, tail, on_line)
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    tail.append(line)
                    on_line(line)
                code = process.wait()
            except BaseException:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise
            finally:
                if supervisor is not None:
                    supervisor.stop()
            if supervisor is not None:
                _report(supervisor, tail, on_line)
        except OSError as exc:
            raise IsolationError(f"cannot start proot for the RUN step: {exc}") from None
        finally:
            if supervisor is not None:
                supervisor.listener.close()  # also when proot never started
            shutil.rmtree(scratch, ignore_errors=True)
        return RunResult(128 - code if code < 0 else code, tuple(tail))


def can_trace_other_ids() -> bool:
    """Whether proot, run by this root builder, can still trace a step that switches to another uid.

    A process that changes its uids becomes non-dumpable, and the kernel then lets its tracer read and write
    its memory only with CAP_SYS_PTRACE (ptrace_access_vm). proot needs both for every path it translates, so
    without that capability (a container's default profile: docker and podman drop it) each system call the
    step makes after, e.g., apt's download methods switch to `_apt` fails with EFAULT, and `apt-get update`
    waited forever for a method that could not work. Without it, the step's id changes are left to proot's
    emulation (-0), as for a builder that is not root: the step stays one uid for the kernel."""
    try:
        with open("/proc/self/status") as status:
            effective = next((int(line.split()[1], 16) for line in status if line.startswith("CapEff:")), 0)
    except OSError:
        return False
    return bool(effective >> CAP_SYS_PTRACE & 1)


def _supervisor(spec: RunSpec) -> ProotSupervisor | None:
    """What answers the calls proot gets wrong (proot_supervisor.py); for a builder that is not root, also
    RUN's chown and mknod, into the build's ownership ledger."""
    ledger = active_ledger() if os.geteuid() != 0 else None
    try:
        return ProotSupervisor(spec.rootfs, ledger, spec.uid, spec.gid, tuple(spec.groups))
    except OSError:
        return None  # an architecture without a filter: the step runs as under proot alone


def _start(supervisor: ProotSupervisor, tail: deque[str], on_line: Callable[[str], None]) -> None:
    try:
        supervisor.start()
    except OSError as exc:
        lost = ", and the owners RUN's chown sets stay the step user's in the image" \
            if supervisor.records_ownership else ""
        _say(f"seccomp user notification is refused here ({exc.strerror}): statx, faccessat2 and clone3 are "
             f"not redirected to calls proot translates (coreutils' ls -l and stat fail, so may npm){lost}",
             tail, on_line)


def _report(supervisor: ProotSupervisor, tail: deque[str], on_line: Callable[[str], None]) -> None:
    if supervisor.failure:
        _say(supervisor.failure, tail, on_line)
    names = supervisor.ambiguous_names() if supervisor.host_id_chowns else []
    if names:
        _say(f"RUN chown to the builder's own uid or gid ({os.geteuid()}:{os.getegid()}) cannot be told from "
             f"chown to root here and was recorded as the step user's; the image names it: {', '.join(names)}. "
             "Run dockyard as another uid, or with user namespaces (`dockyard doctor`)", tail, on_line)


def _say(text: str, tail: deque[str], on_line: Callable[[str], None]) -> None:
    line = f"dockyard: {text}"
    tail.append(line)
    on_line(line)
