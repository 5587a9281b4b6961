"""The cache's parts: content digests (content, mode, owner and link targets count, times never), step keys,
step entries (atomic, TTL, a missing blob is a miss), the layer cache under concurrent use, durations."""

from __future__ import annotations

import os
import threading
import time

import pytest

from dockyard.cache.keys import base_key, step_key, tree_digest
from dockyard.cache.layers import LayerCache
from dockyard.cache.locking import CacheBusy, file_lock
from dockyard.cache.store import StepCache, new_entry
from dockyard.errors import UsageError
from dockyard.image.blobs import BlobStore
from dockyard.image.model import HistoryEntry, Layer, chain_id
from dockyard.options import parse_duration
from dockyard.rootfs.snapshot import write_layer


def _tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("data")
    (root / "g").write_text("other")
    os.symlink("sub/f", root / "link")
    return root


def test_tree_digest_ignores_times_and_sees_content_mode_owner_and_links(tmp_path):
    root = _tree(tmp_path / "t")
    first = tree_digest(str(root))
    os.utime(root / "sub" / "f", (1, 1))
    os.utime(root / "sub", (5, 5))
    assert tree_digest(str(root)) == first
    changes = [lambda: (root / "g").write_text("edited"), lambda: os.chmod(root / "g", 0o600),
               lambda: os.chown(root / "g", 1000, 1000),
               lambda: (os.unlink(root / "link"), os.symlink("g", root / "link")),
               lambda: (root / "new").write_text("")]
    seen = {first}
    for change in changes:
        change()
        digest = tree_digest(str(root))
        assert digest not in seen
        seen.add(digest)


def test_tree_digest_sees_xattrs_but_not_overlay_bookkeeping(tmp_path):
    (tmp_path / "src").mkdir()
    f = tmp_path / "src" / "ping"
    f.write_bytes(b"binary")
    before = tree_digest(str(tmp_path / "src"))
    os.setxattr(f, "user.origin", b"a")
    with_a = tree_digest(str(tmp_path / "src"))
    os.setxattr(f, "user.origin", b"b")
    with_b = tree_digest(str(tmp_path / "src"))
    assert len({before, with_a, with_b}) == 3
    os.setxattr(f, "trusted.overlay.origin", b"host-specific")  # as root; overlayfs's own bookkeeping
    assert tree_digest(str(tmp_path / "src")) == with_b


def test_step_keys_depend_on_parent_and_every_input():
    parent = base_key("sha256:" + "1" * 64, platform="linux/amd64", source_date_epoch=None, compression="gzip",
                      level=None)
    assert parent != base_key("sha256:" + "1" * 64, platform="linux/arm64", source_date_epoch=None,
                              compression="gzip", level=None)
    assert parent != base_key("sha256:" + "1" * 64, platform="linux/amd64", source_date_epoch=1,
                              compression="gzip", level=None)
    key = step_key(parent, instruction="RUN", env=[["A", "1"]])
    assert key == step_key(parent, env=[["A", "1"]], instruction="RUN")
    assert key != step_key(parent, instruction="RUN", env=[["A", "2"]])
    assert key != step_key(step_key(parent, instruction="ENV"), instruction="RUN", env=[["A", "1"]])


def _layer(store: BlobStore, upper) -> Layer:
    return write_layer(str(upper), store)[0]


def test_step_entries_round_trip_expire_and_need_their_blob(tmp_path):
    store = BlobStore(tmp_path / "store")
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "file").write_text("x")
    layer = _layer(store, upper)
    cache = StepCache(tmp_path / "steps")
    history = HistoryEntry(created_by="RUN x", created="2023-11-14T22:13:20Z", comment="dockyard")
    cache.record(new_entry("sha256:" + "a" * 64, layer, history, {"Env": ["A=1"]}, "RUN x"))
    entry = cache.lookup("sha256:" + "a" * 64, store)
    assert entry is not None and entry.layer == layer and entry.history == history
    assert entry.config == {"Env": ["A=1"]}
    assert cache.lookup("sha256:" + "b" * 64, store) is None
    # Only the entry itself: no temporary file left behind.
    assert [p.name for p in (tmp_path / "steps").iterdir()] == ["a" * 64 + ".json"]
    expired = StepCache(tmp_path / "steps", ttl=0.01)
    time.sleep(0.05)
    assert expired.lookup("sha256:" + "a" * 64, store) is None
    store.path(layer.digest).unlink()
    assert cache.lookup("sha256:" + "a" * 64, store) is None


def test_chain_ids_are_ocis():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_id(None, a) == a
    import hashlib

    assert chain_id(a, b) == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


