"""Snapshots by scanning (rootfs/scan.py): the change set a scan finds against the previous index, on real
directories, and that unchanged files are never read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dockyard.rootfs import scan as scan_module
from dockyard.rootfs.scan import RACY_NS, scan


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def _settled(root: Path):
    """The first index of `root`, taken once its files are past the racy window (as trees.py does)."""
    time.sleep(RACY_NS / 1e9 * 1.5)
    return scan(str(root), None).index


def _changes(result) -> dict[str, str]:
    return {c.rel: "deleted" if c.deleted else "changed" for c in result.changes}


@pytest.fixture
def counted_hashing(monkeypatch) -> list[str]:
    """Every path whose content the scan reads."""
    hashed: list[str] = []
    real = scan_module.hash_file

    def counting(path: str) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(scan_module, "hash_file", counting)
    return hashed


def test_added_modified_and_deleted_paths(tmp_path):
    _tree(tmp_path, {"etc/a": "a", "etc/b": "b", "var/gone/x": "x", "keep": "k"})
    index = _settled(tmp_path)
    (tmp_path / "etc/a").write_text("changed")
    (tmp_path / "etc/new").write_text("new")
    (tmp_path / "var/gone/x").unlink()
    (tmp_path / "var/gone").rmdir()
    result = scan(str(tmp_path), index)
    # Parents of changed paths come along (as in an overlay upper directory); only the topmost deletion.
    assert _changes(result) == {"etc": "changed", "etc/a": "changed", "etc/new": "changed", "var": "changed",
                                "var/gone": "deleted"}
    assert [c.rel for c in result.changes] == ["etc", "etc/a", "etc/new", "var", "var/gone"]
    assert result.stats.changed == 4 and result.stats.deleted == 1


def test_a_directory_replaced_by_a_file_and_back(tmp_path):
    _tree(tmp_path, {"d/inner/x": "x", "f": "file"})
    index = _settled(tmp_path)
    (tmp_path / "d/inner/x").unlink()
    (tmp_path / "d/inner").rmdir()
    (tmp_path / "d").rmdir()
    (tmp_path / "d").write_text("now a file")
    (tmp_path / "f").unlink()
    (tmp_path / "f").mkdir()
    (tmp_path / "f/y").write_text("y")
    result = scan(str(tmp_path), index)
    # The new entry replaces the old one when the layer is applied: no whiteout for what was below `d`.
    assert _changes(result) == {"d": "changed", "f": "changed", "f/y": "changed"}


def test_a_new_hard_link_changes_both_names(tmp_path):
    _tree(tmp_path, {"a": "data"})
    index = _settled(tmp_path)
    os.link(tmp_path / "a", tmp_path / "b")
    result = scan(str(tmp_path), index)
    # `a`'s link count moved: both names are written, so the layer holds the link with its target.
    assert _changes(result) == {"a": "changed", "b": "changed"}


def test_an_xattr_change_alone_is_a_change(tmp_path):
    _tree(tmp_path, {"bin/tool": "#!/bin/sh\n"})
    index = _settled(tmp_path)
    try:
        os.setxattr(tmp_path / "bin/tool", "user.dockyard", b"1")
    except OSError as exc:
        pytest.skip(f"this filesystem has no user xattrs: {exc}")
    result = scan(str(tmp_path), index)
    assert _changes(result) == {"bin": "changed", "bin/tool": "changed"}
    assert ("user.dockyard", b"1") in result.index.records["bin/tool"].xattrs


def test_a_chmod_and_a_chown_are_changes(tmp_path):
    _tree(tmp_path, {"s": "x", "o": "y"})
    index = _settled(tmp_path)
    os.chmod(tmp_path / "s", 0o4755)
    os.chown(tmp_path / "o", 33, 44)
    assert _changes(scan(str(tmp_path), index)) == {"s": "changed", "o": "changed"}


def test_nothing_changed_is_an_empty_change_set_and_reads_no_file(tmp_path, counted_hashing):
    _tree(tmp_path, {f"d{i % 10}/f{i}": "x" * i for i in range(300)})
    index = _settled(tmp_path)
    counted_hashing.clear()
    result = scan(str(tmp_path), index)
    assert result.changes == [] and counted_hashing == [] and result.stats.hashed == 0
    assert result.stats.paths == 1 + 10 + 300


def test_a_step_that_changes_one_file_hashes_at_most_that_file(tmp_path, counted_hashing):
    _tree(tmp_path, {f"d{i % 10}/f{i}": "x" * i for i in range(300)})
    index = _settled(tmp_path)
    counted_hashing.clear()
    (tmp_path / "d3/f3").write_text("yyy")  # same size: stat data still differs (mtime, ctime)
    result = scan(str(tmp_path), index)
    assert _changes(result) == {"d3": "changed", "d3/f3": "changed"}
    # Only the file written inside the racy window is read, so that the next scan can trust its times.
    assert counted_hashing == [str(tmp_path / "d3/f3")]
    time.sleep(RACY_NS / 1e9 * 1.5)
    counted_hashing.clear()
    again = scan(str(tmp_path), result.index)
    assert again.changes == [] and counted_hashing == [str(tmp_path / "d3/f3")]  # racy last time: checked once
    counted_hashing.clear()
    assert scan(str(tmp_path), again.index).changes == [] and counted_hashing == []


def test_a_file_replaced_by_an_identical_copy_is_not_a_change(tmp_path, counted_hashing):
    _tree(tmp_path, {"etc/conf": "same"})
    index = _settled(tmp_path)
    stat = os.stat(tmp_path / "etc/conf")
    copy = tmp_path / "etc/conf.new"
    copy.write_text("same")
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(copy, tmp_path / "etc/conf")
    result = scan(str(tmp_path), index)
    # A new inode with the same size and mtime, but no digest was kept for a settled file: it is written
    # again (correct, just larger); the directory's own change is what stat data shows.
    assert "etc/conf" in _changes(result)
