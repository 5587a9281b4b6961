"""The RUN sandbox: one command in new namespaces, pivoted into an image root, with docker's capabilities.

It runs in a child forked from the builder, not in a new interpreter: starting Python again cost ~20 ms per
RUN, which was most of a RUN's overhead. `start()` forks; the child (the "keeper") and its own child (the
step) do the steps below and never return into the builder's code: every path ends in `os._exit`.

  1. keeper: a session of its own (terminal signals reach only the builder, which decides), killed with
     the builder (PR_SET_PDEATHSIG); 0 = /dev/null, 1 and 2 = the output pipe, every other inherited
     descriptor closed; then new mount, pid, ipc and uts namespaces (and net for --network=none, with
     loopback up as docker's "none" network has it), mounts made private;
  2. keeper forks the step, pid 1 of the new pid namespace, and relays its exit status;
  3. step: /proc (with docker's read-only and masked paths), a minimal /dev on tmpfs, /sys read-only, and
     the mounts the builder asks for (private copies of resolv.conf and hosts, RUN --mount binds and tmpfs,
     heredoc scripts), parents first;
  4. pivot_root into the image root and detach the old root, so the host's files are unreachable (a chroot
     alone can be escaped by a process that keeps CAP_SYS_CHROOT, which docker's set includes);
  5. drop every capability outside docker's default set from the bounding set, switch to the step's user,
     and exec the command.

Forking a builder that may have threads (ssh-agent relay, registry transfers): only the forking thread
exists in the child, and a lock another thread held stays locked there. The child code therefore takes no
lock: it imports nothing (everything is imported and computed before the fork), logs nothing, does no
registry, compression or threading work, and turns off the cyclic GC so that no finalizer of a builder
object (a socket, a buffered file) can run; what remains is system calls through `os` and ctypes, and glibc
makes malloc safe across fork. CPython re-initialises its own state (GIL, import lock) in the child.

A failure before exec is written to the status pipe (closed by a successful exec) and the step exits with
125 (setup), 126 (not executable) or 127 (not found), as docker does.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import os
import signal
import socket
import stat
import struct
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, NoReturn

from .ids import setgroups_allowed

if TYPE_CHECKING:
    from .runner import RunSpec, SandboxMount

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SETUP_FAILED, NOT_EXECUTABLE, NOT_FOUND = 125, 126, 127

# Docker's default capability set (moby's oci/caps/defaults.go).
DEFAULT_CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
    "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}
# Paths of /proc that docker makes read-only or hides (moby's oci/defaults.go).
PROC_READONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
PROC_MASKED = ("kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi",
               "acpi", "asound", "interrupts")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.syscall.restype = ctypes.c_long


class SetupError(Exception):
    def __init__(self, message: str, code: int = SETUP_FAILED):
        super().__init__(message)
        self.code = code


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if isinstance(s, str) else s

    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def bind(source: str, target: str, readonly: bool = False) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def setup_proc(root: str) -> None:
    proc = os.path.join(root, "proc")
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_READONLY:
        path = os.path.join(proc, name)
        if os.path.exists(path):
            bind(path, path, readonly=True)
    for name in PROC_MASKED:
        path = os.path.join(proc, name)
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY)
        elif os.path.exists(path):
            bind("/dev/null", path)


def protect_root(root: str) -> None:
    """Make the image root `nodev`: CAP_MKNOD (in docker's set) lets a step create device nodes, which
    belong in layers; docker's device cgroup stops them being opened, and nodev does the same here, so a
    step cannot create and read the host's disk."""
    bind(root, root)
    mount(None, root, None, MS_BIND | MS_REMOUNT | MS_NODEV | MS_REC)


def setup_dev(root: str) -> None:
    dev = os.path.join(root, "dev")
    # nodev too: the device files below are bind mounts of the host's, which keep their own mount flags.
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=65536k")
    for name in DEVICES:
        path = os.path.join(dev, name)
        open(path, "w").close()
        bind(os.path.join("/dev", name), path)
    os.mkdir(os.path.join(dev, "pts"))
    mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.mkdir(os.path.join(dev, "shm"))
    mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    os.mkdir(os.path.join(dev, "mqueue"))
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, link))


def setup_sys(root: str) -> None:
    target = os.path.join(root, "sys")
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        mount("sysfs", target, "sysfs", flags)
    except SetupError:
        # In a user namespace (a non-root user's build) sysfs mounts only in a network namespace of that user
        # namespace; the step shares the host's network there, so it gets the host's /sys, read-only, as
        # rootless podman does. The remount repeats the host mount's nosuid/nodev/noexec, which are locked.
        mount("/sys", target, None, MS_BIND | MS_REC)
        mount(None, target, None, MS_BIND | MS_REMOUNT | flags)


def make_mountpoint(root: str, target: str, is_file: bool) -> str:
    """The host path of `target` below `root`, created if missing (a directory, or an empty file for a
    bound file). No component may be a symlink: a mount point inside another mount (a cache directory
    filled by earlier builds) must not lead outside the root."""
    parts = [p for p in target.split("/") if p]
    path = root
    for index, part in enumerate(parts):
        path = os.path.join(path, part)
        last = index == len(parts) - 1
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if last and is_file:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            else:
                os.mkdir(path, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise SetupError(f"mount target {target}: /{'/'.join(parts[:index + 1])} is a symbolic link")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise SetupError(f"mount target {target}: /{'/'.join(parts[:index + 1])} is not a directory")
    return path


def setup_mounts(root: str, mounts: Iterable[SandboxMount]) -> None:
    for m in mounts:
        path = make_mountpoint(root, m.target, m.file)
        if m.kind == "tmpfs":
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, m.options or None)
        else:
            bind(m.source, path, readonly=m.readonly)


