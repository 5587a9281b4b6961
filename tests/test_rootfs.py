"""Layer application and snapshots on real overlay mounts (root, private mount namespace)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import LayerError
from dockyard.image.blobs import BlobStore
from dockyard.image.compression import open_decompressed
from dockyard.rootfs import RootFS, Workspace, mounted_step
from dockyard.rootfs.overlay import enter_private_mount_namespace
from dockyard.rootfs.snapshot import write_layer
from dockyard.rootfs.unpack import apply_layer
from tests.support import images, tree


def _tar(entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tf.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tf.addfile(info)
            else:
                payload = (data or "").encode()
                info.size, info.mode = len(payload), 0o644
                tf.addfile(info, io.BytesIO(payload))
    buf.seek(0)
    return buf


@pytest.fixture
def workspace(tmp_path):
    enter_private_mount_namespace()
    ws = Workspace(tmp_path / "ws")
    yield ws
    ws.cleanup()


def _apply(rootfs, ws, entries):
    with mounted_step(rootfs, ws) as step:
        apply_layer(_tar(entries), step.merged)
    return rootfs.with_layer(step.upper)


def _flat(rootfs, ws):
    with mounted_step(rootfs, ws) as step:
        found = {}
        for top, dirs, files in os.walk(step.merged):
            for name in dirs + files:
                path = os.path.join(top, name)
                rel = os.path.relpath(path, step.merged)
                found[rel] = os.readlink(path) if os.path.islink(path) else (
                    open(path).read() if os.path.isfile(path) else "<dir>")
        return found


def test_whiteouts_and_opaque_dirs(workspace):
    fs = _apply(RootFS(), workspace, [("etc", "dir", None), ("etc/a", "file", "a"), ("etc/b", "file", "b"),
                                       ("opt", "dir", None), ("opt/x", "file", "x"), ("opt/sub", "dir", None),
                                       ("opt/sub/y", "file", "y")])
    fs = _apply(fs, workspace, [("etc/.wh.a", "file", None), ("opt/.wh..wh..opq", "file", None),
                                ("opt/new", "file", "new")])
    flat = _flat(fs, workspace)
    assert "etc/a" not in flat and flat["etc/b"] == "b"
    assert flat["opt/new"] == "new" and "opt/x" not in flat and "opt/sub" not in flat


def test_whiteout_in_same_layer_does_not_hide_that_layer(workspace):
    fs = _apply(RootFS(), workspace, [("d", "dir", None), ("d/f", "file", "keep"), ("d/.wh.f", "file", None)])
    assert _flat(fs, workspace)["d/f"] == "keep"


def test_traversal_entries_are_refused(workspace, tmp_path):
    with pytest.raises(LayerError):
        _apply(RootFS(), workspace, [("../../escape", "file", "x")])
    assert not (tmp_path / "escape").exists()


def test_symlink_parent_cannot_lead_outside(workspace, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fs = _apply(RootFS(), workspace, [("evil", "sym", str(outside))])
    fs = _apply(fs, workspace, [("evil/pwned", "file", "x")])
    assert not (outside / "pwned").exists()
    # Resolved inside the root: the write went to <root>/<outside path>/pwned, within the image.
    assert _flat(fs, workspace)[os.path.join(str(outside).lstrip("/"), "pwned")] == "x"


def test_snapshot_round_trip(workspace, tmp_path):
    store = BlobStore(tmp_path / "store")
    base = _apply(RootFS(), workspace, [("etc", "dir", None), ("etc/gone", "file", "g"),
                                         ("data", "dir", None), ("data/old", "file", "o")])
    with mounted_step(base, workspace) as step:
        os.unlink(os.path.join(step.merged, "etc/gone"))
        import shutil
        shutil.rmtree(os.path.join(step.merged, "data"))
        os.mkdir(os.path.join(step.merged, "data"))
        with open(os.path.join(step.merged, "data/new"), "w") as f:
            f.write("n")
        os.link(os.path.join(step.merged, "data/new"), os.path.join(step.merged, "data/hard"))
    layer, stats = write_layer(step.upper, store)
    with store.open(layer.digest) as raw, tarfile.open(fileobj=open_decompressed(raw), mode="r|") as tf:
        members = {m.name: m for m in tf}
    assert "etc/.wh.gone" in members
    assert "data/.wh..wh..opq" in members  # the re-created directory hides everything below it
    assert members["data/hard"].islnk() or members["data/new"].islnk()
    # diff_id is the sha256 of the uncompressed tar we just read
    import hashlib
    with store.open(layer.digest) as raw:
        assert "sha256:" + hashlib.sha256(open_decompressed(raw).read()).hexdigest() == layer.diff_id
    # and applying the layer back gives the same view
    again = _apply(base, workspace, [])
    assert again is not None


# ---------------------------------------------------------------------------------------------- fidelity base


def _apply_blob(rootfs, ws, blob) -> RootFS:
    with mounted_step(rootfs, ws) as step:
        apply_layer(io.BytesIO(gzip.decompress(blob.blob)), step.merged)
    return rootfs.with_layer(step.upper)


@pytest.fixture
def fidelity_rootfs(workspace):
    """The fidelity base's layers (tests/support/images.py), applied one by one as a pull does."""
    fs = RootFS()
    for blob in (images.busybox_layer(), images.fidelity_specials_layer(), images.fidelity_changes_layer(),
                 images.fidelity_back_again_layer()):
        fs = _apply_blob(fs, workspace, blob)
    return fs


