"""seccomp user notification (Linux 5.0+): a supervisor answers some system calls of a child in its stead.

The child installs a filter before it execs (`Listener.install`, in a `preexec_fn`), which sends the listener
descriptor the kernel returns back to the parent over a socket pair; every process descended from the child then
stops in the kernel on the chosen system calls until the supervisor answers with a result (`reply()`).
No privilege is needed: only no_new_privs, which the child sets for itself.

This module knows only the kernel interface (the filter program, the ioctls, the child's memory); what is decided
is proot_supervisor.py's business.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_ERRNO = 0x00050000

# ioctls of <linux/seccomp.h>: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp),
# _IOW('!', 2, __u64).
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_ID_VALID = 0x40082102
NOTIF = struct.Struct("=QIIiIQ6Q")  # id, pid, flags, then seccomp_data: nr, arch, instruction_pointer, args
RESPONSE = struct.Struct("=QqiI")  # id, val, error, flags

_libc = ctypes.CDLL(None, use_errno=True)

# BPF opcodes: BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K; seccomp_data offsets (the first
# argument's low 32 bits: both architectures are little-endian).
_LOAD, _JUMP_IF_EQUAL, _RETURN = 0x20, 0x15, 0x06
_NR_OFFSET, _ARCH_OFFSET, _ARG0_OFFSET = 0, 4, 16


@dataclass(frozen=True)
class Arch:
    """What the filter and the stat decoding need to know of one CPU architecture (x86_64, aarch64)."""

    audit: int  # AUDIT_ARCH_* as seccomp_data.arch carries it
    seccomp: int  # the seccomp() system call's number
    calls: dict[str, int]  # the system calls the proot supervisor answers, as this architecture numbers them
    stat_size: int  # sizeof(struct stat)
    stat_fields: dict[str, tuple[int, str]]  # struct stat: field -> (offset, struct format)


ARCHES = {
    "x86_64": Arch(0xC000003E, 317,
                   {"chown": 92, "fchown": 93, "lchown": 94, "mknod": 133, "mknodat": 259, "fchownat": 260,
                    "stat": 4, "fstat": 5, "lstat": 6, "newfstatat": 262, "statx": 332, "io_uring_setup": 425,
                    "clone3": 435, "faccessat2": 439, "ptrace": 101, "setpgid": 109, "setsid": 112, "exit_group": 231,
                    "getuid": 102, "getgid": 104},
                   144, {"dev": (0, "=Q"), "ino": (8, "=Q"), "nlink": (16, "=Q"), "mode": (24, "=I"),
                         "uid": (28, "=I"), "gid": (32, "=I"),
                         "rdev": (40, "=Q")}),
    "aarch64": Arch(0xC00000B7, 277,
                    {"mknodat": 33, "fchownat": 54, "fchown": 55, "newfstatat": 79, "fstat": 80, "statx": 291,
                     "io_uring_setup": 425, "clone3": 435, "faccessat2": 439,
                     "exit_group": 94, "ptrace": 117, "setpgid": 154, "setsid": 157, "getuid": 174, "getgid": 176},
                    128, {"dev": (0, "=Q"), "ino": (8, "=Q"), "mode": (16, "=I"), "nlink": (20, "=I"),
                          "uid": (24, "=I"), "gid": (28, "=I"),
                          "rdev": (32, "=Q")}),
}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def current_arch() -> Arch | None:
    return ARCHES.get(os.uname().machine)


def filter_program(arch: Arch, numbers: list[int], zero_first_arg: Sequence[int] = (),
                   errors: dict[int, int] | None = None) -> list[tuple[int, int, int, int]]:
    """A BPF program: the listed system calls of `arch` go to the supervisor, and those of `zero_first_arg` when
    their first argument is 0 (ptrace's PTRACE_TRACEME, while proot's own ptrace requests run untouched); those
    of `errors` (number -> errno) fail with that errno in the kernel, without a notification; everything else
    (including another architecture's calls, e.g. a 32-bit binary's) is allowed."""
    allow, notify = "allow", "notify"
    errors = errors or {}
    code: list[tuple[int, int | str, int | str, int]] = [
        (_LOAD, 0, 0, _ARCH_OFFSET), (_JUMP_IF_EQUAL, 0, allow, arch.audit), (_LOAD, 0, 0, _NR_OFFSET)]
    code += [(_JUMP_IF_EQUAL, notify, 0, nr) for nr in numbers]
    code += [(_JUMP_IF_EQUAL, f"errno {nr}", 0, nr) for nr in errors]
    for nr in zero_first_arg:  # a call that matches goes no further: its argument decides
        code += [(_JUMP_IF_EQUAL, 0, 2, nr), (_LOAD, 0, 0, _ARG0_OFFSET), (_JUMP_IF_EQUAL, notify, allow, 0)]
    labels = {allow: len(code), notify: len(code) + 1}  # the returns, after the last check
    code += [(_RETURN, 0, 0, SECCOMP_RET_ALLOW), (_RETURN, 0, 0, SECCOMP_RET_USER_NOTIF)]
    for nr, error in errors.items():
        labels[f"errno {nr}"] = len(code)
        code.append((_RETURN, 0, 0, SECCOMP_RET_ERRNO | (error & 0xFFFF)))
    # Jumps are relative to the next instruction; a label becomes the offset to its return.
    return [(op, labels[jt] - i - 1 if isinstance(jt, str) else jt,
             labels[jf] - i - 1 if isinstance(jf, str) else jf, k)
            for i, (op, jt, jf, k) in enumerate(code)]


class Listener:
    """Made in the parent before the fork; `install` runs in the child (nothing there may allocate much or
    take a lock: it is a preexec_fn), `receive` in the parent after the child has started."""

    def __init__(self, arch: Arch, names: list[str], zero_first_arg: Sequence[str] = (),
                 errors: dict[str, int] | None = None):
        self._arch = arch
        program = filter_program(arch, [arch.calls[name] for name in names if name in arch.calls],
                                 [arch.calls[name] for name in zero_first_arg if name in arch.calls],
                                 {arch.calls[name]: error for name, error in (errors or {}).items()
                                  if name in arch.calls})
        self._filters = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
        self._prog = _SockFprog(len(program), self._filters)
        self.parent_end, self.child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    def install(self) -> None:
        """In the child: set the filter and send its listener (or the errno that refused it) to the parent."""
        message = b"ok"
        fds: list[int] = []
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            message = b"prctl %d" % ctypes.get_errno()
        else:
            fd = _libc.syscall(self._arch.seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                               ctypes.byref(self._prog))
            if fd < 0:
                message = b"seccomp %d" % ctypes.get_errno()
            else:
                fds = [fd]
        socket.send_fds(self.child_end, [message], fds)
        for fd in fds:
            os.close(fd)

    def receive(self) -> int:
        """In the parent, once the child has exec'd: the listener descriptor; OSError with the child's errno
        when the kernel refused the filter (too old a kernel, seccomp itself filtered out, ...)."""
        self.child_end.close()
        try:
            message, fds, _, _ = socket.recv_fds(self.parent_end, 64, 1)
        finally:
            self.parent_end.close()
        if not fds:
            what, _, code = message.decode().partition(" ")
            number = int(code) if code.isdigit() else errno.EIO
            raise OSError(number, f"{what}: {os.strerror(number)}")
        return fds[0]

    def close(self) -> None:
        self.parent_end.close()
        self.child_end.close()


@dataclass(frozen=True)
class Notification:
    """A system call a supervised process is stopped in, as the kernel reports it (`struct seccomp_notif`)."""

    id: int
    pid: int
    nr: int
    args: tuple[int, ...]


def wait(listener: int, stop: int) -> Notification | None:
    """The next notification, or None once `stop` is readable or no process is left that the filter covers."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(stop, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if stop in events or events.get(listener, 0) & (select.POLLHUP | select.POLLERR):
            return None
        if listener not in events:
            continue
        buffer = bytearray(NOTIF.size)  # the kernel wants it zeroed
        try:
            fcntl.ioctl(listener, NOTIF_RECV, buffer, True)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINTR):  # the caller died before we took it
                continue
            raise
        nid, pid, _, nr, _, _, *args = NOTIF.unpack(buffer)
        return Notification(nid, pid, nr, tuple(args))


