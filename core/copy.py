"""COPY and ADD: putting files from the context, another stage, a tarball or a download into the image root.

Sources are resolved inside their own root (the context, or a stage's mounted root) and destinations inside
the image root, so neither side's symlinks can lead outside. Files keep their mode, mtime and xattrs;
ownership is root's unless --chown says otherwise (docker's rules).
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Protocol, cast

from .errors import LayerError, StepFailed
from .rootfs import ownership
from .rootfs.paths import PathEscape, clean, resolve_in_root
from .rootfs.unpack import remove_path, write_member
from .rootfs.xattrs import image_xattrs


class Mode(Protocol):
    """--chmod: what mode a copied file or directory gets, from the mode it had."""

    def apply(self, mode: int, is_dir: bool) -> int: ...


@dataclass(frozen=True)
class OctalMode:
    """--chmod as an octal number (e.g. 0755): every copied file and directory gets that mode."""

    value: int

    def apply(self, mode: int, is_dir: bool) -> int:
        return self.value


_WHO_BITS = {"u": 0o4700, "g": 0o2070, "o": 0o0007}
_PERM_BITS = {"r": 0o444, "w": 0o222, "x": 0o111}
_ALL_BUT_STICKY = 0o6777  # no `who`, or `a`: every class (BuildKit applies no umask)


@dataclass(frozen=True)
class SymbolicMode:
    """chmod(1)'s symbolic notation as BuildKit applies it (BSD setmode with a umask of 0, per file): `+x`,
    `u=rwx,go=rx`, `a-w`, `g=u`, `X` (execute only for directories and files already executable by someone)."""

    clauses: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (who, ((op, perms), ...))

    def apply(self, mode: int, is_dir: bool) -> int:
        mode &= 0o7777
        for who, actions in self.clauses:
            who_mask = sum(_WHO_BITS[w] for w in who) if who not in ("", "a") else _ALL_BUT_STICKY
            for op, perms in actions:
                mask = who_mask
                if "t" in perms and who_mask & ~0o007:
                    mask |= 0o1000  # the sticky bit, unless only "other" was named (setmode's rule)
                bits = self._bits(perms, mode, is_dir) & mask
                if op == "=":
                    mode = (mode & ~who_mask) | bits
                elif op == "+":
                    mode |= bits
                else:
                    mode &= ~bits
        return mode

    @staticmethod
    def _bits(perms: str, mode: int, is_dir: bool) -> int:
        bits = 0
        for p in perms:
            if p in _PERM_BITS:
                bits |= _PERM_BITS[p]
            elif p == "X" and (is_dir or mode & 0o111):
                bits |= 0o111
            elif p == "s":
                bits |= 0o6000
            elif p == "t":
                bits |= 0o1000
            elif p in "ugo":
                # Copy another class's permissions: its three bits, replicated to every class.
                shift = {"u": 6, "g": 3, "o": 0}[p]
                triple = (mode >> shift) & 0o7
                bits |= triple << 6 | triple << 3 | triple
        return bits


def parse_chmod(text: str) -> Mode:
    """--chmod=MODE: octal (`755`, `0644`) or symbolic (`u=rwx,go=rx`, `+x`), as BuildKit accepts them."""
    if text.isdigit():
        try:
            value = int(text, 8)
        except ValueError:
            raise ValueError(f"invalid --chmod={text}: {text!r} is not an octal number") from None
        if value > 0o7777:
            raise ValueError(f"invalid --chmod={text}: mode out of range (at most 7777)")
        return OctalMode(value)
    clauses = []
    for clause in text.split(","):
        who = ""
        i = 0
        while i < len(clause) and clause[i] in "ugoa":
            who += clause[i]
            i += 1
        actions = []
        while i < len(clause) and clause[i] in "+-=":
            op = clause[i]
            i += 1
            start = i
            while i < len(clause) and clause[i] in "rwxXstugo":
                i += 1
            actions.append((op, clause[start:i]))
        if not actions or i != len(clause):
            raise ValueError(f"invalid --chmod={text}: expected an octal mode such as 0755 or a symbolic one "
                             "such as u=rwx,go=rx or +x")
        clauses.append(("a" if "a" in who else who, tuple(actions)))
    return SymbolicMode(tuple(clauses))


class PathFilter(Protocol):
    """What a copy leaves out of a source tree (.dockerignore, --exclude)."""

    def excluded(self, host_path: str) -> bool: ...

    def walk_into(self, host_dir: str) -> bool:
        """For an excluded directory: could something inside it still be included?"""
        ...


class NoFilter:
    def excluded(self, host_path: str) -> bool:
        return False

    def walk_into(self, host_dir: str) -> bool:
        return False


@dataclass(frozen=True)
class CopyOptions:
    """What COPY/ADD's flags decide about the copied files: their owner and mode."""

    owner: tuple[int, int] | None = None  # --chown, resolved; None keeps the source's for --from, root for context
    mode: Mode | None = None  # --chmod
    keep_source_owner: bool = False  # COPY --from keeps the source's owners when no --chown
    sockets_as_files: bool = False  # the context: BuildKit receives a socket there as an empty regular file