def test_fidelity_layers_unpack_to_the_documented_tree(fidelity_rootfs, workspace):
    with mounted_step(fidelity_rootfs, workspace) as step:
        flat = tree.flatten(Path(step.merged))
    assert flat["/fid/dev/null"].type == "c" and flat["/fid/dev/null"].rdev == (1, 3)
    assert flat["/fid/dev/loop"].type == "b" and (flat["/fid/dev/loop"].gid, flat["/fid/dev/loop"].mode) == \
        (6, 0o660)
    assert flat["/fid/fifo"].type == "p" and flat["/fid/fifo"].mode == 0o640
    assert [flat[p].mode for p in ("/fid/suid", "/fid/sgid", "/fid/sgid-dir", "/fid/sticky")] == \
        [0o4755, 0o2755, 0o2775, 0o1777]
    assert flat["/fid/cap"].xattrs == {"security.capability": images.CAP_NET_BIND_SERVICE_EP}
    assert flat["/fid/user-xattr"].xattrs == images.USER_XATTR
    assert (flat["/fid/owned"].uid, flat["/fid/owned"].gid) == (1000, 50)
    assert flat["/fid/hardlink/link"].nlink == 2
    assert flat["/fid/hardlink/link"].sha256 == flat["/fid/hardlink/orig"].sha256
    for replaced in ("dir-to-file", "dir-to-link", "file-to-dir", "link-to-dir"):
        assert flat[f"/fid/replace/{replaced}"].type == "d", replaced
    assert "/fid/replace/dir-to-file/old" not in flat and "/fid/replace/dir-to-link/old" not in flat
    assert "/etc/child" not in flat  # the symlink to ../../etc was replaced, never written through
    assert {p for p in flat if p.startswith("/fid/opaque/")} == {"/fid/opaque/new"}
    assert "/fid/churn/removed" not in flat and flat["/fid/churn/readded"].size == len("second version\n")
    assert {p for p in flat if p.startswith("/fid/reparent/")} == {"/fid/reparent/keep", "/fid/reparent/new"}
    assert (flat["/fid/reparent"].mode, flat["/fid/reparent"].uid) == (0o750, 1000)
    assert {p for p in flat if p.startswith("/fid/swap/")} == {"/fid/swap/fresh"}


def _layer_members(store, layer) -> dict[str, tarfile.TarInfo]:
    with store.open(layer.digest) as raw, tarfile.open(fileobj=open_decompressed(raw), mode="r|") as tf:
        return {m.name: m for m in tf}


def test_snapshot_of_a_link_to_a_lower_file_holds_both_names(fidelity_rootfs, workspace, tmp_path):
    store = BlobStore(tmp_path / "store")
    with mounted_step(fidelity_rootfs, workspace) as step:
        # overlayfs copies the lower target up first, so the upper dir has both names on one inode.
        os.link(os.path.join(step.merged, "fid/hardlink/orig"), os.path.join(step.merged, "fid/hardlink/third"))
    layer, _ = write_layer(step.upper, store)
    members = _layer_members(store, layer)
    assert members["fid/hardlink/orig"].isreg()
    assert members["fid/hardlink/orig"].size == len("one inode, two names\n")
    assert members["fid/hardlink/third"].islnk() and members["fid/hardlink/third"].linkname == "fid/hardlink/orig"
    with mounted_step(fidelity_rootfs.with_layer(step.upper), workspace) as check:
        flat = tree.flatten(Path(check.merged))
    assert flat["/fid/hardlink/third"].sha256 == flat["/fid/hardlink/link"].sha256


