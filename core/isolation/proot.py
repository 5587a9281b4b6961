"""RUN through proot (ptrace-based; Debian's `proot` package), for environments that allow no mount and no
unshare: a docker container's default profile, or a non-root user without user namespaces.

proot intercepts the step's system calls and translates paths, so the step sees the directory root as `/`
with the host's /dev, /proc and /sys and the RUN --mount sources bound in, without any privilege. proot and the
step run in a Landlock domain (landlock.py: no access to other processes' /proc entries nor to files outside
the step's own), a root step with docker's capabilities only, and the step's processes end when its command
exits (proot_supervisor.py, lifecycle.py). What it does not give: pid, network and IPC namespaces (the step
shares the builder's; `--network=none` is refused),
and real ownership for a non-root builder: with `-0` the step believes it is root, and its chown/mknod are
answered by proot_supervisor.py, which records in the image what the host cannot do (it also answers the
statx calls Debian's proot 5.1 does not translate).

A step of a foreign platform (RunSpec.platform: linux/arm64 on an x86-64 machine) runs through proot's own QEMU
support, `proot -q qemu-ARCH-static` (emulation.py finds it): proot starts each foreign program of the step
through QEMU, whose system calls are the host's, so proot translates their paths and the supervisor's filter
sees them as for a native step; the Landlock domain lets QEMU's program be read and mapped.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import shutil
import struct
import subprocess
import tempfile
from collections import deque
from typing import Callable

from ..errors import IsolationError
from ..rootfs.ownership import active_ledger
from . import emulation, ids, landlock, lifecycle, sandbox
from .proot_supervisor import ProotSupervisor, kill_groups
from .runner import RunResult, RunSpec

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
_libc = ctypes.CDLL(None, use_errno=True)

HOST_PATHS = ("/dev", "/proc", "/sys")
# With -q, proot binds the host's / at /host-rootfs and /dev/null at /etc/ld.so.preload (for host programs run
# beside QEMU's). The step's root has neither, and proot's "glue" for missing mount points is hard-coded under
# /tmp, which the Landlock domain keeps closed: it says so, and goes on with both bindings working, unlisted.
# What QEMU needs works without them (a static emulator, exec'd by proot from the host's path), and the step
# sees no host path it may open; these lines of proot's are therefore not the step's output.
GLUE_ERRORS = frozenset({"proot error: can't create temporary directory: Permission denied",
                         "proot error: can't create glue rootfs"})


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
        qemu = _emulator(spec)
        if qemu is not None:
            # proot starts each of the step's foreign programs through QEMU (its host programs as they are).
            argv += ["-q", qemu]
        for path in HOST_PATHS:
            argv += ["-b", path]
        for index, m in enumerate(spec.mounts):
            source = m.source
            if m.kind == "tmpfs":
                source = os.path.join(scratch, f"tmpfs{index}")
                os.mkdir(source, 0o1777)
            argv += ["-b", f"{source}:{m.target}"]
        # proot emulates the step's own id changes (setuid, apt's switch to `_apt`); _switches_ids says which ids
        # it starts with. A step that switched uids for real would become non-dumpable, and proot, which never
        # keeps CAP_SYS_PTRACE (a container's default profile drops it, and so does dockyard for a root
        # builder's steps), could then no longer read or write its memory: every path it translates after the
        # switch fails with EFAULT, and `apt-get update` waited forever for a download method that could not work.
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
        # proot 5.1 makes a missing mount point (/proc in a FROM scratch image) in the step's root, and removes
        # it when it exits; a proot killed with the step's leftover processes cannot, and the directory would
        # reach the layer. Not polluting the root, it resolves them through its "glue" directory in /tmp alone.
        env = {**dict(spec.env), "PROOT_TMP_DIR": scratch, "PROOT_DONT_POLLUTE_ROOTFS": "1"}
        if supervisor is not None:
            env["PROOT_NO_SECCOMP"] = "1"  # proot's ptrace stop must come first: it translates the paths
        tail: deque[str] = deque(maxlen=self._tail_lines)

        def say(line: str) -> None:  # (ids.notice_once adds "dockyard: ")
            tail.append(line)
            on_line(line)

        domain = None
        try:
            argv = self.command(spec, scratch)
            emulated = _emulator(spec) is not None
            domain = _domain(spec, scratch, self._proot, say)
            if self._proot:
                env.update(_loaders(self._proot, scratch))
            real_ids = _switches_ids(spec)
            set_groups = real_ids and ids.setgroups_allowed()
            if real_ids and spec.groups and not set_groups:
                ids.notice_once(ids.GROUPS_SKIPPED, say)
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
                # As root, switch to the step's user for real: its files then get their true owner.
                user=spec.uid if real_ids else None, group=spec.gid if real_ids else None,
                extra_groups=list(spec.groups) if set_groups else None,
                preexec_fn=_child_setup(domain, supervisor, _capabilities_to_drop()))
            lifecycle.watch(process.pid, process.pid)
            try:
                if supervisor is not None:
                    _start(supervisor, process.pid, tail, on_line)
                assert process.stdout is not None
                quiet = GLUE_ERRORS if emulated else frozenset()
                for raw in process.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line in quiet:
                        continue
                    tail.append(line)
                    on_line(line)
                code = process.wait()
            except BaseException:
                _end(process.pid, supervisor)
                process.wait()
                raise
            finally:
                if supervisor is not None:
                    supervisor.stop()
                    for group in supervisor.groups:
                        lifecycle.unwatch(group, process.pid)
                lifecycle.unwatch(process.pid, process.pid)
                _remove_proot_files(process.pid)
            if supervisor is not None:
                if supervisor.exit_status is not None:
                    code = supervisor.exit_status  # proot was killed with the processes the command left
                _report(supervisor, tail, on_line)
        except OSError as exc:
            raise IsolationError(f"cannot start proot for the RUN step: {exc}") from None
        except subprocess.SubprocessError as exc:  # raised by _child_setup, in the child
            raise IsolationError(f"cannot start proot for the RUN step: {exc.__cause__ or exc}") from None
        finally:
            if supervisor is not None:
                supervisor.listener.close()  # also when proot never started
            if domain is not None:
                domain.close()
            shutil.rmtree(scratch, ignore_errors=True)
        return RunResult(128 - code if code < 0 else code, tuple(tail))


def _emulator(spec: RunSpec) -> str | None:
    """The QEMU program a step of a foreign platform runs through, None for a native one; IsolationError if it
    is missing (the build's preflight, emulation.require_emulation, has said so before any step)."""
    if not emulation.is_foreign(spec.platform):
        return None
    qemu = emulation.qemu_for(spec.platform)
    if qemu is None:
        raise IsolationError(f"RUN for {spec.platform} needs QEMU's emulator of that CPU, and it is not installed",
                             hint="install it (apt-get install qemu-user-static); `dockyard doctor` lists the "
                                  "platforms this machine can run")
    return qemu


def _switches_ids(spec: RunSpec) -> bool:
    """A root builder runs the step as its user for real, where the user namespace has the user's ids; otherwise
    (a non-root builder, or a user namespace with one mapped id) proot shows the step the ids it expects."""
    return os.geteuid() == 0 and ids.mapped(spec.uid, spec.gid)


def _capabilities_to_drop() -> list[int]:
    """For a root builder: every capability outside docker's default set (CAP_SYS_ADMIN, CAP_SYS_PTRACE, ...), as
    the namespaces mode drops them. Also what keeps a root step out of the builder's /proc entries: the kernel
    refuses them to a process whose capabilities are not a superset of the target's, and CAP_SYS_PTRACE would
    take a step past Landlock's check for /proc/PID/environ. (A step switched to another user has none left;
    the drops then fail, harmlessly.)"""
    if os.geteuid() != 0:
        return []
    keep = set(sandbox.DEFAULT_CAPS.values())
    return [cap for cap in range(sandbox.last_capability() + 1) if cap not in keep]


def _domain(spec: RunSpec, scratch: str, proot: str | None, say: Callable[[str], None]) -> landlock.Domain | None:
    """The Landlock domain the step and proot run in (landlock.py says what it keeps out), or None where the
    kernel has none; then the step can read what every process of the builder's uid can, and the log says so
    once."""
    version = landlock.abi()
    if isinstance(version, str):
        _unconfined(version, say)
        return None
    everything, data = landlock.EVERYTHING, landlock.EVERYTHING & ~(landlock.MAKE_CHAR | landlock.MAKE_BLOCK)
    grants = [landlock.Grant(spec.rootfs, everything), landlock.Grant(scratch, data),
              landlock.Grant("/dev", landlock.READ_FILE | landlock.WRITE_FILE | landlock.READ_DIR
                             | landlock.TRUNCATE | landlock.IOCTL_DEV),
              landlock.Grant("/dev/shm", data),
              landlock.Grant("/proc", landlock.READ_FILE | landlock.WRITE_FILE | landlock.READ_DIR
                             | landlock.TRUNCATE),
              landlock.Grant("/sys", landlock.READ_FILE | landlock.READ_DIR),
              landlock.Grant("/etc/ld.so.cache", landlock.READ_FILE)]
    # proot's own program and libraries: read and mapped where the system keeps them, never listed.
    grants += [landlock.Grant(path, landlock.RUN_FROM) for path in ("/usr", "/lib", "/lib64", "/lib32", "/libx32")]
    if proot:
        grants.append(landlock.Grant(os.path.realpath(proot), landlock.RUN_FROM))
    qemu = _emulator(spec)
    if qemu is not None:  # QEMU runs the step's foreign programs: read and mapped, wherever it is installed
        grants.append(landlock.Grant(os.path.realpath(qemu), landlock.RUN_FROM))
    if not all(os.path.isdir(os.path.join(spec.rootfs, path.lstrip("/"))) for path in HOST_PATHS):
        # proot 5.1 makes the missing mount points in a "glue" directory under /tmp, hard-coded. Only an image
        # without /dev, /proc or /sys needs it (FROM scratch); its steps can then read /tmp's files.
        grants.append(landlock.Grant("/tmp", data))
    grants += [landlock.Grant(m.source, landlock.READ if m.readonly else data)
               for m in spec.mounts if m.kind == "bind"]
    try:
        return landlock.Domain(grants)
    except OSError as exc:
        _unconfined(f"Landlock refused this step's rules ({exc.strerror})", say)
        return None


def _unconfined(why: str, say: Callable[[str], None]) -> None:
    """Without Landlock, a non-root builder at least makes itself not dumpable: the kernel then refuses its
    /proc/PID/environ, mem, fd, root and cwd to processes of its uid without CAP_SYS_PTRACE, such as the step.
    Its parents (the job's shell) stay readable, and the log says so once. (A root builder's steps are already
    kept out by their lack of the builder's capabilities.)"""
    if os.geteuid() != 0:
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    ids.notice_once(f"{why}: RUN steps are not kept out of files outside their root, nor out of the "
                    "environment of this user's other processes (the CI job's shell among them)", say)


@functools.cache
def _embedded_loaders(proot: str) -> dict[str, bytes]:
    try:
        return embedded_loaders(proot)
    except OSError:
        return {}


def _loaders(proot: str, scratch: str) -> dict[str, str]:
    """proot's loaders, written in the step's scratch directory: the domain lets proot exec them there, and they
    go with it (embedded_loaders says why)."""
    env = {}
    for variable, program in _embedded_loaders(os.path.realpath(proot)).items():
        path = os.path.join(scratch, variable.lower())
        with open(path, "wb") as out:
            out.write(program)
        os.chmod(path, 0o755)
        env[variable] = path
    return env


def _remove_proot_files(proot: int) -> None:
    """What proot 5.1 keeps in /tmp (hard-coded) while it runs and removes when it exits: its glue directory
    and, without PROOT_LOADER, its loader; left behind when proot is killed with the step's processes."""
    for path in glob.glob(f"/tmp/proot-{proot}-*") + glob.glob(f"/tmp/prooted-{proot}-*"):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _child_setup(domain: landlock.Domain | None, supervisor: ProotSupervisor | None,
                 drop: list[int]) -> Callable[[], None]:
    """proot's preexec_fn (after the switch to the step's ids): docker's capabilities, the Landlock domain, then
    the seccomp filter. Nothing here may allocate much or take a lock."""
    def setup() -> None:
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # Landlock wants it (the filter sets it again)
        for cap in drop:
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        if domain is not None:
            domain.enter()
        if supervisor is not None:
            supervisor.listener.install()
    return setup


def _end(proot: int, supervisor: ProotSupervisor | None) -> None:
    """Ends a step the builder gives up on (an interrupted build): every process of it, proot last."""
    if supervisor is not None:
        kill_groups(proot, sorted(supervisor.groups))
    kill_groups(proot, [proot])


def _supervisor(spec: RunSpec) -> ProotSupervisor | None:
    """What answers the calls proot gets wrong (proot_supervisor.py) and ends the step's processes when its
    command exits; for a builder that is not root, also RUN's chown and mknod, into the build's ownership
    ledger."""
    ledger = active_ledger() if os.geteuid() != 0 else None
    try:
        return ProotSupervisor(spec.rootfs, ledger, spec.uid, spec.gid, tuple(spec.groups),
                               on_group=lifecycle.watch)
    except OSError:
        return None  # an architecture without a filter: the step runs as under proot alone


def _start(supervisor: ProotSupervisor, proot: int, tail: deque[str], on_line: Callable[[str], None]) -> None:
    try:
        supervisor.start(proot)
    except OSError as exc:
        lost = ", and the owners RUN's chown sets stay the step user's in the image" \
            if supervisor.records_ownership else ""
        _say(f"seccomp user notification is refused here ({exc.strerror}): statx, faccessat2 and clone3 are "
             f"not redirected to calls proot translates (coreutils' ls -l and stat fail, so may npm){lost}",
             tail, on_line)


def _report(supervisor: ProotSupervisor, tail: deque[str], on_line: Callable[[str], None]) -> None:
    if supervisor.failure:
        _say(supervisor.failure, tail, on_line)


def _say(text: str, tail: deque[str], on_line: Callable[[str], None]) -> None:
    line = f"dockyard: {text}"
    tail.append(line)
    on_line(line)


def embedded_loaders(proot: str) -> dict[str, bytes]:
    """The loader programs Debian's proot (5.1) carries inside its own file, by the variable that names an
    extracted copy (PROOT_LOADER, PROOT_LOADER_32). proot 5.1 writes them to /tmp at each exec otherwise (it
    knows no PROOT_TMP_DIR), and the Landlock domain grants nothing in /tmp: other processes keep files there. Empty if
    none is found (a proot built otherwise: it then needs no /tmp, or the step's exec fails and says why)."""
    with open(proot, "rb") as f:
        data = f.read()
    found: dict[str, bytes] = {}
    start = data.find(b"\x7fELF", 1)
    while start > 0:
        size = _elf_size(data, start)
        if size:
            found.setdefault("PROOT_LOADER" if data[start + 4] == 2 else "PROOT_LOADER_32",
                             data[start:start + size])
        start = data.find(b"\x7fELF", start + 1)
    return found


def _elf_size(data: bytes, at: int) -> int:
    """The length of an ELF file at `at` inside `data` (its last program segment or section table), or 0."""
    elf_class, order = data[at + 4:at + 5], data[at + 5:at + 6]
    if order != b"\x01" or elf_class not in (b"\x01", b"\x02") or len(data) < at + 64:
        return 0
    wide = elf_class == b"\x02"
    header = struct.unpack_from("<HHIQQQIHHHHHH" if wide else "<HHIIIIIHHHHHH", data, at + 16)
    _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _ = header
    end = shoff + shnum * shentsize
    for index in range(phnum):
        entry = at + phoff + index * phentsize
        if entry + phentsize > len(data):
            return 0
        offset, filesz = struct.unpack_from("<8xQ16xQ" if wide else "<4xI8xI", data, entry)
        end = max(end, offset + filesz)
    return end if 0 < end <= len(data) - at else 0
