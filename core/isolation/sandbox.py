"""The RUN sandbox: run one command in new namespaces, pivoted into an image root, with docker's capabilities.

This file runs as its own process (`python -I -S sandbox.py`, spec as JSON on stdin) and uses the standard
library only, so it starts fast and imports nothing after it has left the host's root. Steps:

  1. unshare mount, pid, ipc and uts namespaces (and net for --network=none, with loopback up as docker's
     "none" network has it); make mounts private;
  2. fork: the child is pid 1 of the new pid namespace; this process waits and relays its exit status;
  3. in the child: /proc (with docker's read-only and masked paths), a minimal /dev on tmpfs, /sys read-only,
     and the mounts the builder asks for (private copies of resolv.conf and hosts, RUN --mount binds and
     tmpfs, heredoc scripts), parents first;
  4. pivot_root into the image root and detach the old root, so the host's files are unreachable (a
     chroot alone can be escaped by a process that keeps CAP_SYS_CHROOT, which docker's set includes);
  5. drop every capability outside docker's default set from the bounding set, switch to the step's user,
     close every descriptor but 0-2, and exec the command.

A failure before exec is reported as one JSON line on the status pipe (closed by a successful exec).
"""

import ctypes
import fcntl
import json
import os
import signal
import socket
import stat
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

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
    def __init__(self, message, code=125):
        super().__init__(message)
        self.code = code


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags=0, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def bind(source, target, readonly=False):
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def setup_proc(root):
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


def protect_root(root):
    """Make the image root `nodev`: CAP_MKNOD (in docker's set) lets a step create device nodes, which
    belong in layers; docker's device cgroup stops them being opened, and nodev does the same here, so a
    step cannot create and read the host's disk."""
    bind(root, root)
    mount(None, root, None, MS_BIND | MS_REMOUNT | MS_NODEV | MS_REC)


def setup_dev(root):
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


def setup_sys(root):
    mount("sysfs", os.path.join(root, "sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def make_mountpoint(root, target, is_file):
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


def setup_mounts(root, mounts):
    for m in mounts:
        path = make_mountpoint(root, m["target"], m["file"])
        if m["kind"] == "tmpfs":
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, m["options"] or None)
        else:
            bind(m["source"], path, readonly=m["readonly"])


def loopback_up():
    """A new network namespace starts with `lo` down; docker's "none" network has it up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def pivot_into(root):
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up stacked on "/", and is then detached (runc's approach).
    _check(libc.syscall(pivot_syscall_number(), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the host root")
    os.chdir("/")


def pivot_syscall_number():
    return {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}.get(os.uname().machine, 155)


def drop_capabilities():
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    keep = set(DEFAULT_CAPS.values())
    for cap in range(last + 1):
        if cap not in keep:
            _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    return keep


def set_capabilities(keep):
    """For a root step: effective = permitted = docker's set, nothing inheritable (CVE-2022-24769)."""
    mask = 0
    for cap in keep:
        mask |= 1 << cap

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)(Data(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0), Data(mask >> 32, mask >> 32, 0))
    _check(libc.capset(ctypes.byref(header), data), "set capabilities")


def switch_user(spec):
    os.setgroups(spec.get("groups", []))
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])


def child(spec, status_fd):
    root = spec["rootfs"]
    try:
        libc.sethostname(spec["hostname"].encode(), len(spec["hostname"]))
        protect_root(root)
        setup_proc(root)
        setup_dev(root)
        setup_sys(root)
        setup_mounts(root, spec.get("mounts", []))
        pivot_into(root)
        cwd = spec.get("cwd") or "/"
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
        keep = drop_capabilities()
        switch_user(spec)
        if spec["uid"] == 0:
            set_capabilities(keep)
        os.umask(0o022)
    except SetupError as exc:
        fail(status_fd, str(exc), exc.code)
    except OSError as exc:
        fail(status_fd, f"preparing the step: {exc}", 125)
    os.closerange(3, status_fd)
    os.closerange(status_fd + 1, 65536)
    os.set_inheritable(status_fd, False)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except FileNotFoundError:
        fail(status_fd, f"{argv[0]}: no such file or directory in the image", 127)
    except PermissionError:
        fail(status_fd, f"{argv[0]}: permission denied", 126)
    except OSError as exc:
        fail(status_fd, f"cannot run {argv[0]}: {exc.strerror}", 126)


def fail(status_fd, message, code):
    try:
        os.write(status_fd, (json.dumps({"error": message, "code": code}) + "\n").encode())
    finally:
        os._exit(code)


def main():
    spec = json.loads(sys.stdin.buffer.read())
    status_fd = spec["status_fd"]
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if spec.get("network") == "none":
        flags |= CLONE_NEWNET
    try:
        _check(libc.unshare(flags), "create namespaces")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        if flags & CLONE_NEWNET:
            loopback_up()
    except SetupError as exc:
        fail(status_fd, str(exc), 125)
    except OSError as exc:
        fail(status_fd, f"preparing the step: {exc}", 125)
    pid = os.fork()
    if pid == 0:
        child(spec, status_fd)
        os._exit(125)  # not reached
    os.close(status_fd)
    # Relay termination requests to the step; its exit status becomes ours.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
