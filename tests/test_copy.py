"""COPY/ADD file semantics (core/copy.py) and remote-source parsing (core/fetch.py), on real directories."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.context import BuildContext, DockerIgnore, PatternMatcher
from dockyard.copy import Copier, CopyOptions, extract_archive, is_archive, parse_chmod
from dockyard.stage.source_filter import SourceFilter
from dockyard.errors import DockerfileError
from dockyard.fetch import GitRef, parse_checksum, parse_git_url, url_file_name


# --- --chmod ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, mode, is_dir, expected", [
    ("755", 0o600, False, 0o755),
    ("0640", 0o777, True, 0o640),
    ("+x", 0o644, False, 0o755),
    ("u=rwx,go=rx", 0o600, False, 0o755),
    ("go-w", 0o777, True, 0o755),
    ("a+X", 0o644, True, 0o755),  # X: directories get x ...
    ("a+X", 0o644, False, 0o644),  # ... files only when someone can already execute them
    ("a+X", 0o744, False, 0o755),
    ("g=u", 0o640, False, 0o660),
    ("u+s", 0o755, False, 0o4755),
    ("+t", 0o755, True, 0o1755),
    ("o+t", 0o755, True, 0o755),  # sticky with only "other" named is ignored (BSD setmode)
    ("o=", 0o777, False, 0o770),
    ("u=rw,g=r,o=", 0o777, False, 0o640),
])
def test_chmod_modes(text, mode, is_dir, expected):
    assert parse_chmod(text).apply(mode, is_dir) == expected


@pytest.mark.parametrize("text", ["rwx", "u", "u=rwq", "0o755", "17777", "u=r,", "999"])
def test_chmod_invalid(text):
    with pytest.raises(ValueError, match="invalid --chmod"):
        parse_chmod(text)


# --- the copier ------------------------------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def test_copy_keeps_links_xattrs_and_applies_symbolic_chmod(tmp_path: Path):
    src = _tree(tmp_path / "src", {"a.txt": "a", "run.sh": "#!/bin/sh", "sub/b.txt": "b"})
    os.link(src / "a.txt", src / "hard.txt")
    (src / "link").symlink_to("a.txt")
    os.chmod(src / "run.sh", 0o700)
    os.setxattr(src / "a.txt", "user.origin", b"context")
    dest = tmp_path / "root"
    dest.mkdir()
    Copier(str(dest), CopyOptions(owner=(1000, 1000), mode=parse_chmod("go+rX"))).copy(str(src), str(dest / "out"))
    out = dest / "out"
    assert os.stat(out / "a.txt").st_ino == os.stat(out / "hard.txt").st_ino  # hard link kept
    assert os.readlink(out / "link") == "a.txt"
    assert os.getxattr(out / "a.txt", "user.origin") == b"context"
    assert oct(os.stat(out / "run.sh").st_mode & 0o7777) == oct(0o755)
    assert oct(os.stat(out / "a.txt").st_mode & 0o7777) == oct(0o644)
    assert oct(os.stat(out / "sub").st_mode & 0o7777) == oct(0o755)
    assert (os.lstat(out / "link").st_uid, os.stat(out / "sub" / "b.txt").st_gid) == (1000, 1000)


def test_copy_replaces_what_is_in_the_way_without_following_it(tmp_path: Path):
    copied = {"file": "new file", "link": "new link", "dir": "new dir", "fresh": "fresh"}
    src = _tree(tmp_path / "src", copied)
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    dest = tmp_path / "root"
    _tree(dest / "out", {"file": "old", "dir/inner": "old"})
    (dest / "out" / "link").symlink_to(outside)  # a write through it would reach the host
    Copier(str(dest), CopyOptions()).copy(str(src), str(dest / "out"))
    for name, content in copied.items():
        path = dest / "out" / name
        assert path.is_file() and not path.is_symlink() and path.read_text() == content
    assert outside.read_text() == "host file"


def test_filter_walks_excluded_directory_for_reincluded_files(tmp_path: Path):
    src = _tree(tmp_path / "ctx", {"docs/keep.md": "k", "docs/drop.md": "d", "docs/deep/x.md": "x",
                                    "app.log": "l", "sub/app.log": "l", "main.txt": "m"})
    context = BuildContext(src, DockerIgnore.parse("docs\n!docs/keep.md\n"))
    dest = tmp_path / "root"
    dest.mkdir()
    copier = Copier(str(dest), CopyOptions(), SourceFilter(context, PatternMatcher(["*.log"]), str(src)))
    copier.copy_dir_contents(str(src), str(dest))
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    # --exclude=*.log is relative to the source: sub/app.log is not matched by `*.log`.
    assert copied == ["docs", "docs/keep.md", "main.txt", "sub", "sub/app.log"]


# --- ADD's archives ------------------------------------------------------------------------------------------
def _tar_bytes() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo("dir/f.txt")
        info.size, info.uid, info.gid, info.mode = 2, 1234, 4321, 0o640
        archive.addfile(info, io.BytesIO(b"f\n"))
    return out.getvalue()


@pytest.mark.parametrize("compressor", [None, "gzip", "bzip2", "xz", "zstd"])
def test_archives_detected_by_content_and_extracted(tmp_path: Path, compressor):
    path = tmp_path / "download.bin"  # the name says nothing: content decides
    data = _tar_bytes()
    if compressor:
        data = subprocess.run([compressor, "-c"], input=data, capture_output=True, check=True).stdout
    path.write_bytes(data)
    assert is_archive(str(path))
    root = tmp_path / "root"
    root.mkdir()
    extract_archive(str(path), str(root), "/out")
    extracted = root / "out" / "dir" / "f.txt"
    assert extracted.read_text() == "f\n"
    assert (extracted.stat().st_uid, extracted.stat().st_gid, extracted.stat().st_mode & 0o777) == (1234, 4321, 0o640)


def test_chown_overrides_archive_owners(tmp_path: Path):
    (tmp_path / "a.tar").write_bytes(_tar_bytes())
    root = tmp_path / "root"
    root.mkdir()
    extract_archive(str(tmp_path / "a.tar"), str(root), "/", owner=(7, 8))
    st = (root / "dir" / "f.txt").stat()
    assert (st.st_uid, st.st_gid) == (7, 8)


@pytest.mark.parametrize("content", [b"just text\n", b"\x1f\x8bnot really gzip", b""])
def test_not_archives(tmp_path: Path, content):
    (tmp_path / "x.tar.gz").write_bytes(content)
    assert not is_archive(str(tmp_path / "x.tar.gz"))
    assert not is_archive(str(tmp_path))


# --- remote sources ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, expected", [
    ("https://example.com/org/repo.git", GitRef("https://example.com/org/repo.git", None, "")),
    ("https://example.com/org/repo.git#v1.2:docs/api", GitRef("https://example.com/org/repo.git", "v1.2", "docs/api")),
    ("git@github.com:org/repo.git#main", GitRef("git@github.com:org/repo.git", "main", "")),
    ("git://host/repo#:sub", GitRef("git://host/repo", None, "sub")),
    ("ssh://git@host/repo.git#ref=dev,subdir=../x", GitRef("ssh://git@host/repo.git", "dev", "x")),
    ("https://example.com/file.tar.gz", None),
    ("dir/repo.git", None),
])
def test_git_urls(source, expected):
    assert parse_git_url(source) == expected


def test_git_fragment_unknown_key():
    with pytest.raises(DockerfileError, match="fragment key 'depth'"):
        parse_git_url("https://h/r.git#depth=1")


def test_url_file_name_and_checksum():
    assert url_file_name("https://h/dl/tool%20x.bin?sig=1#frag") == "tool x.bin"
    assert url_file_name("https://h/") == "__unnamed__"
    assert parse_checksum("sha256:" + "AB" * 32) == ("sha256", "ab" * 32)
    with pytest.raises(DockerfileError, match="invalid --checksum"):
        parse_checksum("sha256:abc")


def test_created_parent_directories_get_the_chmod_mode_verbatim(tmp_path: Path):
    # BuildKit (fsutil) applies --chmod to the directories a copy creates, without a umask; existing ones keep theirs.
    root = tmp_path / "root"
    (root / "existing").mkdir(parents=True)
    os.chmod(root / "existing", 0o700)
    Copier(str(root), CopyOptions(mode=parse_chmod("777"))).ensure_dir("/existing/new/deeper")
    Copier(str(root), CopyOptions()).ensure_dir("/plain/dir")
    modes = {p: os.stat(root / p).st_mode & 0o7777 for p in ("existing", "existing/new", "existing/new/deeper",
                                                              "plain", "plain/dir")}
    assert modes == {"existing": 0o700, "existing/new": 0o777, "existing/new/deeper": 0o777,
                     "plain": 0o755, "plain/dir": 0o755}


def test_destination_through_a_symlink_to_a_missing_path_is_created_inside_the_root(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "symlink").symlink_to("../corpus/target")  # `..` at the root stays at the root
    made = Copier(str(root), CopyOptions()).ensure_dir("/symlink/sub")
    assert made == str(root / "corpus" / "target" / "sub") and os.path.isdir(made)
    assert not (tmp_path / "corpus").exists()


def test_a_context_socket_becomes_an_empty_file_and_a_stage_socket_is_left_out(tmp_path: Path):
    import socket

    src = tmp_path / "src"
    src.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(src / "app.sock"))
    try:
        for name, options in (("context", CopyOptions(sockets_as_files=True)), ("stage", CopyOptions())):
            root = tmp_path / name
            root.mkdir()
            Copier(str(root), options).copy(str(src), str(root / "out"))
            made = root / "out" / "app.sock"
            if name == "context":
                assert made.is_file() and made.stat().st_size == 0
            else:
                assert not os.path.lexists(made)
    finally:
        server.close()
