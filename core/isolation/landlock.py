"""Landlock (Linux 5.13+): the kernel confines a proot RUN step, and proot itself, to the step's own files and
processes, whatever uid they run as.

proot translates paths but is no security boundary: the step shares the builder's uid (or root), its pid space and
the host's /proc. Without more, `cat /proc/*/environ` reads the builder's and the CI job's environment
(registry passwords, tokens), and /proc/PID/root/... any file the job can read (a docker config.json). A Landlock
domain, entered by proot's process before it execs proot (`Domain.enter`, in a preexec_fn), closes both, in the
kernel, with no cost per system call and no race with the step:

* processes: a process in a domain may not ptrace, nor open /proc/PID/{environ,mem,root,cwd,fd,maps,...}
  (every access the kernel checks with ptrace_may_access: also process_vm_readv, pidfd_getfd, kcmp) of a
  process outside it. The builder and the job's shell are outside. (A caller with CAP_SYS_PTRACE was seen to
  read /proc/PID/environ all the same on Linux 6.18: proot.py drops it, with every capability docker drops);
* files: every access right is handled, and granted only beneath the step's root, its RUN --mount sources,
  proot's scratch directory, /dev, /proc and /sys (read-only), plus read and execute of the system's libraries
  (proot's own, under /usr and /lib). A file reached any other way, a /proc/PID/root path included, is refused;
* signals and abstract unix sockets (ABI 6, Linux 6.12+): scoped to the domain, so a step can neither signal the
  builder nor connect to an abstract socket outside (containerd-shim's, an X server's).

What it does not hide: /proc/PID/cmdline and stat/status of every process (world-readable; dockyard keeps
secrets out of its children's command lines and masks them on its own: cmdline.py), the network, and a unix socket
bound to a path (connecting is not a file access Landlock checks).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from dataclasses import dataclass
from functools import cache

# System call numbers: the same on every architecture (the generic table).
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3 and 5
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

# The access rights each ABI version handles (a right the kernel does not know cannot be restricted).
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only ones a rule on a file may hold
READ = READ_FILE | READ_DIR | EXECUTE
RUN_FROM = READ_FILE | EXECUTE  # libraries: opened and mapped, never listed
EVERYTHING = (1 << 16) - 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@cache
def abi() -> int | str:
    """The Landlock ABI version this kernel offers, or why there is none (for `dockyard doctor`)."""
    version = _libc.syscall(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    if version >= 0:
        return int(version)
    code = ctypes.get_errno()
    if code == errno.ENOSYS:
        return "the kernel has no Landlock (Linux 5.13+), or a seccomp profile refuses its system calls"
    if code == errno.EOPNOTSUPP:
        return "Landlock is not enabled in this kernel (lsm= boot parameter)"
    return f"Landlock refused: {os.strerror(code)}"


@dataclass(frozen=True)
class Grant:
    """Access `rights` to `path` and everything beneath it (to the file alone, if it is not a directory)."""

    path: str
    rights: int


def _handled(version: int) -> int:
    return _FS_BY_ABI.get(version, EVERYTHING)


class Domain:
    """A ruleset made in the builder (opening the paths it grants), entered by a child in its preexec_fn."""

    def __init__(self, grants: list[Grant]):
        version = abi()
        if isinstance(version, str):
            raise OSError(errno.ENOSYS, version)
        handled = _handled(version)
        attr = _RulesetAttr(handled, 0, (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if version >= 6 else 0)
        # An older kernel accepts the longer structure as long as the fields it does not know are zero.
        fd = _libc.syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_create_ruleset: {os.strerror(code)}")
        self.fd = int(fd)
        self.scoped = bool(attr.scoped)
        try:
            for grant in grants:
                self._add(grant, handled)
        except BaseException:
            self.close()
            raise

    def _add(self, grant: Grant, handled: int) -> None:
        try:
            path_fd = os.open(grant.path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # nothing there to grant (a /lib64 this system does not have)
        try:
            rights = grant.rights & handled
            if not stat.S_ISDIR(os.fstat(path_fd).st_mode):
                rights &= FILE_RIGHTS
            rule = _PathBeneath(rights, path_fd)
            if _libc.syscall(ADD_RULE, self.fd, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"landlock_add_rule {grant.path}: {os.strerror(code)}")
        finally:
            os.close(path_fd)

    def enter(self) -> None:
        """In the child (a preexec_fn, after no_new_privs is set): confine it and everything it starts."""
        if _libc.syscall(RESTRICT_SELF, self.fd, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_restrict_self: {os.strerror(code)}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
