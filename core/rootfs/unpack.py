"""Applying a layer tar to a root filesystem, with OCI whiteout semantics, safely.

The tar is applied to the *merged* view of the layers below it (an overlay mount whose upper directory is
the new layer's directory), exactly as containerd applies layers: parent symlinks from lower layers resolve
the way they would in a container, deletions become overlay whiteouts by the kernel's own hand, and every path
is resolved inside the root (`..` and symlinks can never lead a write outside it).
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import stat
import tarfile
import threading
from typing import BinaryIO, Callable

from ..errors import LayerError
from ..image.tarreader import TarFormatError, TarReader
from .ownership import active_ledger, chown, mknod, setxattr
from .paths import PathEscape, clean, resolve_in_root

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_XATTR_PREFIX = "SCHILY.xattr."


class DiffIdReader:
    """Reads an uncompressed layer stream while hashing it, so the unpacked content can be checked against the
    diff_id the image config (or a registry cache) claims: a layer directory shared by later builds as an
    overlay lower layer must hold exactly that layer.

    The stream is read (decompressed) and hashed a MB at a time on a thread of its own, a few MB ahead of the
    reader: ISA-L and hashlib let go of the GIL, so on two cores that work is off the critical path of the tar
    reader and the file writes (a 69 MB base into tmpfs: 0.51 -> 0.36 s). tarfile reads 10 KB at a time, which is
    served from those chunks. Use it as a context manager: leaving the block stops the thread."""

    FILL = 1 << 20
    _AHEAD = 4  # chunks read ahead at most

    def __init__(self, stream: BinaryIO):
        self._hash = hashlib.sha256()
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=self._AHEAD)
        self._stop = threading.Event()
        self._buffer = b""
        self._pos = 0
        self._eof = False
        self._thread = threading.Thread(target=self._produce, args=(stream,), name="layer-read", daemon=True)
        self._thread.start()

    def _produce(self, stream: BinaryIO) -> None:
        try:
            while not self._stop.is_set():
                data = stream.read(self.FILL)
                self._hash.update(data)
                self._chunks.put(data)
                if not data:
                    return
        except BaseException as exc:  # raised in the reading thread by read()
            self._chunks.put(exc)

    def _next_chunk(self) -> bytes:
        item = self._chunks.get()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        self._eof = not item
        return item

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        while len(self._buffer) - self._pos < size and not self._eof:
            self._buffer, self._pos = self._buffer[self._pos:] + self._next_chunk(), 0
        data = self._buffer[self._pos:self._pos + size]
        self._pos += len(data)
        return data

    def verify(self, diff_id: str, layer_name: str) -> None:
        """Reads what the tar reader left (end-of-archive padding), then compares the digest to `diff_id`."""
        while self.read(self.FILL):
            pass
        self._thread.join()
        actual = "sha256:" + self._hash.hexdigest()
        if actual != diff_id:
            raise LayerError(f"the layer's content has digest {actual}, not the diff_id {diff_id} the image claims",
                             subject=layer_name,
                             hint="the blob, or the image or cache that names it, is corrupt or was tampered with; "
                                  "nothing of it was kept")

    def __enter__(self) -> DiffIdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._chunks.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


def remove_path(path: str) -> None:
    """Remove a file, link or whole directory tree without following symlinks."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def apply_layer(stream: BinaryIO, root: str, *, layer_name: str = "layer",
                on_bytes: Callable[[int], None] | None = None,
                observe: Callable[[tarfile.TarInfo, str | None], None] | None = None) -> int:
    """Apply an uncompressed layer tar stream onto `root`. Returns the number of entries applied. `observe` is
    told of every member once it is applied, with the host path it was written to (None for the root, a
    whiteout or an opaque marker)."""
    applier = _LayerApplier(root, layer_name, observe)
    reader = TarReader(stream)
    count = 0
    try:
        for member in reader:
            count += 1
            applier.apply(member, reader)
            if on_bytes and member.size:
                on_bytes(member.size)
    except TarFormatError as exc:
        if count == 0:
            raise LayerError(f"not a valid tar archive: {exc}", subject=layer_name) from None
        raise LayerError(f"corrupt layer tar: {exc}", subject=layer_name) from None
    except PathEscape as exc:
        raise LayerError(str(exc), subject=layer_name) from None
    applier.finish()
    return count


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _LayerApplier:
    """Applies members one by one. What makes it fast (20,000 small files: within 1.5x of GNU tar's time):

    * the host directory of each parent is resolved in the root once, then remembered by its name in the layer.
      A remembered directory stays what it was as long as this layer replaces or removes nothing (a layer is
      the only writer of the root while it is applied, and creating a new entry cannot turn an existing
      directory into a symlink), so any replacement or removal forgets them all;
    * a regular file is created with O_EXCL first (an entry already there is replaced only when that fails),
      its data written, owner, mode and times set through the open descriptor; created with its final mode
      when the umask keeps that mode whole and it has no set-id or sticky bit, with no chmod then, and no
      chown when it was born with the owner the layer gives it (root's files, unpacked as root);
    * directory times are set at the end, as before (creating entries inside changes them)."""

    def __init__(self, root: str, layer_name: str,
                 observe: Callable[[tarfile.TarInfo, str | None], None] | None):
        self.root = root
        self.layer_name = layer_name
        self.observe = observe
        self._root_slash = root if root.endswith("/") else root + "/"
        self._dirs: dict[str, str] = {"": self._root_slash}  # layer name -> host path + "/", known directories
        # Host path + "/" of a known directory -> its group: a file made in a directory of the builder's group
        # is the builder's (whatever setgid or the `grpid` mount option say), so it needs no chown to that owner.
        self._groups: dict[str, int] = {self._root_slash: _group_of(root)}
        self._euid, self._egid = os.geteuid(), os.getegid()
        self.created: set[str] = set()  # root-relative paths this layer created (whiteouts don't hide them)
        self.dir_times: list[tuple[str, float]] = []
        self._umask = _current_umask()
        self._ledger = active_ledger()  # refused chowns are recorded there (ownership.py)

    def apply(self, member: tarfile.TarInfo, reader: TarReader) -> None:
        raw = member.name
        if raw and raw[0] not in "./" and raw[-1] != "/" and "/." not in raw and "//" not in raw:
            name = raw  # already clean: no empty, "." or ".." component, not absolute
        else:
            name = clean(raw)
            if raw.startswith("/") or ".." in raw.split("/"):
                if not name:
                    self._observe(member, None)
                    return
                # clean() already confines it; a well-formed layer never needs this, so say so loudly.
                raise LayerError(f"entry {raw!r} points outside the image root; refusing this layer",
                                 subject=self.layer_name)
            if not name:
                self._observe(member, None)
                return  # the root directory itself keeps the metadata of the layers below
        parent_rel, _, base = name.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._observe(member, None)
            self._forget_dirs()
            if base == OPAQUE_MARKER:
                _make_opaque(self.root, parent_rel, self.created)
                return
            target_rel = f"{parent_rel}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/")
            if target_rel not in self.created:
                remove_path(resolve_in_root(self.root, target_rel, follow_final=False))
            return
        try:
            parent = self._dirs.get(parent_rel) or self._parent(parent_rel)
            target = parent + base
            if member.isreg():
                self._write_file(member, parent, target, reader)
            elif member.isdir():
                self._make_dir(member, target, name)
            else:
                if os.path.lexists(target):
                    self._forget_dirs()  # write_member replaces it
                write_member(None, member, target, self._link_source)
        except OSError as exc:
            # A malformed layer (a hard link to a directory, a file under a FIFO...) is the image's fault:
            # name the entry instead of failing with a traceback.
            raise LayerError(f"cannot create {raw!r}: {exc.strerror}", subject=self.layer_name) from None
        self.created.add(name)
        if self.observe is not None:
            self.observe(member, target)

    def _observe(self, member: tarfile.TarInfo, written: str | None) -> None:
        if self.observe is not None:
            self.observe(member, written)

    def _forget_dirs(self) -> None:
        self._dirs = {"": self._root_slash}
        self._groups = {self._root_slash: self._groups[self._root_slash]}

    def _parent(self, parent_rel: str) -> str:
        """The host path (with a trailing "/") of the directory `parent_rel`, made if missing."""
        known = self._dirs.get(parent_rel)
        if known is not None:
            return known
        parent = resolve_in_root(self.root, parent_rel)
        if not os.path.isdir(parent):
            if os.path.lexists(parent):
                os.unlink(parent)
                self._forget_dirs()
            os.makedirs(parent, mode=0o755, exist_ok=True)
        known = parent + "/"
        self._dirs[parent_rel] = known
        self._groups[known] = os.stat(parent).st_gid
        return known

    def _link_source(self, link: str) -> str:
        """The host path of a hard link's target (never made: it must exist)."""
        name = clean(link)
        parent_rel, _, base = name.rpartition("/")
        known = self._dirs.get(parent_rel)
        if known is not None and base:
            return known + base
        return resolve_in_root(self.root, name, follow_final=False)

    def _write_file(self, member: tarfile.TarInfo, parent: str, target: str, reader: TarReader) -> None:
        mode = member.mode & 0o7777
        exact = not (mode & ~0o777 or mode & self._umask)
        try:
            fd = os.open(target, _NEW_FILE, mode if exact else 0o600)
        except FileExistsError:
            remove_path(target)
            self._forget_dirs()
            fd = os.open(target, _NEW_FILE, mode if exact else 0o600)
        try:
            if member.size:
                reader.write_data(fd)
            if self._ledger is not None:
                chown(target, member.uid, member.gid, fd=fd)
            elif member.uid != self._euid or member.gid != self._egid or self._groups.get(parent) != self._egid:
                os.fchown(fd, member.uid, member.gid)
            if member.pax_headers:
                _set_xattrs(member, target)
            if not exact:
                os.fchmod(fd, mode)  # after chown: chown clears setuid/setgid
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def _make_dir(self, member: tarfile.TarInfo, target: str, name: str) -> None:
        try:
            os.mkdir(target, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(target).st_mode):
                remove_path(target)
                self._forget_dirs()
                os.mkdir(target, 0o700)
        _apply_metadata(member, target, member.mode & 0o7777)
        self.dir_times.append((target, member.mtime))
        self._dirs[name] = target + "/"
        if self._ledger is None:  # else the chown may have been refused and recorded
            self._groups[target + "/"] = member.gid

    def finish(self) -> None:
        # Directory times last: creating entries inside a directory changes its mtime.
        for path, mtime in reversed(self.dir_times):
            os.utime(path, (mtime, mtime), follow_symlinks=False)


