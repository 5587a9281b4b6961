"""What Debian's proot (5.1) gets wrong for a RUN step, answered by the builder through seccomp user notification
(seccomp.py): a filter stops those system calls in the kernel, after proot's ptrace stop, and a thread of the
builder answers them.

* statx: proot 5.1 predates it and passes its path untranslated, so coreutils' `ls -l` and `stat` look on the
  host and fail. It is answered ENOSYS, in every proot run; glibc and musl then do the same through
  newfstatat, which proot translates.
* faccessat2, for the same reason: glibc's faccessat(AT_EACCESS) (bash's and dash's `test -r`, apt) tries it
  first, and proot lets it check the host's file of that name. Answered ENOSYS, glibc falls back to faccessat,
  which proot translates.
* io_uring_setup: requests queued on an io_uring are carried out by the kernel without a system call proot
  could stop, so their paths would name the host's files (libuv opens, stats and makes directories that way
  when UV_USE_IO_URING=1). Answered ENOSYS, as docker's default seccomp profile does; libuv and the other
  users of io_uring then make the ordinary calls.
* clone3 of a thread (CLONE_THREAD in its clone_args): proot 5.1 predates clone3 too, and a thread glibc
  starts with it is traced without the state proot gives the threads it saw created (Node.js's worker threads
  then failed their mkdir with EFAULT or ENOENT: npm could not install anything). Answered ENOSYS, as docker's
  default profile answers every clone3; glibc then starts the thread with clone, which proot follows. Other
  clone3 calls (posix_spawn's) run as they are: with those too answered ENOSYS, dnf crashed now and then as
  it exited (a segmentation fault, or glibc's "double free").
* chown and mknod, for a builder that is not root and has no user namespace (proot `-0`): the host cannot give
  a file another owner or make a device node, and proot only turns the EPERM into success, so `RUN chown` would
  leave no trace in the image. They are answered as the kernel of a real root would have, for the image: the
  new owner goes into the ownership ledger (rootfs/ownership.py) by inode, so that a file renamed afterwards
  (dpkg's `NAME.dpkg-new`) keeps it; a device node becomes an empty file with a ledger entry; a FIFO, socket or
  regular file is made for real. The snapshot then writes what the ledger says.
* stat, for that same builder: every file of its root is the builder's on the host. A stat of a file the
  builder owns is answered with the host's stat data and the image's owner (and type, for a device) written
  over it, the ledger's, or for a file it has none of (one the step made; a host file such as a pipe or
  /proc/self) the ids proot shows as the caller's own (see below); all others run as they are (CONTINUE). A
  RUN therefore reads back the owner a base layer or an earlier chown gave a file, as busybox's
  `chown USER FILE` (which passes the group it read) and `cp -a` need.

proot runs without its own seccomp acceleration here (PROOT_NO_SECCOMP): its ptrace stop then comes before our
filter, so the paths the supervisor reads are proot's translations, host paths inside the step's root. Paths
outside the root (the host's /dev, /proc, /sys and the RUN --mount sources) are not the image's: chown there
succeeds without effect, as under proot alone.

* the step's processes, in every proot run: docker ends every process of a step when its command exits, and
  proot waits for all of them (`RUN (sleep 777 &)` would hold the build). The filter stops proot's first child
  at its ptrace(PTRACE_TRACEME) (proot's own ptrace requests are not stopped: the filter checks the
  argument), which names the command's process; its exit_group gives the command's exit status, and then every
  process of the step is killed. They are found by process group: proot's own (a session of its own), and the
  groups the step made with setsid and setpgid, which the filter stops too and records (`groups`, passed on to
  `on_group` as well, for the build's reaper: lifecycle.py). None of these calls is frequent. A command killed
  by a signal calls no exit_group: a pidfd of it, watched by a second thread, ends the rest then.

proot's fake-root emulation swaps ids itself: a chown to the id the step believes it has (0 with `-0`) becomes
one to proot's own getuid() before the call reaches the filter, and a stat result owned by proot's getuid()
is shown as the step's. Were that the builder's real uid, `chown 0` and `chown <builder's uid>` would arrive as
the same number, and a file the image gives the builder's uid (uid 1000: Kubernetes' usual runAsUser and the
usual `useradd app` alike) would show as root's. So the filter answers getuid and getgid itself, with
HOST_ID_ERRNO: the kernel returns -HOST_ID_ERRNO, which is SENTINEL_ID as a uid_t (glibc's getuid has no
error path), and no file has that owner. proot, which uses getuid and getgid for nothing else, then hands
the supervisor a root chown as SENTINEL_ID and a chown to the builder's uid as itself, and never rewrites a
stat result; the step's own get*id calls are answered by proot on their way out, as always. Every stat of a
file the builder owns is therefore answered here: with the image's owner where the ledger has one, else with
SENTINEL_ID, which proot turns into the caller's emulated ids, as it showed the builder's files before.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import stat
import struct
import threading
from typing import Callable, NamedTuple, cast

from ..rootfs.ownership import Ownership, OwnershipLedger
from ..rootfs.paths import PathEscape, resolve_in_root
from . import seccomp

OWNERSHIP_CALLS = ("chown", "fchown", "lchown", "fchownat", "mknod", "mknodat")
LIFECYCLE_CALLS = ("exit_group", "setsid", "setpgid")
# Calls that would get past proot's path translation, answered in every proot run (see above): ENOSYS, or
# for clone3 as _clone3 decides.
UNTRANSLATED_CALLS = ("statx", "faccessat2", "io_uring_setup", "clone3")
STAT_CALLS = ("stat", "fstat", "lstat", "newfstatat")
AT_FDCWD = -100
CLONE_THREAD = 0x00010000
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
NO_ID = 0xFFFFFFFF  # (uid_t) -1: leave as it is
HOST_ID_ERRNO = 3  # proot's getuid/getgid fail with it (see the module's docstring)
SENTINEL_ID = (1 << 32) - HOST_ID_ERRNO  # what they then return: an id no file has
ID_CALLS = ("getuid", "getgid")


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def available() -> str | None:
    """None if seccomp user notification works on this machine, else why not (for `dockyard doctor`)."""
    arch = seccomp.current_arch()
    if arch is None:
        return f"no seccomp filter for the {os.uname().machine} architecture"
    listener = seccomp.Listener(arch, ["statx"])
    pid = os.fork()
    if pid == 0:
        try:
            listener.install()
        finally:
            os._exit(0)
    try:
        fd = listener.receive()
    except OSError as exc:
        return f"seccomp user notification refused ({exc.strerror})"
    finally:
        os.waitpid(pid, 0)
    os.close(fd)
    return None


class ProotSupervisor:
    """For one RUN step through proot: `listener.install` is the child's preexec_fn; `start` after the child
    has started, `stop` after it exited. Without a ledger (a root builder, which can chown for real) only the
    UNTRANSLATED_CALLS are answered."""

    def __init__(self, rootfs: str, ledger: OwnershipLedger | None = None, uid: int = 0, gid: int = 0,
                 groups: tuple[int, ...] = (), on_group: Callable[[int, int], None] = lambda group, proot: None):
        arch = seccomp.current_arch()
        if arch is None:
            raise OSError(errno.ENOSYS, f"no seccomp filter for the {os.uname().machine} architecture")
        calls = [*UNTRANSLATED_CALLS, *LIFECYCLE_CALLS]
        errors = {}
        if ledger is not None:
            calls += [*OWNERSHIP_CALLS, *STAT_CALLS]
            errors = {name: HOST_ID_ERRNO for name in ID_CALLS}
        self.listener = seccomp.Listener(arch, calls, zero_first_arg=["ptrace"], errors=errors)
        self._on_group = on_group
        self._proot = 0  # proot's pid, and its process group
        self.command: int | None = None  # the pid of the step's command (proot's first child)
        self.exit_status: int | None = None  # the command's, from its exit_group
        self.groups: set[int] = set()  # process groups the step made (setsid, setpgid)
        self.records_ownership = ledger is not None
        self._arch = arch
        self._names = {number: name for name, number in arch.calls.items()}
        self._ledger = ledger if ledger is not None else OwnershipLedger()
        self._root = os.path.realpath(rootfs)
        self._uid, self._gid, self._groups = uid, gid, groups
        self._host_ids = (os.geteuid(), os.getegid())
        self._fd = -1
        self._memory = seccomp.ProcessMemory()
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None  # waits for the command to die without exit_group
        self._lock = threading.Lock()  # groups and exit_status, between the two threads
        self.failure: str | None = None  # an answer that went wrong, for the step's log

    def start(self, proot: int = 0) -> None:
        """OSError if the child could not install the filter (the step then runs as under proot alone)."""
        self._proot = proot
        self._fd = self.listener.receive()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="dockyard-proot-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.listener.close()
        if self._thread is None:
            return
        os.write(self._stop_w, b"x")
        self._thread.join()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._thread = None

    def _serve(self) -> None:
        try:
            while (notification := seccomp.wait(self._fd, self._stop_r)) is not None:
                try:
                    result = self._answer(notification)
                except OSError as exc:
                    result = -(exc.errno or errno.EIO)
                except (PathEscape, ValueError) as exc:
                    result = -errno.ELOOP if isinstance(exc, PathEscape) else -errno.EINVAL
                if result is not None:
                    seccomp.reply(self._fd, notification, result)
        except Exception as exc:  # the thread must not die silently: the step's callers would get ENOSYS
            self.failure = f"answering the step's system calls stopped: {exc}"
        finally:
            self._memory.close()
            os.close(self._fd)  # any caller still stopped in the kernel now gets ENOSYS, never hangs

    def _answer(self, n: seccomp.Notification) -> int | str | None:
        """The system call's result (or seccomp.CONTINUE), or None when its caller is gone (nobody to answer)."""
        name, args = self._names[n.nr], n.args
        if name in LIFECYCLE_CALLS or name == "ptrace":
            return self._lifecycle(n, name, args)
        if name == "clone3":
            return self._clone3(n)
        if name in UNTRANSLATED_CALLS:
            return -errno.ENOSYS  # the C library then makes a call proot translates (newfstatat, faccessat)
        if name in STAT_CALLS:
            try:
                return self._stat(n, name, args)
            except OSError:
                return seccomp.CONTINUE  # whatever went wrong on our side, the call still gets its own answer
        if name == "fchown":
            return self._chown_fd(n, _int32(args[0]), args[1], args[2])
        if name == "fchownat" and args[4] & AT_EMPTY_PATH:
            given = self._memory.read_string(n.pid, args[1])
            if not given:
                return self._chown_fd(n, _int32(args[0]), args[2], args[3])
        if name in ("chown", "lchown", "fchownat"):
            dirfd, at = (_int32(args[0]), 1) if name == "fchownat" else (AT_FDCWD, 0)
            follow = name == "chown" or (name == "fchownat" and not args[4] & AT_SYMLINK_NOFOLLOW)
            path = self._path(n, dirfd, args[at])
            if path is None:
                return None
            return self._chown_path(path, args[at + 1], args[at + 2], follow)
        dirfd, at = (_int32(args[0]), 1) if name == "mknodat" else (AT_FDCWD, 0)
        path = self._path(n, dirfd, args[at])
        if path is None:
            return None
        return self._mknod(path, args[at + 1] & 0xFFFFFFFF, args[at + 2] & 0xFFFFFFFF, _umask(n.pid))

    def _lifecycle(self, n: seccomp.Notification, name: str, args: tuple[int, ...]) -> int | str | None:
        if name == "ptrace":  # PTRACE_TRACEME: proot's first child, about to exec the command, is the first
            if self.command is None:
                self.command = n.pid
                self._watch_command(n.pid)
            return seccomp.CONTINUE
        if name != "exit_group":
            target = _int32(args[0]) if name == "setpgid" else 0
            group = (_int32(args[1]) if name == "setpgid" else 0) or target or n.pid
            with self._lock:
                new = group > 0 and group != self._proot and group not in self.groups
                if new:
                    self.groups.add(group)
            if new:
                self._on_group(group, self._proot)
            return seccomp.CONTINUE
        if self.command is None or self.exit_status is not None or not (
                n.pid == self.command or os.path.exists(f"/proc/{self.command}/task/{n.pid}")):
            return seccomp.CONTINUE
        # The command is leaving: what it leaves behind goes with it, as under docker. Killed from this thread,
        # the only one that answers setsid and setpgid, so no process can move to a group not yet known.
        with self._lock:
            self.exit_status = args[0] & 0xFF
        seccomp.reply(self._fd, n, seccomp.CONTINUE)
        self.end_processes()
        return None

    def _watch_command(self, pid: int) -> None:
        """A command killed by a signal calls no exit_group: a thread waits for its pidfd instead, and then
        ends what it left, as exit_group does."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return  # before Linux 5.3, or already gone: proot then waits for what the command left
        self._watcher = threading.Thread(target=self._await_command, args=(pidfd,), daemon=True,
                                         name="dockyard-proot-command")
        self._watcher.start()

    def _await_command(self, pidfd: int) -> None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        try:
            while not (events := dict(poller.poll())).get(pidfd) and self._stop_r not in events:
                continue
            if self._stop_r in events:
                return
            with self._lock:
                if self.exit_status is not None:
                    return  # it called exit_group: done there
                self.exit_status = _killed_status(self.command or 0)
                self.end_processes()
        finally:
            os.close(pidfd)

    def end_processes(self) -> None:
        """Kills every process of the step, proot included: the groups it made, then proot's."""
        kill_groups(self._proot, sorted(self.groups))
        kill_groups(self._proot, [self._proot])

    def _clone3(self, n: seccomp.Notification) -> int | str:
        """ENOSYS for a thread, the call as it is otherwise (see the module's docstring); clone_args begins with
        its 64-bit flags."""
        try:
            flags = struct.unpack("=Q", self._memory.read(n.pid, n.args[0], 8))[0]
        except OSError:
            return -errno.ENOSYS
        return -errno.ENOSYS if flags & CLONE_THREAD else seccomp.CONTINUE

    def _stat(self, n: seccomp.Notification, name: str, args: tuple[int, ...]) -> int | str | None:
        """Every stat of a file the builder owns on the host is answered: with the image's owner (the ledger's),
        or SENTINEL_ID, which proot shows as the caller's emulated ids. Others run as they are (CONTINUE)."""
        if name == "newfstatat":
            dirfd, address, buffer, flags = _int32(args[0]), args[1], args[2], args[3] & 0xFFFFFFFF
        elif name == "fstat":
            dirfd, address, buffer, flags = _int32(args[0]), 0, args[1], AT_EMPTY_PATH
        else:
            dirfd, address, buffer = AT_FDCWD, args[0], args[1]
            flags = AT_SYMLINK_NOFOLLOW if name == "lstat" else 0
        raw = self._memory.read_string(n.pid, address) if address else b""
        # Decided without confirming that the caller still waits (a wrong guess only lets a call run as it
        # is); an answer written back is confirmed first.
        follow = not flags & AT_SYMLINK_NOFOLLOW
        if raw:
            target = self._path(n, dirfd, address, raw, confirm=False)
            if target is None:
                return seccomp.CONTINUE
            named, rel = target, self._in_root(target)
        elif flags & AT_EMPTY_PATH:
            target, follow = f"/proc/{n.pid}/fd/{dirfd}", True
            try:
                named = os.readlink(target)
            except OSError:
                return seccomp.CONTINUE
            rel = self._in_root(named) if named.startswith("/") else None
        else:
            return seccomp.CONTINUE  # an empty path without AT_EMPTY_PATH: the kernel's ENOENT
        inside = rel is not None and raw
        data = seccomp.stat_call(self._arch, target, 0 if follow and not inside else AT_SYMLINK_NOFOLLOW)
        if isinstance(data, int):
            return seccomp.CONTINUE  # the kernel gives the caller the same error
        st = _StatData(*(_field(data, self._arch.stat_fields, name) for name in _StatData._fields))
        if inside and follow and rel is not None and stat.S_ISLNK(st.st_mode):
            # proot resolves links while translating; one left over is resolved inside the root, never
            # through the host's /.
            try:
                target = named = resolve_in_root(self._root, rel)
            except (OSError, PathEscape):
                return seccomp.CONTINUE
            data = seccomp.stat_call(self._arch, target, AT_SYMLINK_NOFOLLOW)
            if isinstance(data, int):
                return data
            st = _StatData(*(_field(data, self._arch.stat_fields, name) for name in _StatData._fields))
        # _StatData has every field a lookup that remembers nothing reads.
        owned = self._ledger.lookup(named, cast(os.stat_result, st), remember=False) if rel is not None else None
        if owned is not None and owned.device is None and (owned.uid, owned.gid) == (st.st_uid, st.st_gid):
            return seccomp.CONTINUE  # the image's owner is the host's (the builder's uid): proot shows it as it is
        if owned is None:
            uid = SENTINEL_ID if st.st_uid == self._host_ids[0] else st.st_uid
            gid = SENTINEL_ID if st.st_gid == self._host_ids[1] else st.st_gid
            if (uid, gid) == (st.st_uid, st.st_gid):
                return seccomp.CONTINUE
            owned = Ownership(uid, gid)
        _show(data, self._arch.stat_fields, owned)
        if not seccomp.still_waiting(self._fd, n):
            return None
        self._memory.write(n.pid, buffer, bytes(data))
        return 0

    def _path(self, n: seccomp.Notification, dirfd: int, address: int, raw: bytes | None = None,
              confirm: bool = True) -> str | None:
        """The host path the caller named (proot has made it absolute), read while it is still waiting."""
        path = os.fsdecode(self._memory.read_string(n.pid, address) if raw is None else raw)
        if not path.startswith("/"):
            base = f"/proc/{n.pid}/cwd" if dirfd == AT_FDCWD else f"/proc/{n.pid}/fd/{dirfd}"
            path = os.path.join(os.readlink(base), path)
        return path if not confirm or seccomp.still_waiting(self._fd, n) else None

    def _in_root(self, path: str) -> str | None:
        """`path` relative to the step's root, or None if it lies outside (a bound host path)."""
        path = os.path.normpath(path)
        if path == self._root:
            return ""
        return path[len(self._root) + 1:] if path.startswith(self._root + "/") else None

    def _chown_path(self, path: str, uid: int, gid: int, follow: bool) -> int:
        rel = self._in_root(path)
        if rel is None:
            os.lstat(path)  # ENOENT as the kernel would say; otherwise as proot -0: success, no effect
            return 0
        target = resolve_in_root(self._root, rel, follow_final=follow)
        return self._chown(target, os.lstat(target), uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)

    def _chown_fd(self, n: seccomp.Notification, fd: int, uid: int, gid: int) -> int | None:
        link = f"/proc/{n.pid}/fd/{fd}"
        target, st = os.readlink(link).removesuffix(" (deleted)"), os.stat(link)
        if not seccomp.still_waiting(self._fd, n):
            return None
        if self._in_root(target) is None:
            return 0
        return self._chown(target, st, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)

    def _chown(self, path: str, st: os.stat_result, uid: int, gid: int) -> int:
        uid = self._uid if uid == SENTINEL_ID else uid  # proot's swap of the step's own ids undone
        gid = self._gid if gid == SENTINEL_ID else gid
        current = self._ledger.lookup(path, st)
        if current is not None:
            owner, device = (current.uid, current.gid), current.device
        else:
            owner, device = ((self._uid, self._gid) if st.st_uid == os.geteuid() else (st.st_uid, st.st_gid)), None
        new_uid = owner[0] if uid == NO_ID else uid
        new_gid = owner[1] if gid == NO_ID else gid
        if self._uid != 0 and (owner[0] != self._uid or new_uid != owner[0]
                               or (new_gid != owner[1] and new_gid not in (self._gid, *self._groups))):
            return -errno.EPERM  # what the kernel tells a user who is not root
        self._record(path, st, Ownership(new_uid, new_gid, device))
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            # chown clears set-user-ID, and set-group-ID where group execute is set, even for root.
            kept = st.st_mode & ~(stat.S_ISUID | (stat.S_ISGID if st.st_mode & stat.S_IXGRP else 0))
            if kept != st.st_mode:
                os.chmod(path, stat.S_IMODE(kept), follow_symlinks=False)
        return 0

    def _record(self, path: str, st: os.stat_result, owned: Ownership) -> None:
        self._ledger.record_inode(st, owned)

    def _mknod(self, path: str, mode: int, dev: int, umask: int) -> int:
        kind = stat.S_IFMT(mode) or stat.S_IFREG
        permissions = stat.S_IMODE(mode) & ~umask
        rel = self._in_root(path)
        device = kind in (stat.S_IFCHR, stat.S_IFBLK)
        if device and (rel is None or self._uid != 0):
            return -errno.EPERM
        if kind not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
            return -errno.EINVAL
        if rel is not None:
            parent, _, name = rel.rpartition("/")
            path = os.path.join(resolve_in_root(self._root, parent), name)  # the last component is never followed
        if not device:
            os.mknod(path, kind | 0o600)
            os.chmod(path, permissions)
            return 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, permissions)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        node = ("c" if kind == stat.S_IFCHR else "b", os.major(dev), os.minor(dev))
        self._record(path, st, Ownership(self._uid, self._gid, node))
        return 0