@pytest.mark.parametrize("below", [[], ["empty"]], ids=["bottom layer, no overlay", "over a layer"])
def test_layer_cache_unpacks_once_under_concurrent_use(tmp_path, below):
    from dockyard.rootfs.overlay import enter_private_mount_namespace

    enter_private_mount_namespace()
    store = BlobStore(tmp_path / "store")
    upper = tmp_path / "upper"
    (upper / "dir").mkdir(parents=True)
    (upper / "dir" / "file").write_text("content")
    layer = _layer(store, upper)
    cache = LayerCache(tmp_path / "layers")
    empty = tmp_path / "empty"
    empty.mkdir()
    results, errors = [], []

    def unpack(n):
        mountpoint = tmp_path / f"m{n}"
        mountpoint.mkdir()
        try:
            results.append(cache.unpacked(layer, layer.diff_id, [str(tmp_path / d) for d in below], store,
                                          str(mountpoint)))
        except BaseException as exc:  # checked below
            errors.append(exc)

    threads = [threading.Thread(target=unpack, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert open(os.path.join(results[0], "dir", "file")).read() == "content"
    assert not list((tmp_path / "layers" / "tmp").iterdir())


def test_a_layer_published_unsynced_before_a_reboot_is_unpacked_again(tmp_path):
    from dockyard.rootfs.overlay import enter_private_mount_namespace

    enter_private_mount_namespace()
    store = BlobStore(tmp_path / "store")
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "file").write_text("content")
    layer = _layer(store, upper)
    cache = LayerCache(tmp_path / "layers")
    stale = cache.path(layer.diff_id)
    stale.mkdir(parents=True)
    (stale / "file").write_text("cut short by a crash")
    (tmp_path / "layers" / "unsynced").mkdir()
    (tmp_path / "layers" / "unsynced" / stale.name).write_text("an earlier boot")
    empty, mountpoint = tmp_path / "empty", tmp_path / "m"
    empty.mkdir()
    mountpoint.mkdir()
    assert not cache.has(layer.diff_id)
    unpacked = cache.unpacked(layer, layer.diff_id, [str(empty)], store, str(mountpoint))
    assert open(os.path.join(unpacked, "file")).read() == "content"
    boot_id = open("/proc/sys/kernel/random/boot_id").read().strip()
    assert (tmp_path / "layers" / "unsynced" / stale.name).read_text() == boot_id and cache.has(layer.diff_id)


def test_adopted_step_directories_are_used_in_place_then_published(tmp_path):
    cache = LayerCache(tmp_path / "layers")
    step = tmp_path / "work" / "l" / "1"
    step.mkdir(parents=True)
    (step / "file").write_text("made by a step")
    chain = "sha256:" + "c" * 64
    cache.adopt(str(step), chain)
    # During the build the directory stays where the step left it (nothing is published before a sync).
    assert cache.has(chain) and not cache.path(chain).exists()
    assert cache.unpacked(Layer.__new__(Layer), chain, [], None, "") == str(step)  # no unpacking: it is there
    cache.publish()
    assert not step.exists() and (cache.path(chain) / "file").read_text() == "made by a step"
    assert cache.has(chain)
    # Published without a sync: usable in this boot only. After a reboot (a crash may have lost data that
    # was never written back) it is unpacked again from its verified blob.
    marker = tmp_path / "layers" / "unsynced" / cache.path(chain).name
    assert marker.read_text() == open("/proc/sys/kernel/random/boot_id").read().strip()
    marker.write_text("an earlier boot")
    assert not LayerCache(tmp_path / "layers").has(chain)
    marker.write_text(open("/proc/sys/kernel/random/boot_id").read().strip())
    # A layer another build published first is kept; this build's copy stays in its work directory.
    again = tmp_path / "work" / "l" / "2"
    again.mkdir()
    cache.adopt(str(again), chain)
    cache.publish()
    assert again.exists() and (cache.path(chain) / "file").exists()


def test_publishing_waits_for_a_build_unpacking_the_same_layer(tmp_path):
    """A build unpacking a layer from its blob renames its directory into place under the entry's lock; another
    build publishing its step's directory of the same layer takes that lock too, so neither finds the name
    taken between its check and its rename (the unpacking build failed with ENOTEMPTY)."""
    cache = LayerCache(tmp_path / "layers")
    step = tmp_path / "work" / "l" / "1"
    step.mkdir(parents=True)
    (step / "file").write_text("made by a step")
    chain = "sha256:" + "d" * 64
    cache.adopt(str(step), chain)
    entry_lock = tmp_path / "layers" / "locks" / (cache.path(chain).name + ".lock")
    with file_lock(entry_lock):  # what `unpacked` holds while it unpacks and renames
        publishing = threading.Thread(target=cache.publish)
        publishing.start()
        publishing.join(timeout=0.5)
        assert publishing.is_alive() and not cache.path(chain).exists()
    publishing.join()
    assert (cache.path(chain) / "file").read_text() == "made by a step"


def test_prune_waits_for_no_build_and_busy_is_reported(tmp_path):
    lock = tmp_path / "lock"
    with file_lock(lock, shared=True):
        with pytest.raises(CacheBusy):
            with file_lock(lock, wait=False):
                pass
        with file_lock(lock, shared=True, wait=False):  # another build: fine
            pass


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("6h", 21600), ("1h30m", 5400), ("7d", 604800),
                                          ("2w", 1209600), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text, "--cache-ttl") == seconds


@pytest.mark.parametrize("text", ["", "soon", "5", "1x", "h1"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_duration(text, "--cache-ttl")
