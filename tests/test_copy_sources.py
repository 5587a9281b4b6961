"""Which paths a COPY source names, and who owns what WORKDIR creates, as BuildKit decides them:
.dockerignore applied before wildcards are expanded, a symlink source named after the link, WORKDIR's owner
resolved like BuildKit's file operations. Pure functions on real directories, then real `dockyard build`s of
FROM scratch images (no registry needed), read back with umoci."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.context import BuildContext, DockerIgnore, glob_in_root
from dockyard.stage.source_filter import ContextPresence
from dockyard.users import resolve_mkdir_owner

from tests.e2e.helpers import dockyard, write_context


def _context(root: Path, files: dict[str, str], ignore: str) -> BuildContext:
    write_context(root, files)
    return BuildContext(root, DockerIgnore.parse(ignore))


def _glob(context: BuildContext, pattern: str) -> list[str]:
    matches = glob_in_root(context.root, pattern, ContextPresence(context).present)
    return sorted(context.rel(m) for m in matches)


# --- .dockerignore before wildcards ------------------------------------------------------------------------------
def test_exception_under_an_ignored_directory_is_the_only_match(tmp_path: Path):
    context = _context(tmp_path, {"ignore/foo": "f", "ignore/bar": "b", "ignore/baz": "z"}, "ignore/**\n!ignore/foo\n")
    assert _glob(context, "ignore/*") == ["ignore/foo"]


def test_ignored_directory_holding_a_reincluded_file_matches(tmp_path: Path):
    # The directory itself is ignored, but BuildKit receives it as the parent of the re-included file.
    context = _context(tmp_path, {"ignore/sub/keep": "k", "ignore/sub/drop": "d", "ignore/other/drop": "d"},
                       "ignore\n!ignore/sub/keep\n")
    assert _glob(context, "ignore/*") == ["ignore/sub"]
    assert _glob(context, "ignore/*/*") == ["ignore/sub/keep"]


def test_exception_naming_a_parent_directory_reincludes_what_is_below(tmp_path: Path):
    context = _context(tmp_path, {"a/b/c.txt": "c", "a/b/d.txt": "d", "a/e.txt": "e"}, "a\n!a/b\n")
    assert _glob(context, "a/*") == ["a/b"]
    assert _glob(context, "a/b/*") == ["a/b/c.txt", "a/b/d.txt"]


def test_doublestar_in_the_middle_of_a_pattern(tmp_path: Path):
    context = _context(tmp_path, {"src/x/test/t.py": "t", "src/x/y/test/u.py": "u", "src/x/main.py": "m",
                                  "src/test/v.py": "v"}, "src/**/test\n")
    assert _glob(context, "src/*/*") == ["src/x/main.py", "src/x/y"]
    assert _glob(context, "src/*") == ["src/x"]  # src/test: `**` spans zero directories too
    assert _glob(context, "src/x/y/*") == []


def test_doublestar_exception_deep_inside_an_ignored_tree(tmp_path: Path):
    context = _context(tmp_path, {"docs/a/b/README.md": "r", "docs/a/b/x.txt": "x", "docs/c.txt": "c"},
                       "docs\n!docs/**/README.md\n")
    assert _glob(context, "docs/*") == ["docs/a"]
    assert _glob(context, "docs/a/b/*") == ["docs/a/b/README.md"]


def test_no_dockerignore_keeps_every_match(tmp_path: Path):
    context = _context(tmp_path, {"d/a": "a", "d/b": "b"}, "")
    assert _glob(context, "d/*") == ["d/a", "d/b"]


# --- WORKDIR's owner ----------------------------------------------------------------------------------------------
PASSWD = "root:x:0:0::/root:/bin/sh\nweb:x:2000:3000::/home/web:/bin/sh\nsame:x:1000:50::/:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\nwebgrp:x:3000:\n"


@pytest.mark.parametrize("spec, expected", [
    ("root", (0, 0)),
    ("nosuchuser", (0, 0)),  # not an error: BuildKit's file operations fall back to 0:0
    ("1234", (1234, 1234)),  # a uid alone is also the gid
    ("1234:55", (1234, 55)),
    ("root:staff", (0, 0)),  # no group file: the name is not found, the gid stays
])
def test_mkdir_owner_without_passwd_or_group_files(tmp_path: Path, spec, expected):
    assert resolve_mkdir_owner(str(tmp_path), spec) == expected


@pytest.mark.parametrize("spec, expected", [
    ("web", (2000, 3000)),  # uid and primary gid from passwd
    ("web:staff", (2000, 50)),
    ("web:nosuchgroup", (2000, 3000)),
    ("web:root", (2000, 0)),
    ("1000", (1000, 1000)),  # numeric: BuildKit does not look it up, gid = uid
    ("nosuchuser:webgrp", (0, 3000)),
])
def test_mkdir_owner_from_the_roots_files(tmp_path: Path, spec, expected):
    write_context(tmp_path, {"etc/passwd": PASSWD, "etc/group": GROUP})
    assert resolve_mkdir_owner(str(tmp_path), spec) == expected


# --- whole builds --------------------------------------------------------------------------------------------------
def _build(tmp_path: Path, files: dict[str, str | bytes], links: dict[str, str] | None = None) -> Path:
    context = write_context(tmp_path / "ctx", files)
    for name, target in (links or {}).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, context / name)
    out = tmp_path / "oci"
    result = dockyard("build", "--progress=plain", "--output", f"type=oci,dest={out}", str(context))
    assert result.returncode == 0, result.stderr
    rootfs = tmp_path / "rootfs"
    subprocess.run(["umoci", "raw", "unpack", "--image", str(out), str(rootfs)], check=True, capture_output=True)
    return rootfs


def test_symlink_sources_are_named_after_the_link(tmp_path: Path):
    dockerfile = """\