def loopback_up() -> None:
    """A new network namespace starts with `lo` down; docker's "none" network has it up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def pivot_into(root: str) -> None:
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up stacked on "/", and is then detached (runc's approach).
    _check(libc.syscall(pivot_syscall_number(), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the host root")
    os.chdir("/")


def pivot_syscall_number() -> int:
    return {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}.get(os.uname().machine, 155)


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@cache
def last_capability() -> int:
    """The highest capability number this kernel knows (read in the builder: the step cannot see it)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def drop_capabilities(last_cap: int) -> set[int]:
    keep = set(DEFAULT_CAPS.values())
    for cap in range(last_cap + 1):
        if cap not in keep:
            _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    return keep


def set_capabilities(keep: set[int]) -> None:
    """For a root step: effective = permitted = docker's set, nothing inheritable (CVE-2022-24769)."""
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    header = CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapData * 2)(CapData(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0), CapData(mask >> 32, mask >> 32, 0))
    _check(libc.capset(ctypes.byref(header), data), "set capabilities")


def switch_user(spec: RunSpec, set_groups: bool) -> None:
    if set_groups:  # denied in a user namespace with one mapped id (ids.py): the step keeps no extra groups
        os.setgroups(list(spec.groups))
    os.setgid(spec.gid)
    os.setuid(spec.uid)


def namespace_flags(spec: RunSpec) -> int:
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    return flags | CLONE_NEWNET if spec.network == "none" else flags


def start(spec: RunSpec, output_fd: int, status_fd: int) -> int:
    """Forks the keeper, which runs `spec`; returns its pid. Its exit status is the step's (128+N for a
    signal). `output_fd` receives the step's stdout and stderr; `status_fd` a setup error, if any. Both are
    the builder's to close after this returns; they must be close-on-exec (os.pipe makes them so)."""
    last_cap = last_capability()
    set_groups = setgroups_allowed()
    builder = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = SETUP_FAILED
        try:
            code = keeper(spec, output_fd, status_fd, builder, last_cap, set_groups)
        except SetupError as exc:
            code = report(status_fd, str(exc), exc.code)
        except OSError as exc:
            code = report(status_fd, f"preparing the step: {exc}", SETUP_FAILED)
        finally:
            os._exit(code)  # never back into the builder's code, whatever happened
    return pid


def keeper(spec: RunSpec, output_fd: int, status_fd: int, builder: int, last_cap: int, set_groups: bool) -> int:
    gc.disable()
    os.setsid()
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "tie the step to the builder")
    if os.getppid() != builder:  # the builder died before the line above: nobody waits for this step
        return SETUP_FAILED
    redirect_output(output_fd)
    os.closerange(3, status_fd)
    os.closerange(status_fd + 1, 65536)
    _check(libc.unshare(namespace_flags(spec)), "create namespaces")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.network == "none":
        loopback_up()
    pid = os.fork()
    if pid == 0:
        step(spec, status_fd, last_cap, set_groups)
    os.close(status_fd)
    return exit_code(pid)


def redirect_output(output_fd: int) -> None:
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)


def exit_code(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def step(spec: RunSpec, status_fd: int, last_cap: int, set_groups: bool) -> NoReturn:
    """Pid 1 of the step's namespace: prepare the root, pivot into it, drop privileges, exec. Never returns."""
    root = spec.rootfs
    code = SETUP_FAILED
    try:
        # If the keeper is killed (the builder gave up), the step and everything it started die with it.
        _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "tie the step to its keeper")
        libc.sethostname(spec.hostname.encode(), len(spec.hostname))
        protect_root(root)
        setup_proc(root)
        setup_dev(root)
        setup_sys(root)
        setup_mounts(root, spec.mounts)
        pivot_into(root)
        cwd = spec.cwd or "/"
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
        keep = drop_capabilities(last_cap)
        switch_user(spec, set_groups)
        if spec.uid == 0:
            set_capabilities(keep)
        os.umask(0o022)
        # Python ignores these two; a command expects the default actions.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        exec_command(spec)
    except SetupError as exc:
        code = report(status_fd, str(exc), exc.code)
    except OSError as exc:
        code = report(status_fd, f"preparing the step: {exc}", SETUP_FAILED)
    finally:
        os._exit(code)


def exec_command(spec: RunSpec) -> NoReturn:
    argv = list(spec.argv)
    try:
        os.execvpe(argv[0], argv, dict(spec.env))
    except FileNotFoundError:
        raise SetupError(f"{argv[0]}: no such file or directory in the image", NOT_FOUND) from None
    except PermissionError:
        raise SetupError(f"{argv[0]}: permission denied", NOT_EXECUTABLE) from None
    except OSError as exc:
        raise SetupError(f"cannot run {argv[0]}: {exc.strerror}", NOT_EXECUTABLE) from None


def report(status_fd: int, message: str, code: int) -> int:
    """Writes a setup error to the status pipe; returns the exit code to leave with."""
    try:
        os.write(status_fd, (message + "\n").encode("utf-8", "replace"))
    except OSError as exc:
        if exc.errno != errno.EBADF:  # the keeper has already closed it: the code alone tells
            raise
    return code