def _make_opaque(root: str, dir_rel: str, created: set[str]) -> None:
    """Hide everything the lower layers had below dir_rel, keeping what this layer put there."""
    directory = resolve_in_root(root, dir_rel) if dir_rel else root
    if not os.path.isdir(directory):
        os.makedirs(directory, exist_ok=True)
        return
    prefix = f"{dir_rel}/" if dir_rel else ""
    for entry in os.listdir(directory):
        rel = prefix + entry
        if rel in created:
            if os.path.isdir(os.path.join(directory, entry)) and not os.path.islink(os.path.join(directory, entry)):
                _make_opaque(root, rel, created)
            continue
        if any(c.startswith(rel + "/") for c in created):
            _make_opaque(root, rel, created)
            continue
        remove_path(os.path.join(directory, entry))


def write_member(archive: tarfile.TarFile | None, member: tarfile.TarInfo, target: str,
                 link_source: Callable[[str], str]) -> None:
    """Create one tar member at `target` (replacing a non-directory there) with its owner, mode, xattrs and
    time; a directory's time is left to the caller, who sets it once everything inside is written.
    `link_source` maps a hard link's target name in the archive to its host path. A regular file's data is
    read from `archive` (only a regular file needs one)."""
    existing = None
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        pass
    if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
        remove_path(target)
    mode = member.mode & 0o7777
    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(target, 0o700)
    elif member.isreg():
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            source = archive.extractfile(member) if archive is not None else None
            if source is not None:
                shutil.copyfileobj(source, out, 1 << 20)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        linked = link_source(member.linkname)
        if not os.path.lexists(linked):
            raise LayerError(f"hard link {member.name!r} points to {member.linkname!r}, which does not exist")
        os.link(linked, target, follow_symlinks=False)
        return  # a hard link shares its target's metadata
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
    elif member.isfifo():
        os.mkfifo(target, 0o600)
    else:
        return  # unknown types (e.g. sockets can't be in tars) are skipped, as docker does
    _apply_metadata(member, target, mode)


def _apply_metadata(member: tarfile.TarInfo, target: str, mode: int) -> None:
    chown(target, member.uid, member.gid)
    _set_xattrs(member, target)
    if not member.issym():
        # chmod after chown: chown clears setuid/setgid bits.
        os.chmod(target, mode)
    if not member.isdir():
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def _set_xattrs(member: tarfile.TarInfo, target: str) -> None:
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            name = key[len(_XATTR_PREFIX):]
            if name.startswith(("trusted.overlay.", "user.dockyard.")):
                continue  # overlayfs's and dockyard's own bookkeeping must never be taken from a layer
            # Refused: user.* on a symlink is ignored, as by docker; security.* without root is recorded.
            setxattr(target, name, value.encode("utf-8", "surrogateescape"))


def _group_of(path: str) -> int:
    try:
        return os.stat(path).st_gid
    except OSError:
        return -1  # no group: every file is then chowned


def _current_umask() -> int:
    """The process's umask, read without changing it (os.umask can only set it, and other threads create
    files meanwhile); every permission bit when it cannot be read, so modes are then always set by chmod."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777
