"""The ownership ledger (core/rootfs/ownership.py) and how a scan (core/rootfs/scan.py) uses it: which owner a
changed path gets in the layer, and that the scan records it, so that later steps and `COPY --from` find it.
On real files; the non-root builder's chown is run as uid 1000 in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

from dockyard.rootfs import ownership
from dockyard.rootfs.ownership import Ownership, OwnershipLedger
from dockyard.rootfs.scan import RACY_NS, scan
from tests.support.users import open_directory, owned_directory


def _settled(root: Path, ledger: OwnershipLedger):
    """The first index of `root`, once its files are past the racy window (as trees.py takes it)."""
    time.sleep(RACY_NS / 1e9 * 1.5)
    return scan(str(root), None, ledger=ledger).index


def _owners(result) -> dict[str, Ownership | None]:
    return {change.rel: change.ownership for change in result.changes if not change.deleted}


def test_an_entry_holds_while_its_path_is_the_same_file(tmp_path):
    ledger = OwnershipLedger()
    path = tmp_path / "f"
    path.write_text("a")
    ledger.record(str(path), Ownership(5, 6))
    with open(path, "a") as f:
        f.write("b")  # changed in place: the same file
    assert ledger.lookup(str(path), os.lstat(path)) == Ownership(5, 6)
    (tmp_path / "new").write_text("c")
    os.replace(tmp_path / "new", path)  # replaced: the new file is not the recorded one
    assert ledger.lookup(str(path), os.lstat(path)) is None


def test_another_name_of_a_recorded_file_has_its_owner(tmp_path):
    ledger = OwnershipLedger()
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("data")
    ledger.record(str(first), Ownership(5, 6))
    os.link(first, second)  # as unpacking a layer or copying a tree makes it: no chown of its own
    assert ledger.lookup(str(second), os.lstat(second)) == Ownership(5, 6)
    first.unlink()
    first.write_text("another file")
    # The recorded name is another file now: nothing says what the remaining name's file is.
    assert ledger.lookup(str(second), os.lstat(second)) is None


def test_what_a_step_records_by_inode_becomes_path_entries(tmp_path):
    ledger = OwnershipLedger()
    path = tmp_path / "pkg.dpkg-new"
    path.write_text("x")
    ledger.record_inode(os.lstat(path), Ownership(7, 8))
    os.rename(path, tmp_path / "pkg")
    st = os.lstat(tmp_path / "pkg")
    assert ledger.lookup(str(tmp_path / "pkg"), st) == Ownership(7, 8)
    ledger.end_step()
    assert not ledger.recorded_in_step() and ledger.lookup_inode(st) is None
    assert list(ledger.entries()) == [(str(tmp_path / "pkg"), st.st_ino, Ownership(7, 8))]


def test_a_chown_root_can_do_keeps_the_device_a_file_stands_in_for(tmp_path):
    ledger = OwnershipLedger()
    node, plain = tmp_path / "null", tmp_path / "plain"
    node.touch()
    plain.touch()
    ledger.record(str(node), Ownership(0, 0, ("c", 1, 3)))
    with ownership.recording(ledger):
        ownership.chown(str(node), 5, 6)
        ownership.chown(str(plain), 5, 6)
    assert ledger.lookup(str(node), os.lstat(node)) == Ownership(5, 6, ("c", 1, 3))
    assert os.lstat(plain).st_uid == 5 and len(ledger) == 1  # root's real chown needs no entry


NON_ROOT_CHOWN = textwrap.dedent("""
    import json, os, sys
    from dockyard.rootfs import ownership
    from dockyard.rootfs.ownership import OwnershipLedger
    ledger = OwnershipLedger()
    root = sys.argv[1]
    with ownership.recording(ledger):
        for name, owner in (("roots", (0, 0)), ("mine", (os.geteuid(), os.getegid()))):
            open(os.path.join(root, name), "w").close()
            ownership.chown(os.path.join(root, name), *owner)
    print(json.dumps({os.path.basename(path): [owned.uid, owned.gid] for path, _, owned in ledger.entries()}))