FROM scratch AS t
COPY tree/ /
FROM scratch
COPY --from=t /workdir/relative_link /workdirAnother/
COPY --from=t /workdir/chain_link /workdir/absolute_link /workdirAnother/
COPY --from=t /workdir/dir_link /dirAnother/
COPY --from=t /workdir/*_link /wild/
COPY chain /ctx/
COPY chain /renamed
"""
    rootfs = _build(tmp_path, {"Dockerfile": dockerfile, "tree/temp/target": "target", "tree/temp/dir/inner": "in",
                               "data.txt": "data"},
                    {"tree/workdir/relative_link": "../temp/target", "tree/workdir/absolute_link": "/temp/target",
                     "tree/workdir/chain_link": "relative_link", "tree/workdir/dir_link": "../temp/dir",
                     "link": "data.txt", "chain": "link"})
    for name in ("relative_link", "chain_link", "absolute_link"):
        path = rootfs / "workdirAnother" / name
        assert not path.is_symlink() and path.read_text() == "target", name
        assert (rootfs / "wild" / name).read_text() == "target"
    assert not (rootfs / "workdirAnother" / "target").exists()
    # A link to a directory copies the directory's contents, as a directory source does.
    assert (rootfs / "dirAnother" / "inner").read_text() == "in"
    assert (rootfs / "wild" / "inner").read_text() == "in"
    assert (rootfs / "ctx" / "chain").read_text() == "data" and not (rootfs / "ctx" / "data.txt").exists()
    assert (rootfs / "renamed").read_text() == "data" and not (rootfs / "renamed").is_symlink()


def test_wildcards_after_dockerignore_and_empty_wildcards(tmp_path: Path):
    dockerfile = """\
FROM scratch
COPY ignore/* /foo
COPY package.json package-lock.json* /app/
COPY nomatch* /nothing/
"""
    rootfs = _build(tmp_path, {"Dockerfile": dockerfile, ".dockerignore": "ignore/**\n!ignore/foo\n",
                               "ignore/foo": "foo", "ignore/bar": "bar", "ignore/baz": "baz", "package.json": "{}"})
    assert (rootfs / "foo").is_file() and (rootfs / "foo").read_text() == "foo"
    assert sorted(os.listdir(rootfs / "app")) == ["package.json"]


def _tar(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def test_wildcard_matching_several_archives_extracts_them_all_into_dest(tmp_path: Path):
    # BuildKit asks for a directory destination only of several sources written out, never of a wildcard's matches.
    rootfs = _build(tmp_path, {"Dockerfile": "FROM scratch\nADD *.tar /dest\n", "t.tar": _tar({"foo": "content0"}),
                               "b.tar": _tar({"bar": "content1"})})
    assert (rootfs / "dest" / "foo").read_text() == "content0" and (rootfs / "dest" / "bar").read_text() == "content1"


def test_several_sources_written_out_need_a_directory(tmp_path: Path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY a b /foo\n", "a": "a", "b": "b"})
    result = dockyard("build", "--progress=plain", "--output", f"type=oci,dest={tmp_path / 'oci'}", str(context))
    assert result.returncode == 3, result.stderr
    assert "several sources the destination must be a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_workdir_owner_in_a_stage_without_passwd_then_with_a_copied_one(tmp_path: Path):
    dockerfile = """\
FROM scratch
USER root
WORKDIR /as-root
USER nosuchuser
WORKDIR /as-unknown
USER 1234
WORKDIR /as-number
COPY passwd /etc/passwd
USER web
WORKDIR /as-web
USER web:0
WORKDIR /as-web-gid0
"""
    rootfs = _build(tmp_path, {"Dockerfile": dockerfile, "passwd": PASSWD})
    owners = {name: (os.lstat(rootfs / name).st_uid, os.lstat(rootfs / name).st_gid)
              for name in ("as-root", "as-unknown", "as-number", "as-web", "as-web-gid0")}
    assert owners == {"as-root": (0, 0), "as-unknown": (0, 0), "as-number": (1234, 1234),
                      "as-web": (2000, 3000), "as-web-gid0": (2000, 0)}
