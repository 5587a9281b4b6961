"""COPY and ADD: putting files from the context, another stage, a tarball or a URL into the image root.

Sources are resolved inside their own root (the context, or a stage's mounted root) and destinations inside
the image root, so neither side's symlinks can lead outside. Files keep their mode and mtime; ownership is
root's unless --chown says otherwise (docker's rules).
"""

from __future__ import annotations

import email.utils
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import Callable

from .errors import ContextError, StepFailed
from .rootfs.paths import PathEscape, clean, resolve_in_root
from .rootfs.unpack import LayerError, remove_path, write_member


@dataclass(frozen=True)
class CopyOptions:
    owner: tuple[int, int] | None = None  # --chown, resolved; None keeps the source's for --from, root for context
    mode: int | None = None  # --chmod
    keep_source_owner: bool = False  # COPY --from keeps the source's owners when no --chown


class Copier:
    """Copies host paths (already resolved in their source root) to a destination inside `root`."""

    def __init__(self, root: str, options: CopyOptions, visible: Callable[[str], bool] = lambda p: True):
        self.root = root
        self.options = options
        self.visible = visible
        self._links: dict[tuple[int, int], str] = {}

    def dest_path(self, image_path: str) -> str:
        return resolve_in_root(self.root, image_path)

    def ensure_dir(self, image_path: str) -> str:
        """mkdir -p inside the root; created directories are 0755, owned like the copied files (docker)."""
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
            os.mkdir(host, 0o755)
            uid, gid = self.options.owner or (0, 0)
            os.chown(host, uid, gid)
        return resolve_in_root(self.root, image_path)

    def copy(self, source: str, dest_host: str) -> None:
        """Copy one source (file, symlink, directory tree, special file) to dest_host (replacing non-dirs)."""
        st = os.lstat(source)
        if stat.S_ISDIR(st.st_mode):
            self._copy_dir(source, dest_host, st)
        else:
            self._copy_node(source, dest_host, st)

    def copy_dir_contents(self, source: str, dest_host: str) -> None:
        for name in sorted(os.listdir(source)):
            child = os.path.join(source, name)
            if self.visible(child):
                self.copy(child, os.path.join(dest_host, name))

    def _copy_dir(self, source: str, dest_host: str, st: os.stat_result) -> None:
        if os.path.lexists(dest_host) and not os.path.isdir(dest_host) or os.path.islink(dest_host):
            remove_path(dest_host)
        if not os.path.isdir(dest_host):
            os.mkdir(dest_host, 0o700)
        self.copy_dir_contents(source, dest_host)
        self._set_metadata(source, dest_host, st)

    def _copy_node(self, source: str, dest_host: str, st: os.stat_result) -> None:
        if os.path.lexists(dest_host):
            remove_path(dest_host)
        key = (st.st_dev, st.st_ino)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in self._links:
            os.link(self._links[key], dest_host)  # hard links within one copy stay hard links
            return
        if stat.S_ISREG(st.st_mode):
            with open(source, "rb") as src:
                fd = os.open(dest_host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            if st.st_nlink > 1:
                self._links[key] = dest_host
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), dest_host)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            os.mknod(dest_host, st.st_mode, st.st_rdev)
        else:
            return  # sockets are skipped, as docker does
        self._set_metadata(source, dest_host, st)

    def _set_metadata(self, source: str, dest_host: str, st: os.stat_result) -> None:
        if self.options.owner is not None:
            uid, gid = self.options.owner
        elif self.options.keep_source_owner:
            uid, gid = st.st_uid, st.st_gid
        else:
            uid, gid = 0, 0
        os.chown(dest_host, uid, gid, follow_symlinks=False)
        if self.options.keep_source_owner:
            for name in _xattr_names(source):
                try:
                    os.setxattr(dest_host, name, os.getxattr(source, name, follow_symlinks=False),
                                follow_symlinks=False)
                except OSError:
                    pass
        if not stat.S_ISLNK(st.st_mode):
            mode = self.options.mode if self.options.mode is not None else stat.S_IMODE(st.st_mode)
            os.chmod(dest_host, mode)
        os.utime(dest_host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _xattr_names(path: str) -> list[str]:
    try:
        return [n for n in os.listxattr(path, follow_symlinks=False)
                if not n.startswith("trusted.overlay.") and n != "security.selinux"]
    except OSError:
        return []


def parse_chmod(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise ValueError(f"invalid --chmod={text}: expected an octal mode such as 0755") from None
    if value > 0o7777:
        raise ValueError(f"invalid --chmod={text}: mode out of range")
    return value


def is_archive(path: str) -> bool:
    """ADD extracts local tar archives (plain, gzip, bzip2, xz), detected by content, not name."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def extract_archive(path: str, root: str, dest_image_path: str) -> None:
    """Extract a local tar into dest inside root, merging with what is there (docker's ADD semantics).
    Members are written by the same code that applies layers; paths resolve inside the root."""
    base = posixpath.join("/", clean(dest_image_path)).rstrip("/")
    copier = Copier(root, CopyOptions())
    dir_times: list[tuple[str, float]] = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = clean(member.name)
                if not name:
                    continue
                copier.ensure_dir(posixpath.dirname(f"{base}/{name}"))
                target = resolve_in_root(root, f"{base}/{name}", follow_final=False)
                write_member(archive, member, target,
                             lambda link: resolve_in_root(root, f"{base}/{clean(link)}", follow_final=False))
                if member.isdir():
                    dir_times.append((target, member.mtime))
    except (tarfile.TarError, PathEscape, LayerError) as exc:
        message = exc.message if isinstance(exc, LayerError) else str(exc)
        raise StepFailed(f"cannot extract {os.path.basename(path)}: {message}") from None
    for target, mtime in reversed(dir_times):  # last: writing into a directory changes its time
        os.utime(target, (mtime, mtime), follow_symlinks=False)


def download(url: str, dest_file: str) -> float | None:
    """Fetch a URL for ADD into dest_file; returns the Last-Modified time (docker uses it as mtime)."""
    import requests

    try:
        with requests.get(url, stream=True, timeout=60) as response:
            if response.status_code != 200:
                raise ContextError(f"ADD cannot download {url}: HTTP {response.status_code}",
                                   hint="check the URL; ADD only follows plain GETs")
            with open(dest_file, "wb") as out:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
            modified = response.headers.get("Last-Modified")
    except requests.RequestException as exc:
        raise ContextError(f"ADD cannot download {url}: {exc.__class__.__name__}",
                           hint="check the URL and the network") from None
    if modified:
        parsed = email.utils.parsedate_to_datetime(modified)
        return parsed.timestamp() if parsed else None
    return None