""")


def test_a_builder_that_is_not_root_records_every_owner_it_gives():
    with open_directory("dockyard-ledger-") as shared:
        root = owned_directory(shared, "root", 1000, 1000)
        done = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", sys.executable, "-c",
                               NON_ROOT_CHOWN, str(root)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        # Refused (root's) and done (the builder's own ids) alike: every file of the root is the host user's,
        # so only the ledger tells a RUN step which are not its own.
        assert json.loads(done.stdout) == {"roots": [0, 0], "mine": [1000, 1000]}
        assert os.lstat(root / "roots").st_uid == 1000


def test_a_step_s_new_files_are_its_user_s_and_what_was_there_keeps_its_owner(tmp_path):
    ledger = OwnershipLedger()
    for name in ("host", "owned", "moved", "moved-host", "linked", "gone"):
        (tmp_path / name).write_text(name)
    for name in ("owned", "moved", "linked", "gone"):
        ledger.record(str(tmp_path / name), Ownership(33, 44))
    index = _settled(tmp_path, ledger)
    with open(tmp_path / "host", "a") as f:
        f.write("+")  # the host's owner is the image's: a file of the builder's own uid
    with open(tmp_path / "owned", "a") as f:
        f.write("+")
    os.rename(tmp_path / "moved", tmp_path / "moved-to")
    os.rename(tmp_path / "moved-host", tmp_path / "moved-host-to")
    os.link(tmp_path / "linked", tmp_path / "link")
    (tmp_path / "gone").unlink()
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "file").write_text("new")
    step_user = Ownership(7, 8)
    result = scan(str(tmp_path), index, ledger=ledger, new_owner=step_user)
    ledger.end_step()
    assert _owners(result) == {"host": None, "owned": Ownership(33, 44), "moved-to": Ownership(33, 44),
                               "moved-host-to": None, "linked": Ownership(33, 44), "link": Ownership(33, 44),
                               "new": step_user, "new/file": step_user}
    # Recorded: COPY --from and the next steps see the step's files as its user's.
    for name in ("new", "new/file", "moved-to", "link"):
        path = tmp_path / name
        assert ledger.lookup(str(path), os.lstat(path)) == _owners(result)[name], name
    assert ledger.lookup(str(tmp_path / "host"), os.lstat(tmp_path / "host")) is None


def test_a_file_that_got_a_freed_inode_number_is_new(tmp_path):
    ledger = OwnershipLedger()
    (tmp_path / "old").write_text("old")
    os.utime(tmp_path / "old", ns=(1_000_000_000, 1_000_000_000))
    ledger.record(str(tmp_path / "old"), Ownership(33, 44))
    index = _settled(tmp_path, ledger)
    old_ino = os.lstat(tmp_path / "old").st_ino
    (tmp_path / "old").unlink()
    (tmp_path / "new").write_text("new")
    if os.lstat(tmp_path / "new").st_ino != old_ino:
        # Not every filesystem hands the number out again at once: make the scan meet it all the same.
        before = index.records["old"].fingerprint
        index.records["old"] = replace(index.records["old"], fingerprint=(
            *before[:4], os.lstat(tmp_path / "new").st_ino, *before[5:]))
    result = scan(str(tmp_path), index, ledger=ledger, new_owner=Ownership(7, 8))
    assert _owners(result)["new"] == Ownership(7, 8)


CAP_NET_BIND_SERVICE = b"\x01\x00\x00\x02\x00\x04\x00\x00" + b"\x00" * 12

NON_ROOT_COPY = textwrap.dedent("""
    import json, os, stat, sys
    from dockyard.copy import Copier, CopyOptions
    from dockyard.rootfs import ownership
    from dockyard.rootfs.ownership import OwnershipLedger
    stage, image = sys.argv[1], sys.argv[2]
    ledger = OwnershipLedger()
    with ownership.recording(ledger):
        # A stage's root, as unpacking its layers leaves it for a builder that is not root.
        ownership.mknod(f"{stage}/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        ownership.chown(f"{stage}/null", 0, 5)
        os.chmod(f"{stage}/null", 0o666)  # as unpacking does, after the chown
        with open(f"{stage}/cap", "w") as f:
            f.write("#!/bin/sh\\n")
        ownership.chown(f"{stage}/cap", 0, 0)
        ownership.setxattr(f"{stage}/cap", "security.capability", bytes.fromhex(sys.argv[3]))
        with open(f"{stage}/a", "w") as f:
            f.write("a")
        ownership.chown(f"{stage}/a", 33, 44)
        os.link(f"{stage}/a", f"{stage}/b")
        copier = Copier(image, CopyOptions(keep_source_owner=True))
        for name in ("null", "cap", "a", "b"):
            copier.copy(f"{stage}/{name}", f"{image}/{name}")
        seen = {}
        for name in ("null", "cap", "a", "b"):
            path = f"{image}/{name}"
            st = os.lstat(path)
            owned = ledger.lookup(path, st)
            seen[name] = {"owner": [owned.uid, owned.gid], "device": owned.device,
                          "stood_in_for": ownership.stood_in_for(path, st),
                          "xattrs": {k: v.hex() for k, v in ownership.recorded_xattrs(path, st).items()},
                          "host": [stat.S_ISREG(st.st_mode), st.st_uid, st.st_nlink]}
    print(json.dumps(seen))
""")


def test_copying_a_stage_without_root_keeps_its_owners_devices_capabilities_and_links():
    with open_directory("dockyard-ledger-") as shared:
        stage, image = owned_directory(shared, "stage", 1000, 1000), owned_directory(shared, "image", 1000, 1000)
        done = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", sys.executable, "-c",
                               NON_ROOT_COPY, str(stage), str(image), CAP_NET_BIND_SERVICE.hex()],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # The host has an empty file where the image has /null, the builder's files everywhere, one file for a, b.
    assert seen["null"] == {"owner": [0, 5], "device": ["c", 1, 3],
                            "stood_in_for": [0o20666, os.makedev(1, 3)], "xattrs": {},
                            "host": [True, 1000, 1]}
    assert seen["cap"]["owner"] == [0, 0] and seen["cap"]["xattrs"] == {"security.capability":
                                                                         CAP_NET_BIND_SERVICE.hex()}
    assert seen["a"]["owner"] == seen["b"]["owner"] == [33, 44] and seen["b"]["host"] == [True, 1000, 2]


NAMESPACE_ROOT_DEVICE = textwrap.dedent("""
    import io, json, os, stat, sys, tarfile
    from dockyard.copy import Copier, CopyOptions
    from dockyard.image.blobs import BlobStore
    from dockyard.rootfs import ownership
    from dockyard.rootfs.snapshot import write_layer
    from dockyard.rootfs.xattrs import image_xattrs
    work = sys.argv[1]
    os.makedirs(f"{work}/lower"), os.makedirs(f"{work}/upper")
    ownership.mknod(f"{work}/lower/null", stat.S_IFCHR | 0o640, os.makedev(1, 3))  # no ledger: the overlay modes
    Copier(f"{work}/upper", CopyOptions(keep_source_owner=True)).copy(f"{work}/lower/null", f"{work}/upper/null")
    layer, _ = write_layer(f"{work}/upper", BlobStore(f"{work}/blobs"), compression="gzip")
    with BlobStore(f"{work}/blobs").open(layer.digest) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        entries = [[m.name, m.ischr(), m.devmajor, m.devminor, oct(m.mode), sorted(m.pax_headers)] for m in tar]
    print(json.dumps({"marked": ownership.marked_device(f"{work}/lower/null"),
                      "image_xattrs": sorted(image_xattrs(f"{work}/lower/null")), "layer": entries}))
""")


def test_a_device_node_a_user_namespace_s_root_cannot_make_is_marked_and_written_as_a_device(tmp_path):
    done = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", NAMESPACE_ROOT_DEVICE,
                           str(tmp_path / "work")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["marked"] == ["c", 1, 3]
    assert seen["image_xattrs"] == []  # the mark is dockyard's, never the image's
    assert seen["layer"] == [["null", True, 1, 3, oct(0o640), []]]
