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
from .ownership import chown, mknod, setxattr
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
    created: set[str] = set()  # root-relative paths this layer created (whiteouts don't hide them)
    dir_times: list[tuple[str, float]] = []
    count = 0
    try:
        archive = tarfile.open(fileobj=stream, mode="r|", errorlevel=2)
    except tarfile.TarError as exc:
        raise LayerError(f"not a valid tar archive: {exc}", subject=layer_name) from None
    try:
        for member in archive:
            count += 1
            name = clean(member.name)
            if observe is not None and (not name or name.rpartition("/")[2].startswith(WHITEOUT_PREFIX)):
                observe(member, None)
            if not name:
                continue  # the root directory itself keeps the metadata of the layers below
            if member.name.startswith("/") or ".." in member.name.split("/"):
                # clean() already confines it; a well-formed layer never needs this, so say so loudly.
                raise LayerError(f"entry {member.name!r} points outside the image root; refusing this layer",
                                 subject=layer_name)
            parent_rel, _, base = name.rpartition("/")
            if base == OPAQUE_MARKER:
                _make_opaque(root, parent_rel, created)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                target_rel = f"{parent_rel}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/")
                if target_rel not in created:
                    remove_path(resolve_in_root(root, target_rel, follow_final=False))
                continue
            target = resolve_in_root(root, name, follow_final=False)
            try:
                _ensure_parent(root, parent_rel)
                write_member(archive, member, target,
                             lambda link: resolve_in_root(root, clean(link), follow_final=False))
            except OSError as exc:
                # A malformed layer (a hard link to a directory, a file under a FIFO...) is the image's fault:
                # name the entry instead of failing with a traceback.
                raise LayerError(f"cannot create {member.name!r}: {exc.strerror}", subject=layer_name) from None
            created.add(name)
            if observe is not None:
                observe(member, target)
            if member.isdir():
                dir_times.append((target, member.mtime))
            if on_bytes and member.size:
                on_bytes(member.size)
    except tarfile.TarError as exc:
        raise LayerError(f"corrupt layer tar: {exc}", subject=layer_name) from None
    except PathEscape as exc:
        raise LayerError(str(exc), subject=layer_name) from None
    finally:
        archive.close()
    # Directory times last: creating entries inside a directory changes its mtime.
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return count


def _ensure_parent(root: str, parent_rel: str) -> None:
    if not parent_rel:
        return
    parent = resolve_in_root(root, parent_rel)
    if not os.path.isdir(parent):
        if os.path.lexists(parent):
            os.unlink(parent)
        os.makedirs(parent, mode=0o755, exist_ok=True)


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


def write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: str,
                 link_source: Callable[[str], str]) -> None:
    """Create one tar member at `target` (replacing a non-directory there) with its owner, mode, xattrs and
    time; a directory's time is left to the caller, who sets it once everything inside is written.
    `link_source` maps a hard link's target name in the archive to its host path."""
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
            source = archive.extractfile(member)
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
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            name = key[len(_XATTR_PREFIX):]
            if name.startswith(("trusted.overlay.", "user.dockyard.")):
                continue  # overlayfs's and dockyard's own bookkeeping must never be taken from a layer
            # Refused: user.* on a symlink is ignored, as by docker; security.* without root is recorded.
            setxattr(target, name, value.encode("utf-8", "surrogateescape"))
    if not member.issym():
        # chmod after chown: chown clears setuid/setgid bits.
        os.chmod(target, mode)
    if not member.isdir():
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
