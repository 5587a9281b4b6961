"""Base images the tests make themselves, independently of dockyard.

The layers, configs, manifests and the OCI layout around them are written by hand here with tarfile, gzip and
json, and pushed with skopeo, so that a bug in dockyard's own image writing cannot hide inside the base image
that dockyard's tests build on.  Everything is deterministic (fixed mtimes, sorted entries, numeric owners only,
gzip header without name or time), so two runs produce the same digests.

Public API:

* ``push_busybox_base(registry_host, workdir) -> "HOST/base/busybox:1"`` (linux/amd64, single manifest)
* ``push_multiplatform_base(registry_host, workdir) -> "HOST/base/multiplatform:1"`` (OCI index with
  linux/amd64 and linux/arm64/v8; each platform has the busybox layer plus a layer with ``/etc/platform``)
* ``push_fidelity_base(registry_host, workdir) -> "HOST/base/fidelity:1"`` (linux/amd64: the busybox layer plus
  three layers with what only base images carry, below)
* ``busybox_layer()`` / ``LayerBlob`` for tests that want to assemble their own images from the same parts
  (and ``fidelity_*_layer()`` for the fidelity base's layers).

What the busybox base contains (the tests rely on these):

* ``/bin/busybox`` (Debian's busybox-static, statically linked amd64) and ``/bin/NAME -> busybox`` for every
  applet of ``busybox --list`` (sh, ls, cat, echo, mkdir, rm, touch, chmod, chown, id, sed, stat, find, ln, ...)
* empty ``/sbin``, ``/usr/bin``, ``/usr/sbin``, ``/usr/local/bin``, ``/usr/local/sbin``
* ``/etc/passwd``: root 0:0 (/root, /bin/sh), nobody 65534:65534, app 1000:1000 (/home/app, /bin/sh)
* ``/etc/group``: root 0, staff 50 (member app), nogroup 65534, app 1000
* ``/tmp`` 1777, ``/root`` 0700, ``/home/app`` 0755 owned 1000:1000 with ``/home/app/.profile`` (1000:1000)
* ``/dev`` 0755, ``/proc`` 0555, ``/sys`` 0555 (empty, as in Debian's images), ``/var/empty`` 0755
* deletion targets for whiteout tests: ``/etc/remove-me`` and ``/opt/old/`` holding ``a.txt`` and ``b.txt``
* no ``/etc/hosts``, ``/etc/resolv.conf`` or ``/etc/hostname`` (so builder-added ones are visible)
* config: amd64/linux, ``Env=[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]``,
  ``Cmd=["sh"]``, one history entry.

What the fidelity base adds under ``/fid`` (layer 2 = specials, 3 = changes, 4 = back again; the flattened
result is what the corpus's ``fs-*`` cases rely on):

* ``dev/null`` char device 1,3 (0666), ``dev/loop`` block device 7,0 (0660, group 6), ``fifo`` (0640)
* ``suid`` 4755, ``sgid`` 2755 group 50, ``sgid-dir/`` 2775 group 50, ``sticky/`` 1777, ``owned`` 0640 1000:50
* ``cap``: ``security.capability`` = cap_net_bind_service+ep; ``user-xattr``: ``user.comment`` = "fidelity"
  (both as PAX ``SCHILY.xattr.*`` records)
* ``hardlink/orig`` (layer 2) and ``hardlink/link``, a hardlink to it written in layer 3
* ``replace/dir-to-file``: dir (2) -> file (3, no whiteout) -> dir with ``back`` (4);
  ``replace/dir-to-link``: dir (2) -> whiteout + symlink to ../churn (3) -> whiteout + dir with ``back`` (4);
  ``replace/file-to-dir``: file (2) -> dir with ``child`` (3);
  ``replace/link-to-dir``: symlink to ../../etc (2) -> dir with ``child`` (3): must never land in /etc
* ``churn/``: ``kept``; ``removed`` (whited out in 3); ``readded`` ("first version", whited out in 3, back as
  "second version" in 4)
* ``opaque/``: ``old`` and ``sub/old`` (2) hidden by ``.wh..wh..opq`` in 3, which adds ``new``
* ``reparent/``: re-declared 0750 1000:1000 in 3 together with ``.wh.gone`` under it: ``keep`` (2), ``new`` (3)
* ``swap/``: whited out and re-created (0700, ``fresh``) in the same layer 3: ``old`` is gone
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import struct
import subprocess
import tarfile
import threading
import uuid
from dataclasses import dataclass

# The image *model* types only (plain data); the base images below are never built by dockyard's builder.
from dockyard.image.blobs import BlobStore
from dockyard.image.model import (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, HistoryEntry, Image,
                                  Layer, sha256_digest)
from pathlib import Path

from tests.support.oracle import run_tool

BUSYBOX_BINARY = Path("/bin/busybox")  # Debian package busybox-static
MTIME = 1704067200  # 2024-01-01T00:00:00Z: every entry gets this mtime so layer digests are reproducible
CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

BUSYBOX_REPO = "base/busybox"
BUSYBOX_TAG = "1"
MULTIPLATFORM_REPO = "base/multiplatform"
MULTIPLATFORM_TAG = "1"

# Applets the tests use; push_busybox_base fails loudly if busybox --list lacks one.
REQUIRED_APPLETS = (
    "sh", "ls", "cat", "echo", "mkdir", "rm", "touch", "chmod", "chown", "id", "sed", "stat", "find", "ln",
    "sleep", "env", "wc", "true", "false", "test",
)

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
GROUP = (
    "root:x:0:\n"
    "staff:x:50:app\n"
    "nogroup:x:65534:\n"
    "app:x:1000:\n"
)

MT_OCI_LAYOUT = "application/vnd.oci.image.layout.v1.0.0"  # not a media type, the layout version string
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

SKOPEO_TIMEOUT = 300

_cache: dict[tuple[str, ...], str] = {}
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerBlob:
    """One gzip-compressed layer: ``blob`` is what goes into blobs/, ``diff_id`` is the digest of the tar."""

    blob: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.blob).hexdigest()


class _LayerWriter:
    """Writes a deterministic layer tar: numeric owners only, fixed mtime, entries in the order added."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)
        self._seen: set[str] = set()

    def _info(self, path: str, kind: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        name = path.strip("/")
        if name in self._seen:
            raise ValueError(f"duplicate layer entry {path}")
        self._seen.add(name)
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""  # numeric owners only: extractors must not map names through the host
        info.mtime = MTIME
        return info

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self._tar.addfile(self._info(path, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        info = self._info(path, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def symlink(self, path: str, target: str) -> None:
        info = self._info(path, tarfile.SYMTYPE, 0o777, 0, 0)
        info.linkname = target
        self._tar.addfile(info)

    def xattr_file(self, path: str, data: bytes, xattrs: dict[str, bytes], mode: int = 0o644) -> None:
        """A file carrying xattrs as PAX ``SCHILY.xattr.NAME`` records (how docker and BuildKit store them)."""
        info = self._info(path, tarfile.REGTYPE, mode, 0, 0)
        info.size = len(data)
        # surrogateescape keeps any byte value intact through tarfile's str-typed PAX headers.
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
        self._tar.addfile(info, io.BytesIO(data))

    def device(self, path: str, kind: bytes, major: int, minor: int, mode: int, gid: int = 0) -> None:
        info = self._info(path, kind, mode, 0, gid)
        info.devmajor, info.devminor = major, minor
        self._tar.addfile(info)

    def fifo(self, path: str, mode: int = 0o644) -> None:
        self._tar.addfile(self._info(path, tarfile.FIFOTYPE, mode, 0, 0))

    def hardlink(self, path: str, target: str) -> None:
        """A hardlink entry; ``target`` may be a file of a lower layer (the extractor links to what it finds)."""
        info = self._info(path, tarfile.LNKTYPE, 0o644, 0, 0)
        info.linkname = target.strip("/")
        self._tar.addfile(info)

    def whiteout(self, path: str) -> None:
        """Deletes ``path`` of the lower layers: an empty ``.wh.NAME`` in its parent."""
        parent, _, name = path.strip("/").rpartition("/")
        self._tar.addfile(self._info(f"{parent}/.wh.{name}" if parent else f".wh.{name}", tarfile.REGTYPE,
                                     0o644, 0, 0))

    def opaque(self, directory: str) -> None:
        """Hides everything the lower layers have below ``directory`` (which this layer must also declare)."""
        self._tar.addfile(self._info(f"{directory.strip('/')}/.wh..wh..opq", tarfile.REGTYPE, 0o644, 0, 0))

    def finish(self) -> LayerBlob:
        self._tar.close()
        raw = self._buf.getvalue()
        gz = io.BytesIO()
        # filename="" and mtime=0 keep the gzip header free of anything that varies between runs.
        with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as f:
            f.write(raw)
        return LayerBlob(blob=gz.getvalue(), diff_id="sha256:" + hashlib.sha256(raw).hexdigest())


def busybox_applets(command: tuple[str, ...] = (str(BUSYBOX_BINARY),)) -> list[str]:
    """The applets of the busybox `command` runs (a foreign one through its QEMU emulator)."""
    out = subprocess.run(
        [*command, "--list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    applets = sorted({a.strip() for a in out.split() if a.strip() and a.strip() != "busybox" and "/" not in a})
    missing = [a for a in REQUIRED_APPLETS if a not in applets]
    if missing:
        raise RuntimeError(f"{command[-1]} lacks applets the tests need: {missing}")
    return applets


def busybox_layer(binary: bytes | None = None, applets: list[str] | None = None) -> LayerBlob:
    """The busybox root filesystem layer described in the module docstring (with another CPU's busybox
    `binary` and its `applets`, for tests/support/foreign_images.py)."""
    if binary is None and not BUSYBOX_BINARY.is_file():
        raise RuntimeError(f"{BUSYBOX_BINARY} missing: apt-get install -y busybox-static")
    w = _LayerWriter()
    # Every parent directory gets its own entry, before its children (as real distro layers have).
    w.dir("bin")
    w.file("bin/busybox", BUSYBOX_BINARY.read_bytes() if binary is None else binary, mode=0o755)
    for applet in busybox_applets() if applets is None else applets:
        w.symlink(f"bin/{applet}", "busybox")
    w.dir("dev")
    w.dir("etc")
    w.file("etc/group", GROUP.encode())
    w.file("etc/passwd", PASSWD.encode())
    w.file("etc/remove-me", b"this file is deleted by a RUN in the tests (whiteout)\n")
    w.dir("home")
    w.dir("home/app", uid=1000, gid=1000)
    w.file("home/app/.profile", b"export PS1='app$ '\n", uid=1000, gid=1000)
    w.dir("opt")
    w.dir("opt/old")
    w.file("opt/old/a.txt", b"old a\n")
    w.file("opt/old/b.txt", b"old b\n")
    w.dir("proc", mode=0o555)
    w.dir("root", mode=0o700)
    w.dir("sbin")
    w.dir("sys", mode=0o555)
    w.dir("tmp", mode=0o1777)
    w.dir("usr")
    w.dir("usr/bin")
    w.dir("usr/local")
    w.dir("usr/local/bin")
    w.dir("usr/local/sbin")
    w.dir("usr/sbin")
    w.dir("var")
    w.dir("var/empty")
    return w.finish()


def platform_marker_layer(platform: str) -> LayerBlob:
    """A layer holding only ``/etc/`` and ``/etc/platform`` containing ``platform`` (e.g. "linux/arm64/v8")."""
    w = _LayerWriter()
    w.dir("etc")
    w.file("etc/platform", (platform + "\n").encode())
    return w.finish()


# The security.capability value of `setcap cap_net_bind_service+ep` (VFS_CAP_REVISION_2, effective flag set,
# permitted = 1 << CAP_NET_BIND_SERVICE): struct vfs_cap_data as the kernel stores it, little-endian.
CAP_NET_BIND_SERVICE_EP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
USER_XATTR = {"user.comment": b"fidelity"}


def fidelity_specials_layer() -> LayerBlob:
    """Layer 2 of the fidelity base: special files, special bits, xattrs, and what layers 3-4 change."""
    w = _LayerWriter()
    w.dir("fid")
    w.dir("fid/dev")
    w.device("fid/dev/null", tarfile.CHRTYPE, 1, 3, 0o666)
    w.device("fid/dev/loop", tarfile.BLKTYPE, 7, 0, 0o660, gid=6)
    w.fifo("fid/fifo", 0o640)
    w.file("fid/suid", b"#!/bin/sh\necho suid\n", mode=0o4755)
    w.file("fid/sgid", b"#!/bin/sh\necho sgid\n", mode=0o2755, gid=50)
    w.dir("fid/sgid-dir", mode=0o2775, gid=50)
    w.dir("fid/sticky", mode=0o1777)
    w.file("fid/owned", b"owned by app, group staff\n", mode=0o640, uid=1000, gid=50)
    w.xattr_file("fid/cap", b"#!/bin/sh\necho cap\n", {"security.capability": CAP_NET_BIND_SERVICE_EP}, 0o755)
    w.xattr_file("fid/user-xattr", b"user xattr\n", USER_XATTR)
    w.dir("fid/hardlink")
    w.file("fid/hardlink/orig", b"one inode, two names\n")
    w.dir("fid/replace")
    w.dir("fid/replace/dir-to-file")
    w.file("fid/replace/dir-to-file/old", b"old child of a dir that becomes a file\n")
    w.dir("fid/replace/dir-to-link")
    w.file("fid/replace/dir-to-link/old", b"old child of a dir that becomes a symlink\n")
    w.file("fid/replace/file-to-dir", b"a file that becomes a directory\n")
    # A symlink out of the rootfs's /fid tree: an extractor that follows it would write into /etc.
    w.symlink("fid/replace/link-to-dir", "../../etc")
    w.dir("fid/churn")
    w.file("fid/churn/kept", b"kept\n")
    w.file("fid/churn/removed", b"removed in layer 3\n")
    w.file("fid/churn/readded", b"first version\n")
    w.dir("fid/opaque")
    w.file("fid/opaque/old", b"hidden by the opaque whiteout of layer 3\n")
    w.dir("fid/opaque/sub")
    w.file("fid/opaque/sub/old", b"hidden too\n")
    w.dir("fid/reparent")
    w.file("fid/reparent/keep", b"kept under a re-declared parent\n")
    w.file("fid/reparent/gone", b"whited out under a re-declared parent\n")
    w.dir("fid/swap")
    w.file("fid/swap/old", b"gone: fid/swap is deleted and re-created in layer 3\n")
    return w.finish()


def fidelity_changes_layer() -> LayerBlob:
    """Layer 3: a cross-layer hardlink, type replacements, whiteouts, an opaque directory."""
    w = _LayerWriter()
    w.dir("fid")
    w.dir("fid/hardlink")
    w.hardlink("fid/hardlink/link", "fid/hardlink/orig")
    w.dir("fid/replace")
    w.file("fid/replace/dir-to-file", b"was a directory\n")  # implicit replacement: no whiteout
    w.whiteout("fid/replace/dir-to-link")  # explicit replacement: whiteout, then the new entry
    w.symlink("fid/replace/dir-to-link", "../churn")
    w.dir("fid/replace/file-to-dir")
    w.file("fid/replace/file-to-dir/child", b"child of a file turned directory\n")
    w.dir("fid/replace/link-to-dir")
    w.file("fid/replace/link-to-dir/child", b"must land in /fid, not in /etc\n")
    w.dir("fid/churn")
    w.whiteout("fid/churn/removed")
    w.whiteout("fid/churn/readded")
    w.dir("fid/opaque")
    w.opaque("fid/opaque")
    w.file("fid/opaque/new", b"the only file left in fid/opaque\n")
    w.dir("fid/reparent", mode=0o750, uid=1000, gid=1000)  # the parent's metadata changes in this layer ...
    w.whiteout("fid/reparent/gone")  # ... and a path under it is deleted in the same layer
    w.file("fid/reparent/new", b"added under a re-declared parent\n")
    w.whiteout("fid/swap")  # deleted and re-created in the same layer: only the new content remains
    w.dir("fid/swap", mode=0o700)
    w.file("fid/swap/fresh", b"fresh\n")
    return w.finish()


def fidelity_back_again_layer() -> LayerBlob:
    """Layer 4: the replaced paths turn back into directories, a deleted file comes back."""
    w = _LayerWriter()
    w.dir("fid")
    w.dir("fid/replace")
    w.dir("fid/replace/dir-to-file")
    w.file("fid/replace/dir-to-file/back", b"a directory again\n")
    w.whiteout("fid/replace/dir-to-link")
    w.dir("fid/replace/dir-to-link")
    w.file("fid/replace/dir-to-link/back", b"a directory again\n")
    w.dir("fid/churn")
    w.file("fid/churn/readded", b"second version\n")
    return w.finish()


# ---------------------------------------------------------------------------------------------- OCI layout


class _Layout:
    """A hand-written OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        if root.exists():
            shutil.rmtree(root)
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.root = root

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data), **extra}

    def json_blob(self, obj: dict, media_type: str, **extra) -> dict:
        return self.blob(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), media_type, **extra)

    def image(self, layers: list[LayerBlob], config: dict, **extra) -> dict:
        """Writes layers, config and manifest; returns the manifest's descriptor."""
        config = dict(config)
        config["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": self.json_blob(config, MT_CONFIG),
            "layers": [self.blob(layer.blob, MT_LAYER_GZIP) for layer in layers],
        }
        return self.json_blob(manifest, MT_MANIFEST, **extra)

    def index(self, manifests: list[dict], **extra) -> dict:
        return self.json_blob({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}, MT_INDEX, **extra)

    def tag(self, descriptor: dict, tag: str) -> None:
        descriptor = dict(descriptor)
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        (self.root / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [descriptor]}, indent=1)
        )


def _config(architecture: str, variant: str | None, history: list[dict]) -> dict:
    cfg: dict = {
        "created": CREATED,
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "history": history,
    }
    if variant:
        cfg["variant"] = variant
    return cfg


_BUSYBOX_HISTORY = {
    "created": CREATED,
    "created_by": "tests/support/images.py: busybox-static rootfs (hand-written layer)",
    "comment": "test base image, not built by dockyard",
}


def _skopeo_push(layout: Path, tag: str, dest_ref: str, all_images: bool, workdir: Path) -> None:
    cmd = ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false"]
    if all_images:
        cmd.append("--all")
    cmd += [f"oci:{layout}:{tag}", f"docker://{dest_ref}"]
    run_tool(cmd, timeout=SKOPEO_TIMEOUT, cwd=workdir)


# ---------------------------------------------------------------------------------------------- public


def push_busybox_base(registry_host: str, workdir: Path) -> str:
    """Builds the busybox base as an OCI layout under ``workdir`` and pushes it; returns "HOST/base/busybox:1".

    Cached per registry host within the process: later calls return the reference without pushing again.
    """
    ref = f"{registry_host}/{BUSYBOX_REPO}:{BUSYBOX_TAG}"
    with _lock:
        if _cache.get(("busybox", registry_host)) == ref:
            return ref
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        layout = _Layout(workdir / "busybox-oci")
        desc = layout.image([busybox_layer()], _config("amd64", None, [_BUSYBOX_HISTORY]))
        layout.tag(desc, BUSYBOX_TAG)
        _skopeo_push(layout.root, BUSYBOX_TAG, ref, all_images=False, workdir=workdir)
        _cache[("busybox", registry_host)] = ref
        return ref


MULTIPLATFORM_PLATFORMS = (("amd64", None), ("arm64", "v8"))


def push_multiplatform_base(registry_host: str, workdir: Path) -> str:
    """Pushes an OCI index with linux/amd64 and linux/arm64/v8 images; returns "HOST/base/multiplatform:1".

    Both images share the busybox layer (the amd64 binary: the arm64 image is only ever selected, never run)
    and have a second layer with ``/etc/platform`` holding "linux/amd64" or "linux/arm64/v8".
    Cached per registry host within the process.
    """
    ref = f"{registry_host}/{MULTIPLATFORM_REPO}:{MULTIPLATFORM_TAG}"
    with _lock:
        if _cache.get(("multiplatform", registry_host)) == ref:
            return ref
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        layout = _Layout(workdir / "multiplatform-oci")
        base = busybox_layer()
        manifests = []
        for arch, variant in MULTIPLATFORM_PLATFORMS:
            platform_str = "/".join(p for p in ("linux", arch, variant) if p)
            history = [
                _BUSYBOX_HISTORY,
                {"created": CREATED, "created_by": f"tests/support/images.py: /etc/platform = {platform_str}"},
            ]
            platform = {"architecture": arch, "os": "linux"}
            if variant:
                platform["variant"] = variant
            manifests.append(
                layout.image([base, platform_marker_layer(platform_str)], _config(arch, variant, history),
                             platform=platform)
            )
        layout.tag(layout.index(manifests), MULTIPLATFORM_TAG)
        _skopeo_push(layout.root, MULTIPLATFORM_TAG, ref, all_images=True, workdir=workdir)
        _cache[("multiplatform", registry_host)] = ref
        return ref


FIDELITY_REPO = "base/fidelity"
FIDELITY_TAG = "1"


def push_fidelity_base(registry_host: str, workdir: Path) -> str:
    """Pushes the busybox layer plus the three fidelity layers (module docstring); returns
    "HOST/base/fidelity:1".  Cached per registry host within the process."""
    ref = f"{registry_host}/{FIDELITY_REPO}:{FIDELITY_TAG}"
    with _lock:
        if _cache.get(("fidelity", registry_host)) == ref:
            return ref
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        layout = _Layout(workdir / "fidelity-oci")
        layers = [busybox_layer(), fidelity_specials_layer(), fidelity_changes_layer(), fidelity_back_again_layer()]
        history = [_BUSYBOX_HISTORY] + [
            {"created": CREATED, "created_by": f"tests/support/images.py: fidelity layer {n}"} for n in (2, 3, 4)
        ]
        desc = layout.image(layers, _config("amd64", None, history))
        layout.tag(desc, FIDELITY_TAG)
        _skopeo_push(layout.root, FIDELITY_TAG, ref, all_images=False, workdir=workdir)
        _cache[("fidelity", registry_host)] = ref
        return ref

def push_platform_images(registry_host: str, workdir: Path, repo: str, tag: str,
                         images: list[tuple[str, list[LayerBlob]]]) -> str:
    """Pushes (platform, layers) images as "HOST/REPO:TAG": one image manifest for one platform, an OCI index
    of them for several (each entry and config with its architecture and variant). Cached per registry host
    within the process."""
    ref = f"{registry_host}/{repo}:{tag}"
    with _lock:
        if _cache.get((repo, tag, registry_host)) == ref:
            return ref
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        layout = _Layout(workdir / f"{repo.replace('/', '-')}-oci")
        manifests = []
        for platform_text, layers in images:
            _, arch, *rest = platform_text.split("/")
            variant = rest[0] if rest else None
            platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
            history = [{"created": CREATED, "created_by": f"tests/support: {platform_text} layer {n + 1}",
                        "comment": "test base image, not built by dockyard"} for n in range(len(layers))]
            manifests.append(layout.image(layers, _config(arch, variant, history), platform=platform))
        top = manifests[0] if len(manifests) == 1 else layout.index(manifests)
        if len(manifests) == 1:
            top = {k: v for k, v in top.items() if k != "platform"}
        layout.tag(top, tag)
        _skopeo_push(layout.root, tag, ref, all_images=len(manifests) > 1, workdir=workdir)
        _cache[(repo, tag, registry_host)] = ref
        return ref


# --------------------------------------------------------------------------- small images as dockyard models


def one_layer_image(store: BlobStore, files: dict[str, bytes] | None = None, *, arch: str = "amd64",
                    manifest_type: str | None = None) -> Image:
    """A one-layer Image model whose layer is a tar.gz made here with tarfile+gzip, not by the builder
    (unique content unless `files` is given)."""
    manifest_type = manifest_type or OCI_MANIFEST
    files = files if files is not None else {"id": uuid.uuid4().hex.encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = buf.getvalue()
    compressed = gzip.compress(tar_bytes, mtime=0)
    digest = store.put_bytes(compressed)
    media = OCI_LAYER_GZIP if manifest_type == OCI_MANIFEST else DOCKER_LAYER_GZIP
    layer = Layer(Descriptor(media, digest, len(compressed)), sha256_digest(tar_bytes))
    image = Image(container_config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                  meta={"architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z"},
                  manifest_media_type=manifest_type)
    return image.with_layer(layer, HistoryEntry("COPY files /", created="2024-01-01T00:00:00Z"))