def test_snapshot_keeps_xattrs_special_bits_and_devices_of_copied_up_files(fidelity_rootfs, workspace, tmp_path):
    store = BlobStore(tmp_path / "store")
    with mounted_step(fidelity_rootfs, workspace) as step:
        merged = step.merged
        os.chmod(os.path.join(merged, "fid/cap"), 0o750)  # copy-up keeps the capability xattr
        os.chmod(os.path.join(merged, "fid/user-xattr"), 0o600)
        os.utime(os.path.join(merged, "fid/suid"))  # copy-up of a setuid file
        open(os.path.join(merged, "fid/dev/new"), "w").close()  # copy-up of the directory only
        os.mknod(os.path.join(merged, "fid/tty"), stat.S_IFCHR | 0o600, os.makedev(5, 0))
        os.chmod(os.path.join(merged, "fid/tty"), 0o620)  # not through mknod's mode: the umask would mask it
        os.mkfifo(os.path.join(merged, "fid/pipe"), 0o600)
    layer, _ = write_layer(step.upper, store)
    members = _layer_members(store, layer)
    assert members["fid/cap"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") \
        == images.CAP_NET_BIND_SERVICE_EP
    assert members["fid/user-xattr"].pax_headers["SCHILY.xattr.user.comment"] == "fidelity"
    assert members["fid/suid"].mode == 0o4755
    assert "fid/dev/null" not in members  # untouched nodes stay in the lower layer
    assert members["fid/tty"].ischr() and (members["fid/tty"].devmajor, members["fid/tty"].mode) == (5, 0o620)
    assert members["fid/pipe"].isfifo()


def test_snapshot_of_type_replacements_and_removals(fidelity_rootfs, workspace, tmp_path):
    store = BlobStore(tmp_path / "store")
    with mounted_step(fidelity_rootfs, workspace) as step:
        fid = os.path.join(step.merged, "fid")
        shutil.rmtree(os.path.join(fid, "replace/file-to-dir"))
        with open(os.path.join(fid, "replace/file-to-dir"), "w") as f:
            f.write("a file again")
        os.unlink(os.path.join(fid, "fifo"))
        shutil.rmtree(os.path.join(fid, "sticky"))
        os.symlink("churn", os.path.join(fid, "sticky"))
    layer, _ = write_layer(step.upper, store)
    members = _layer_members(store, layer)
    assert members["fid/replace/file-to-dir"].isreg() and members["fid/.wh.fifo"].isreg()
    assert members["fid/sticky"].issym()
    with mounted_step(fidelity_rootfs.with_layer(step.upper), workspace) as check:
        flat = tree.flatten(Path(check.merged))
    assert "/fid/replace/file-to-dir/child" not in flat and "/fid/fifo" not in flat
    assert flat["/fid/sticky"].link == "churn"


def test_a_directory_the_layer_replaces_by_a_symlink_is_resolved_again(workspace, tmp_path):
    # Unpacking remembers the host directory of each parent; a layer that turns one into a symlink to the
    # host's directory must not make later entries under it land there.
    outside = tmp_path / "outside"
    outside.mkdir()
    fs = _apply(RootFS(), workspace, [("d", "dir", None), ("d/f", "file", "1"), ("d", "sym", str(outside)),
                                      ("d/g", "file", "x")])
    assert not (outside / "g").exists()
    found = _flat(fs, workspace)
    assert found["d"] == str(outside)
    assert found[os.path.join(str(outside).lstrip("/"), "g")] == "x"


def test_a_file_the_layer_replaces_by_a_directory_takes_entries(workspace):
    fs = _apply(RootFS(), workspace, [("a", "file", "was a file"), ("a", "dir", None), ("a/b", "file", "inside"),
                                      ("a/b", "file", "again")])
    assert _flat(fs, workspace)["a/b"] == "again"


def test_owners_are_the_layers_also_where_a_new_file_would_inherit_another(workspace):
    # Unpacking skips the chown of a file born with the owner the layer gives it; a setgid directory of another
    # group gives its new files that group, which the layer's owner must still replace.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        shared = tarfile.TarInfo("shared")
        shared.type, shared.mode, shared.gid = tarfile.DIRTYPE, 0o2775, 50
        tf.addfile(shared)
        for name, uid, gid in (("shared/root-file", 0, 0), ("shared/app-file", 1000, 1001), ("top", 0, 0)):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid = 1, uid, gid
            tf.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    with mounted_step(RootFS(), workspace) as step:
        apply_layer(buf, step.merged)
        owners = {name: (os.lstat(os.path.join(step.merged, name)).st_uid,
                         os.lstat(os.path.join(step.merged, name)).st_gid)
                  for name in ("shared", "shared/root-file", "shared/app-file", "top")}
        assert os.lstat(os.path.join(step.merged, "shared")).st_mode & 0o7777 == 0o2775
    assert owners == {"shared": (0, 50), "shared/root-file": (0, 0), "shared/app-file": (1000, 1001), "top": (0, 0)}


def test_a_hard_link_to_a_directory_is_a_layer_error(workspace):
    with pytest.raises(LayerError, match="cannot create 'd2'"):
        _apply(RootFS(), workspace, [("d", "dir", None), ("d2", "link", "d")])


def test_snapshot_does_not_follow_a_symlink_out_of_the_upper_dir(workspace, tmp_path):
    store = BlobStore(tmp_path / "store")
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    with mounted_step(RootFS(), workspace) as step:
        os.symlink(str(secret), os.path.join(step.merged, "escape"))
    layer, _ = write_layer(step.upper, store)
    members = _layer_members(store, layer)
    assert members["escape"].issym() and members["escape"].size == 0
