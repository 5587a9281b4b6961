"""Normalized views of root filesystems and image configs, for comparing dockyard's output with buildah's.

* ``flatten(rootfs) -> {"/etc/passwd": Entry, ...}`` walks an unpacked rootfs with lstat (never following a
  symlink); the rootfs itself is "/".
* ``diff_trees(a, b, ignore=...) -> [str]`` lists differences in type, mode, owner, size, content, link target,
  device number and xattrs (mtimes are recorded but never compared: builders legitimately differ there).
* ``compare_configs(a_cfg, b_cfg) -> [str]`` compares the ``config`` sections of two raw image configs
  (as ``oracle.inspect`` returns them), with only the documented builder differences normalized away.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

# xattrs never compared: security.selinux is set by the host's policy on whatever the unpacker writes, not
# carried by the image.
IGNORED_XATTRS = frozenset({"security.selinux"})


@dataclass(frozen=True)
class Entry:
    path: str  # absolute inside the rootfs: "/etc/passwd"; the root itself is "/"
    type: str  # 'f' file, 'd' dir, 'l' symlink, 'c' char dev, 'b' block dev, 'p' fifo, 's' socket
    mode: int  # permission bits including setuid/setgid/sticky (stat.S_IMODE)
    uid: int
    gid: int
    size: int = 0  # regular files only; 0 for everything else
    sha256: str | None = None  # regular files only
    link: str | None = None  # symlinks only: the target as stored
    rdev: tuple[int, int] | None = None  # devices only: (major, minor)
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    nlink: int = field(default=1, compare=False)  # informational: hard links show as nlink > 1
    mtime: int = field(default=0, compare=False)  # informational, never compared

    def describe(self) -> str:
        s = f"{self.type} {self.mode:04o} {self.uid}:{self.gid}"
        if self.type == "f":
            s += f" size={self.size} sha256={self.sha256[:12] if self.sha256 else None}"
        if self.type == "l":
            s += f" -> {self.link}"
        if self.rdev is not None:
            s += f" rdev={self.rdev[0]},{self.rdev[1]}"
        if self.xattrs:
            s += f" xattrs={sorted(self.xattrs)}"
        return s


def _type_of(st_mode: int) -> str:
    for test, letter in ((stat.S_ISREG, "f"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"),
                         (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s")):
        if test(st_mode):
            return letter
    raise ValueError(f"unknown file type {st_mode:o}")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    # O_NOFOLLOW: the walk never follows a symlink, even if the file was swapped for one meanwhile.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # filesystem without xattr support, or symlink xattrs unsupported
        return {}
    out = {}
    for name in sorted(names):
        if name in IGNORED_XATTRS:
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def entry_for(full: str, rel: str) -> Entry:
    st = os.lstat(full)
    kind = _type_of(st.st_mode)
    return Entry(
        path=rel,
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size if kind == "f" else 0,
        sha256=_sha256(full) if kind == "f" else None,
        link=os.readlink(full) if kind == "l" else None,
        rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("c", "b") else None,
        xattrs=_xattrs(full),
        nlink=st.st_nlink,
        mtime=int(st.st_mtime),
    )


def flatten(rootfs: Path) -> dict[str, Entry]:
    """Every path under ``rootfs`` (and "/" itself) mapped to its Entry; symlinks are never followed."""
    root = os.fspath(rootfs)
    if not os.path.isdir(root) or os.path.islink(root):
        raise NotADirectoryError(root)
    out: dict[str, Entry] = {"/": entry_for(root, "/")}
    stack = [(root, "")]
    while stack:
        dir_full, dir_rel = stack.pop()
        with os.scandir(dir_full) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            rel = f"{dir_rel}/{child.name}"
            e = entry_for(child.path, rel)
            out[rel] = e
            if e.type == "d":  # lstat said directory: a symlink to a directory is an 'l' and is not entered
                stack.append((child.path, rel))
    return dict(sorted(out.items()))


def _ignored(path: str, ignore: Iterable[str]) -> bool:
    # Exact match first: applet names like "/bin/[" are not valid glob patterns of themselves.
    return any(path == pat or fnmatch.fnmatchcase(path, pat) for pat in ignore)


# Paths diff_trees skips unless told otherwise: none.  Callers comparing with buildah add buildah_run_stubs().
DEFAULT_IGNORE: frozenset[str] = frozenset()

# The mount targets of buildah's chroot isolation during RUN.  buildah 1.28 creates those missing from the rootfs
# and leaves them in the RUN layer (empty files and 0755 directories, see finding 2 in oracle.py); docker does not.
BUILDAH_RUN_STUBS: frozenset[str] = frozenset(
    {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run", "/dev", "/proc", "/sys"}
)


def buildah_run_stubs(base_tree: Mapping[str, Entry]) -> set[str]:
    """The stub paths a buildah RUN on ``base_tree`` may have added: BUILDAH_RUN_STUBS not in the base.

    Pass them as ``ignore`` to diff_trees when comparing a buildah-built image with a dockyard-built one (or
    with its base).  Only the stubs themselves are ignored, never anything below them.
    """
    return {p for p in BUILDAH_RUN_STUBS if p not in base_tree}


def buildah_stubs_left(ours: Mapping[str, Entry], theirs: Mapping[str, Entry]) -> set[str]:
    """The BUILDAH_RUN_STUBS that only buildah's image has, and that look like stubs (an empty file, an empty
    directory): what to ignore when the base a case started from is not known (multi-stage, FROM scratch).

    A stub path that dockyard's image also has, or that holds content, is compared as usual.
    """
    def is_stub(path: str) -> bool:
        entry = theirs[path]
        if entry.type == "f":
            return entry.size == 0
        return entry.type == "d" and not any(p.startswith(path + "/") for p in theirs)

    return {p for p in BUILDAH_RUN_STUBS if p in theirs and p not in ours and is_stub(p)}


_COMPARED = ("type", "mode", "uid", "gid", "size", "sha256", "link", "rdev", "xattrs")


def diff_trees(a: Mapping[str, Entry], b: Mapping[str, Entry], ignore: Iterable[str] = DEFAULT_IGNORE,
               a_name: str = "a", b_name: str = "b") -> list[str]:
    """Human-readable differences between two flattened trees; empty when they agree.

    ``ignore`` holds paths or fnmatch globs ("/var/cache/*" matches everything below /var/cache).
    """
    ignore = tuple(ignore)
    out = []
    for path in sorted(set(a) | set(b)):
        if _ignored(path, ignore):
            continue
        ea, eb = a.get(path), b.get(path)
        if ea is None:
            assert eb is not None  # the path is in one of the two
            out.append(f"{path}: only in {b_name} ({eb.describe()})")
        elif eb is None:
            out.append(f"{path}: only in {a_name} ({ea.describe()})")
        else:
            for name in _COMPARED:
                va, vb = getattr(ea, name), getattr(eb, name)
                if va != vb:
                    if name == "mode":
                        va, vb = f"{va:04o}", f"{vb:04o}"
                    out.append(f"{path}: {name} differs: {a_name}={va!r} {b_name}={vb!r}")
    return out


# ---------------------------------------------------------------------------------------------- configs

CONFIG_FIELDS = (
    "Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal",
    "Healthcheck", "OnBuild", "Shell",
)

# buildah stamps every image it builds with this label (its version); docker adds no label at all, so the
# label is the builder's signature, not part of what the Dockerfile asked for.
BUILDER_LABELS = frozenset({"io.buildah.version"})


def normalize_config_field(name: str, value):
    """One config field with the documented builder differences normalized (see compare_configs)."""
    if name == "Labels" and isinstance(value, dict):
        # Documented builder difference: drop buildah's own version label (see BUILDER_LABELS).
        value = {k: v for k, v in value.items() if k not in BUILDER_LABELS}
    # Documented builder difference: docker's and buildah's encoders differ in whether an unset field is
    # omitted, written as null, or written as an empty map/list ("Volumes": null vs absent vs {}; buildah's
    # --format docker writes "Entrypoint": [] and "OnBuild": [] where docker writes null); all mean "nothing
    # set", so they compare equal.  Likewise "" for the string fields (User, WorkingDir, StopSignal): the
    # docker config's Go struct has no omitempty on them, so docker and buildah write "" for unset where the
    # OCI config omits the key.  A non-empty value (including [""]) is never normalized.
    if value is None or value == {} or value == [] or value == "":
        return None
    return value


def compare_configs(a_cfg: Mapping, b_cfg: Mapping, fields_: Iterable[str] = CONFIG_FIELDS,
                    a_name: str = "a", b_name: str = "b") -> list[str]:
    """Differences between the ``config`` sections of two raw image configs (e.g. from oracle.inspect).

    Only ``io.buildah.version`` in Labels and null/missing/empty ({} [] "") are normalized; everything else
    (Env order, Cmd vs Entrypoint, Healthcheck durations...) must match exactly.
    """
    ca = a_cfg.get("config") or {}
    cb = b_cfg.get("config") or {}
    out = []
    for name in fields_:
        va, vb = normalize_config_field(name, ca.get(name)), normalize_config_field(name, cb.get(name))
        if va != vb:
            out.append(f"config.{name} differs: {a_name}={va!r} {b_name}={vb!r}")
    return out


__all__ = [
    "Entry", "flatten", "diff_trees", "compare_configs", "entry_for", "DEFAULT_IGNORE", "BUILDAH_RUN_STUBS",
    "buildah_run_stubs", "buildah_stubs_left", "normalize_config_field",
    "CONFIG_FIELDS", "BUILDER_LABELS", "IGNORED_XATTRS",
]
