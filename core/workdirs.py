"""Work directories: the scratch directories builds make under the work parent (/var/tmp by default), and the
removal of those left behind by builds that were killed (SIGKILL: a cancelled CI job, an aborted Jenkins build).

Each work directory holds a lock file, flock'ed by its build for as long as the build's process lives: the
kernel releases it when the process dies, however it dies. A directory whose lock can be taken therefore
belongs to no living process. Unlike a pid file, this also holds for a build in another container or pid
namespace sharing the directory (its pids mean nothing here, and pids are reused).

The lock file is created under a temporary name, locked, and only then renamed to its final name, so a
directory's lock is never visible unlocked while its build lives. A directory without one (being made this
very instant, or left by an older dockyard) is never touched, nor is one of another user (their next build
removes it) or a symbolic link. Removal holds the lock, removes the lock file
last (a removal that fails half way is tried again next time), never follows a symbolic link and never enters
another mount: a build's overlay mounts live in its private mount namespace and die with it, but a mount left
in the host's namespace is detached first when this process may (root), and the directory is kept otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PREFIX = "dockyard-"
LOCK_NAME = "build.lock"


class WorkDir:
    """A work directory locked by this process until `remove()` (or the process's death)."""

    def __init__(self, path: Path, lock_fd: int):
        self.path = path
        self._lock_fd = lock_fd

    def remove(self) -> None:
        """Deletes what is left of the directory (the caller unmounted what it mounted), then releases the lock."""
        try:
            _remove_tree(self.path)
        except OSError:
            pass  # what cannot be removed now is unlocked once we return: the next build's sweep tries again
        finally:
            os.close(self._lock_fd)


def create(parent: Path, prefix: str = PREFIX) -> WorkDir:
    """A new private directory under `parent`, locked by this process (see the module's docstring)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    pending = path / (LOCK_NAME + ".new")
    fd = os.open(pending, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(pending, path / LOCK_NAME)
    except BaseException:
        os.close(fd)
        _remove_tree(path)
        raise
    return WorkDir(path, fd)


@contextmanager
def locked(parent: Path, prefix: str = PREFIX) -> Iterator[Path]:
    """A locked work directory for the block, removed afterwards."""
    work = create(parent, prefix)
    try:
        yield work.path
    finally:
        work.remove()


@dataclass(frozen=True)
class Leftover:
    """A work directory of a build that is gone: removed (`freed` bytes), or kept and why."""

    path: Path
    freed: int = 0
    kept: str | None = None


def sweep(parent: Path) -> list[Leftover]:
    """Removes the work directories under `parent` whose build is gone; running builds' are left alone."""
    try:
        names = sorted(n for n in os.listdir(parent) if n.startswith(PREFIX))
    except OSError:
        return []
    found = []
    for name in names:
        path = Path(parent) / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        # Only this user's own directories (a symbolic link, or another user's directory, in a shared /var/tmp
        # could be swapped for a link to anywhere while we remove it): theirs are their next build's to remove.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        fd = _take_lock(path)
        if fd is None:
            continue
        try:
            found.append(_remove_leftover(path))
        finally:
            os.close(fd)
    return found


def _take_lock(path: Path) -> int | None:
    """The directory's lock, taken, if it has one and no living process holds it."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # no lock file (not a build's, or still being made), not a directory, not ours to read
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: a running build
        os.close(fd)
        return None
    try:
        current = os.lstat(path / LOCK_NAME).st_ino
    except OSError:
        current = None
    if current != os.fstat(fd).st_ino:  # removed by another sweep between our open and our lock
        os.close(fd)
        return None
    return fd


def _remove_leftover(path: Path) -> Leftover:
    remaining = _detach_mounts(path)
    if remaining:
        return Leftover(path, kept=f"{remaining[0]} is still mounted (unmount it as root, then run `dockyard "
                                  "cache prune`)")
    try:
        return Leftover(path, freed=_remove_tree(path))
    except OSError as exc:
        return Leftover(path, kept=f"cannot remove {exc.filename or path}: {exc.strerror or exc}")


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this process's mount namespace, deepest first."""
    top = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                point = _unescape(line.split(" ")[4])
                if point == top or point.startswith(top + "/"):
                    found.append(point)
    except OSError:
        return []
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as three octal digits."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def _detach_mounts(path: Path) -> list[str]:
    """Detaches what is mounted below `path` (when allowed); returns the mount points that remain."""
    from .rootfs.overlay import umount

    for point in _mounts_under(path):
        try:
            umount(point)
        except OSError:
            pass
    return _mounts_under(path)


def _remove_tree(top: Path) -> int:
    """Removes the tree at `top` without following links or entering other mounts (a directory on another
    device, or a mount the walk meets, raises EBUSY before anything in it is touched); the lock file goes last.
    Directories the build made unreadable (RUN chmod 500) are opened up first. Returns the bytes freed."""
    try:
        device = os.lstat(top).st_dev
    except FileNotFoundError:
        return 0
    freed = 0
    lock = os.path.join(top, LOCK_NAME)
    # Depth first, iteratively (image trees can be deeper than Python's recursion limit): (dir, entered).
    stack: list[tuple[str, bool]] = [(str(top), False)]
    while stack:
        directory, entered = stack.pop()
        if entered:
            if directory != str(top):
                os.rmdir(directory)
            continue
        stack.append((directory, True))
        for entry in _entries(directory):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != device or os.path.ismount(entry.path):
                    raise OSError(errno.EBUSY, "a mount point", entry.path)
                if st.st_mode & 0o700 != 0o700 and st.st_uid == os.geteuid():
                    os.chmod(entry.path, stat.S_IMODE(st.st_mode) | 0o700)  # RUN chmod 500 /dir: files go
                stack.append((entry.path, False))
            elif entry.path != lock:
                os.unlink(entry.path)
                freed += st.st_blocks * 512
    try:
        freed += os.lstat(lock).st_blocks * 512
        os.unlink(lock)
    except FileNotFoundError:
        pass
    os.rmdir(top)
    return freed


def _entries(directory: str) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        return list(it)