def still_waiting(listener: int, notification: Notification) -> bool:
    """The caller is still stopped in this system call (so its pid and memory are still its own)."""
    try:
        fcntl.ioctl(listener, NOTIF_ID_VALID, struct.pack("=Q", notification.id))
    except OSError:
        return False
    return True


SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
CONTINUE = "continue"  # `reply`'s result for: let the kernel run the call as it is (Linux 5.5+)


def reply(listener: int, notification: Notification, result: int | str) -> None:
    """Ends the system call with `result` (0 or more for success, -errno for a failure), or lets it run
    (CONTINUE)."""
    if isinstance(result, str):  # CONTINUE, the one string result
        response = RESPONSE.pack(notification.id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
    else:
        response = RESPONSE.pack(notification.id, result if result >= 0 else 0, result if result < 0 else 0, 0)
    try:
        fcntl.ioctl(listener, NOTIF_SEND, bytearray(response), True)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # the caller was killed meanwhile: nobody waits for the answer
            raise


class ProcessMemory:
    """The memory of the processes a filter stops, through /proc/PID/mem descriptors kept open per process (a
    step that stats thousands of files would otherwise open and close one per call)."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def read_string(self, pid: int, address: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string, read a page at a time (it may end just before an unmapped page)."""
        for fresh in (False, True):  # a kept descriptor may belong to an earlier process with this pid
            fd = self._open(pid, fresh)
            data = bytearray()
            try:
                while len(data) < limit:
                    chunk = os.pread(fd, 4096 - (address + len(data)) % 4096, address + len(data))
                    if not chunk:
                        break
                    end = chunk.find(b"\0")
                    if end >= 0:
                        return bytes(data + chunk[:end])
                    data += chunk
            except OSError:
                if fresh:
                    raise
        raise OSError(errno.ENAMETOOLONG, "path too long or unreadable")

    def read(self, pid: int, address: int, size: int) -> bytes:
        """`size` bytes of the process's memory at `address` (a structure it passed to its system call)."""
        data = os.pread(self._open(pid, True), size, address)
        if len(data) != size:
            raise OSError(errno.EFAULT, "short read from the caller's memory")
        return data

    def write(self, pid: int, address: int, data: bytes) -> None:
        """Writes `data` into a buffer the process passed to its system call, through a descriptor opened for
        it now: a kept one may name another process's memory (a vfork child's, kept from before its exec, is
        its parent's)."""
        if os.pwrite(self._open(pid, True), data, address) != len(data):
            raise OSError(errno.EFAULT, "short write into the caller's memory")

    def _open(self, pid: int, fresh: bool) -> int:
        fd = self._fds.get(pid)
        if fd is not None and not fresh:
            return fd
        if fd is not None:
            os.close(fd)
        fd = self._fds[pid] = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

_AT_FDCWD = -100


def stat_call(arch: Arch, path: str, flags: int) -> bytearray | int:
    """The raw struct stat newfstatat gives for `path` (with the caller's AT_SYMLINK_NOFOLLOW), or -errno."""
    data = bytearray(arch.stat_size)
    buffer = (ctypes.c_char * len(data)).from_buffer(data)
    result = _libc.syscall(arch.calls["newfstatat"], _AT_FDCWD, os.fsencode(path), buffer, flags)
    return -ctypes.get_errno() if result != 0 else data
