"""The memo of context file digests (cache/digests.py): trusted only for a file whose stat is unchanged and
older than the moment it was hashed, so an edit is always seen, even one in the same timestamp tick."""

import hashlib
import json
import os
import time

from dockyard.cache.digests import RACY_MARGIN_NS, FileDigests
from dockyard.cache.keys import tree_digest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _memo(tmp_path, context) -> FileDigests:
    memo = FileDigests(tmp_path / "digests", str(context))
    memo.load()
    return memo


def _plant(memo: FileDigests, path, digest: str, hashed_at: int) -> None:
    """A memo file as an earlier build would have left it, naming `digest` for the file as it is now."""
    st = os.lstat(path)
    memo.path.parent.mkdir(parents=True, exist_ok=True)
    memo.path.write_text(json.dumps({"format": 1, "files": {str(path): [
        st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, hashed_at, digest]}}))


def test_a_settled_unchanged_file_is_not_read_again(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a").write_bytes(b"one")
    memo = _memo(tmp_path, context)
    _plant(memo, context / "a", "remembered", time.time_ns() + 2 * RACY_MARGIN_NS)
    memo.load()
    # The planted digest is returned: the file was not read (a real build only ever plants true digests).
    assert memo.file_digest(str(context / "a"), os.lstat(context / "a")) == "remembered"


def test_any_change_of_the_file_is_seen(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    path = context / "a"
    path.write_bytes(b"one")
    memo = _memo(tmp_path, context)
    _plant(memo, path, "stale", time.time_ns() + 2 * RACY_MARGIN_NS)
    # Same size, and the old mtime put back: ctime still moves, so the memo is not trusted.
    before = os.lstat(path)
    path.write_bytes(b"two")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    memo.load()
    assert memo.file_digest(str(path), os.lstat(path)) == _sha(b"two")
    # Replaced by another file (a new inode) with identical times and size: hashed again too.
    _plant(memo, path, "stale", time.time_ns() + 2 * RACY_MARGIN_NS)
    replacement = context / "b"
    replacement.write_bytes(b"six")
    os.replace(replacement, path)
    memo.load()
    assert memo.file_digest(str(path), os.lstat(path)) == _sha(b"six")


def test_a_racy_entry_is_hashed_again(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    path = context / "a"
    path.write_bytes(b"one")
    memo = _memo(tmp_path, context)
    # Hashed right after its last write: a write in the same tick could have left every stat field as it was.
    _plant(memo, path, "maybe stale", os.lstat(path).st_ctime_ns + RACY_MARGIN_NS // 2)
    memo.load()
    assert memo.file_digest(str(path), os.lstat(path)) == _sha(b"one")


def test_tree_digests_are_the_same_with_and_without_the_memo_and_it_keeps_what_was_used(tmp_path):
    context = tmp_path / "ctx"
    (context / "src").mkdir(parents=True)
    for n in range(20):
        (context / "src" / f"f{n}").write_text(f"file {n}\n")
    (context / "other").write_text("not copied")
    memo = _memo(tmp_path, context)
    plain = tree_digest(str(context / "src"))
    assert tree_digest(str(context / "src"), digests=memo) == plain
    memo.save()
    again = _memo(tmp_path, context)
    assert tree_digest(str(context / "src"), digests=again) == plain
    saved = json.loads(memo.path.read_text())["files"]
    assert sorted(saved) == sorted(str(context / "src" / f"f{n}") for n in range(20))
    # Another context has a memo of its own.
    assert FileDigests(tmp_path / "digests", str(tmp_path)).path != memo.path