class Copier:
    """Copies host paths (already resolved in their source root) to a destination inside `root`."""

    def __init__(self, root: str, options: CopyOptions, source_filter: PathFilter | None = None):
        self.root = root
        self.options = options
        self.filter = source_filter or NoFilter()
        self._links: dict[tuple[int, int], str] = {}

    def ensure_dir(self, image_path: str) -> str:
        """mkdir -p inside the root; created directories are owned like the copied files and get --chmod's mode
        when there is one (BuildKit since fsutil applied it to the parents a copy creates), else 0755."""
        current = ""
        for part in clean(image_path).split("/"):
            if not part:
                continue
            current = f"{current}/{part}"
            host = resolve_in_root(self.root, current)
            if os.path.isdir(host):
                continue
            if os.path.lexists(host):
                raise StepFailed(f"cannot create directory {current}: a file is in the way")
            if not os.path.isdir(os.path.dirname(host)):
                # `current` is a symlink to a path whose parents are missing: they are made too (BuildKit's
                # MkdirAll follows the link inside the root).
                self.ensure_dir("/" + os.path.relpath(os.path.dirname(host), self.root))
            os.mkdir(host, 0o755)
            uid, gid = self.options.owner or (0, 0)
            ownership.chown(host, uid, gid)
            if self.options.mode is not None:
                os.chmod(host, self.options.mode.apply(0o755, True))  # verbatim: no umask, as BuildKit
        return resolve_in_root(self.root, image_path)

    def copy(self, source: str, dest_host: str) -> None:
        """Copy one source (file, symlink, directory tree, special file) to dest_host (replacing non-dirs)."""
        st = os.lstat(source)
        if stat.S_ISDIR(st.st_mode):
            self._copy_dir(source, dest_host, st)
        else:
            self._copy_node(source, dest_host, st)

    def copy_dir_contents(self, source: str, dest_host: str) -> bool:
        """Copy what the filter lets through from a directory; returns whether anything was copied."""
        copied = False
        for name in sorted(os.listdir(source)):
            child, target = os.path.join(source, name), os.path.join(dest_host, name)
            if not self.filter.excluded(child):
                self.copy(child, target)
                copied = True
            elif os.path.isdir(child) and not os.path.islink(child) and self.filter.walk_into(child):
                copied = self._copy_excluded_dir(child, target) or copied
        return copied

    def _copy_excluded_dir(self, source: str, dest_host: str) -> bool:
        """An excluded directory appears only as the parent of something re-included inside it."""
        existed = os.path.lexists(dest_host)
        st = os.lstat(source)
        self._prepare_dir(dest_host)
        if self.copy_dir_contents(source, dest_host):
            self._set_metadata(source, dest_host, st)
            return True
        if not existed:
            os.rmdir(dest_host)
        return False

    def copy_dir_only(self, source: str, dest_host: str) -> None:
        """Create dest_host as a copy of the directory source without its contents (metadata included)."""
        self._prepare_dir(dest_host)
        self._set_metadata(source, dest_host, os.lstat(source))

    def _prepare_dir(self, dest_host: str) -> None:
        if os.path.islink(dest_host) or (os.path.lexists(dest_host) and not os.path.isdir(dest_host)):
            remove_path(dest_host)
        if not os.path.isdir(dest_host):
            os.mkdir(dest_host, 0o700)

    def _copy_dir(self, source: str, dest_host: str, st: os.stat_result) -> None:
        self._prepare_dir(dest_host)
        self.copy_dir_contents(source, dest_host)
        self._set_metadata(source, dest_host, st)

    def _copy_node(self, source: str, dest_host: str, st: os.stat_result) -> None:
        # Whatever is in the way is replaced. Found by trying: a COPY mostly creates new paths, and a check
        # before each would cost a path lookup through the overlay per file.
        try:
            self._create_node(source, dest_host, st)
        except FileExistsError:
            remove_path(dest_host)
            self._create_node(source, dest_host, st)

    def _create_node(self, source: str, dest_host: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        device = ownership.stood_in_for(source, st)  # a stage's device node, made by a builder that is not root
        if device is not None:
            ownership.mknod(dest_host, *device)
            self._set_metadata(source, dest_host, st)
            return
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in self._links:
            os.link(self._links[key], dest_host)  # hard links within one copy stay hard links
            return
        if stat.S_ISREG(st.st_mode):
            self._copy_file(source, dest_host, st)
            if st.st_nlink > 1:
                self._links[key] = dest_host
            return
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), dest_host)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            ownership.mknod(dest_host, st.st_mode, st.st_rdev)
        elif stat.S_ISSOCK(st.st_mode) and self.options.sockets_as_files:
            os.close(os.open(dest_host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        else:
            return  # a socket from a stage: no layer can hold one
        self._set_metadata(source, dest_host, st)

    def _copy_file(self, source: str, dest_host: str, st: os.stat_result) -> None:
        """A regular file: its data, then its metadata through the open descriptors (each path lookup in an
        overlay costs, and a COPY of a context makes thousands of files)."""
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dst = os.open(dest_host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                copy_data(src, dst)
                self._set_metadata(source, dest_host, st, (src, dst))
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def owner_for(self, source: str, st: os.stat_result) -> tuple[int, int]:
        if self.options.owner is not None:
            return self.options.owner
        if self.options.keep_source_owner:
            return ownership.image_owner(source, st)
        return 0, 0

    def _set_metadata(self, source: str, dest_host: str, st: os.stat_result,
                      open_files: tuple[int, int] | None = None) -> None:
        """Owner, xattrs, mode and times of `source` onto `dest_host`; through the descriptors (source,
        destination) when both are open, which spares a path lookup each through the overlay."""
        # By path: without root, a refused chown is recorded for the path (rootfs/ownership.py).
        ownership.chown(dest_host, *self.owner_for(source, st))
        read_from, write_to = open_files if open_files is not None else (source, dest_host)
        nofollow: dict[str, Any] = {} if open_files is not None else {"follow_symlinks": False}
        # BuildKit copies xattrs (user.*, security.capability) from the context and from stages alike.
        for name, value in image_xattrs(read_from).items():
            try:
                os.setxattr(write_to, name, value, **nofollow)
            except OSError:
                # e.g. user.* on a symlink: refused by the kernel, and ignored by BuildKit too; security.*
                # without root: recorded (rootfs/ownership.py)
                ownership.setxattr(dest_host, name, value)
        for name, value in ownership.recorded_xattrs(source, st).items():  # a stage's, refused to its files
            ownership.setxattr(dest_host, name, value)
        if not stat.S_ISLNK(st.st_mode):
            mode = stat.S_IMODE(st.st_mode)
            if self.options.mode is not None:
                mode = self.options.mode.apply(mode, stat.S_ISDIR(st.st_mode))
            os.chmod(write_to, mode)  # after chown, which clears setuid/setgid
        os.utime(write_to, ns=(st.st_atime_ns, st.st_mtime_ns), **nofollow)


def copy_data(src: int, dst: int) -> None:
    """Copies what is left of `src` to `dst` (copy_file_range measured no faster here for small files)."""
    while data := os.read(src, 1 << 20):
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]


def write_file(source: BinaryIO, dest_host: str) -> None:
    """Create dest_host (never through a symlink) with the bytes of source."""
    fd = os.open(dest_host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(source, dst, 1 << 20)


# --- ADD's local archives ------------------------------------------------------------------------------------

_DECOMPRESSORS: tuple[tuple[bytes, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", lambda f: _gzip_reader(f)),
    (b"BZh", lambda f: cast(BinaryIO, bz2.BZ2File(f))),
    (b"\xfd7zXZ\x00", lambda f: cast(BinaryIO, lzma.LZMAFile(f))),
    (b"\x28\xb5\x2f\xfd", lambda f: _zstd_reader(f)),
)


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    from isal import igzip

    return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def _open_tar_stream(raw: BinaryIO) -> BinaryIO:
    """The tar stream inside raw: uncompressed, gzip, bzip2, xz or zstd, told apart by magic bytes."""
    buffered = io.BufferedReader(cast(io.RawIOBase, raw), buffer_size=1 << 20)
    head = buffered.peek(6)[:6]
    for magic, reader in _DECOMPRESSORS:
        if head.startswith(magic):
            return reader(buffered)
    return buffered


def is_archive(path: str) -> bool:
    """ADD extracts a local regular file whose (decompressed) content starts with a valid tar header —
    BuildKit's test, whatever the file is called."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as raw, tarfile.open(fileobj=_open_tar_stream(raw), mode="r|") as archive:
            return archive.next() is not None
    except (OSError, tarfile.TarError, EOFError, lzma.LZMAError, ValueError):
        return False
    except Exception as exc:  # zstandard.ZstdError and isal's errors have no common base with the above
        if type(exc).__module__.split(".")[0] in ("zstandard", "isal", "gzip"):
            return False
        raise


def extract_archive(path: str, root: str, dest_image_path: str, owner: tuple[int, int] | None = None) -> None:
    """Extract a local tar into dest inside root, merging with what is there (docker's ADD semantics).
    Members keep their owners unless --chown gave one; paths resolve inside the root."""
    base = posixpath.join("/", clean(dest_image_path)).rstrip("/")
    copier = Copier(root, CopyOptions(owner=owner))
    copier.ensure_dir(base or "/")
    dir_times: list[tuple[str, float]] = []
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=_open_tar_stream(raw), mode="r|") as archive:
            for member in archive:
                name = clean(member.name)
                if not name:
                    continue
                if owner is not None:
                    member.uid, member.gid = owner
                copier.ensure_dir(posixpath.dirname(f"{base}/{name}"))
                target = resolve_in_root(root, f"{base}/{name}", follow_final=False)
                write_member(archive, member, target,
                             lambda link: resolve_in_root(root, f"{base}/{clean(link)}", follow_final=False))
                if member.isdir():
                    dir_times.append((target, member.mtime))
    except (tarfile.TarError, PathEscape, LayerError, EOFError, lzma.LZMAError) as exc:
        message = exc.message if isinstance(exc, LayerError) else str(exc)
        raise StepFailed(f"cannot extract {os.path.basename(path)}: {message}") from None
    for target, mtime in reversed(dir_times):  # last: writing into a directory changes its time
        os.utime(target, (mtime, mtime), follow_symlinks=False)