def _killed_status(pid: int) -> int:
    """128 + the signal that killed `pid`, read while it is a zombie (proot reaps it at once); 255, what proot
    itself answers for a killed command, once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        status = int(fields[49])  # field 52, exit_code: a wait status
    except (OSError, IndexError, ValueError):
        return 255
    return 128 + (status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF


def kill_groups(tracer: int, groups: list[int]) -> None:
    """SIGKILL to each process group of a step that proot (pid `tracer`) traces. A group whose leader's pid now
    belongs to a process proot does not trace is left alone: that pid was reused after the step's leader
    died and its group emptied (a group's id cannot be reused while any member is alive)."""
    for group in groups:
        if group != tracer and not _ours(group, tracer):
            continue
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def _ours(pid: int, tracer: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            fields = dict(line.split(b":", 1) for line in status.read().splitlines() if b":" in line)
    except FileNotFoundError:
        return True  # the leader is gone: only members of the step's group can still carry its id
    except OSError:
        return False
    traced = fields.get(b"TracerPid", b"").strip() == str(tracer).encode()
    return traced or fields.get(b"State", b"").strip()[:1] == b"Z"  # a zombie: the step's, not yet reaped


class _StatData(NamedTuple):
    """What the ledger's lookup reads of a stat result, decoded from the raw struct stat."""

    st_dev: int
    st_ino: int
    st_nlink: int
    st_mode: int
    st_uid: int
    st_gid: int


def _field(data: bytearray, fields: dict[str, tuple[int, str]], name: str) -> int:
    offset, fmt = fields[name.removeprefix("st_")]
    return int(struct.unpack_from(fmt, data, offset)[0])


def _show(data: bytearray, fields: dict[str, tuple[int, str]], owned: Ownership) -> None:
    """Writes the image's owner, and for a device node its type and number, over host stat data."""
    def put(field: str, value: int) -> None:
        offset, fmt = fields[field]
        struct.pack_into(fmt, data, offset, value)

    put("uid", owned.uid)
    put("gid", owned.gid)
    if owned.device is not None:
        kind, major, minor = owned.device
        mode_at, mode_format = fields["mode"]
        mode = struct.unpack_from(mode_format, data, mode_at)[0]
        put("mode", (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | stat.S_IMODE(mode))
        put("rdev", os.makedev(major, minor))


def _umask(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022
