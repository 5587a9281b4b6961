""".dockerignore and --exclude patterns: moby/patternmatcher's rules, and the context that applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.context import BuildContext, DockerIgnore, PatternMatcher, glob_in_root


@pytest.mark.parametrize("pattern, path, excluded", [
    ("*.log", "a.log", True),
    ("*.log", "dir/a.log", False),  # `*` never crosses a slash
    ("**/*.log", "dir/sub/a.log", True),
    ("**/*.log", "a.log", True),  # `**/` may match no directory at all
    ("dir/**", "dir/x/y", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("[ab].conf", "a.conf", True),
    ("[ab].conf", "c.conf", False),
    ("/root.txt", "root.txt", True),  # a leading slash is dropped
    ("./x/../y.txt", "y.txt", True),  # patterns are filepath.Clean'd
    ("tmp/", "tmp/t.txt", True),  # matching a directory matches everything below it
    ("build", "build/out/bin", True),
    ("\\#name", "#name", True),  # a backslash escapes
])
def test_pattern(pattern, path, excluded):
    assert PatternMatcher([pattern]).matches(path) is excluded


def test_last_matching_line_wins():
    ignore = DockerIgnore.parse("*.txt\n!important.txt\n!again.txt\nagain.txt\n")
    assert ignore.matches("notes.txt")
    assert not ignore.matches("important.txt")
    assert ignore.matches("again.txt")


def test_exception_inside_an_excluded_directory():
    ignore = DockerIgnore.parse("docs\n!docs/keep.md\n")
    assert ignore.matches("docs") and ignore.matches("docs/drop.md") and ignore.matches("docs/other/x.md")
    assert not ignore.matches("docs/keep.md")
    assert ignore.may_include_below("docs")
    assert not DockerIgnore.parse("docs\n").may_include_below("docs")


def test_file_format_comments_blank_lines_and_whitespace():
    ignore = DockerIgnore.parse("\ufeff# comment\n\n   \n  spaced.txt  \n #notacomment\n")
    assert [p.text for p in ignore.patterns] == ["spaced.txt", "#notacomment"]
    assert ignore.matches("spaced.txt") and ignore.matches("#notacomment") and not ignore.matches("# comment")


def test_per_dockerfile_ignore_file_wins(tmp_path: Path):
    (tmp_path / ".dockerignore").write_text("general.txt\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("specific.txt\n")
    specific = DockerIgnore.load(tmp_path, tmp_path / "app.Dockerfile")
    assert specific.matches("specific.txt") and not specific.matches("general.txt")
    general = DockerIgnore.load(tmp_path, tmp_path / "Dockerfile")
    assert general.matches("general.txt") and not general.matches("specific.txt")
    assert not DockerIgnore.load(tmp_path / "nothing", tmp_path / "nothing" / "Dockerfile")


def test_context_visibility_and_walking(tmp_path: Path):
    for rel in ("docs/keep.md", "docs/drop.md", "a.txt", "secret.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    context = BuildContext(tmp_path, DockerIgnore.parse("docs\n!docs/keep.md\nsecret.txt\n"))
    assert context.visible(str(tmp_path)) and context.visible(str(tmp_path / "a.txt"))
    assert not context.visible(str(tmp_path / "secret.txt"))
    assert not context.visible(str(tmp_path / "docs")) and context.walk_into(str(tmp_path / "docs"))
    assert context.visible(str(tmp_path / "docs" / "keep.md"))
    assert [Path(p).name for p in context.glob("*.txt")] == ["a.txt"]


def test_glob_follows_directory_symlinks_inside_the_root(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("f")
    (tmp_path / "link").symlink_to("/real")  # absolute: resolved inside the root, never on the host
    assert glob_in_root(str(tmp_path), "link/*.txt") == [str(tmp_path / "real" / "f.txt")]


def test_glob_negated_class_is_gos(tmp_path: Path):
    for name in ("a1", "b1", "c1"):
        (tmp_path / name).write_text(name)
    # COPY sources use Go's filepath.Match, where `[^a]` is the negated class.
    assert [Path(p).name for p in glob_in_root(str(tmp_path), "[^a]1")] == ["b1", "c1"]
