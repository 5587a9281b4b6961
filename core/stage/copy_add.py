"""COPY and ADD: resolved once with the stage's state (flags, sources and destination expanded, heredoc texts)
into a CopyOp, which gives the step's cache inputs and copies the sources (the context, a stage, an image, a
URL, a git repository, a heredoc) into the step's upper directory with docker's destination rules; the
executor commits the result as one layer. File operations are in copy.py, downloads and clones in fetch.py."""

from __future__ import annotations

import io
import os
import posixpath
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from ..cache.keys import tree_digest
from ..context import PatternMatcher, glob_in_root, has_wildcard
from ..copy import Copier, CopyOptions, Mode, extract_archive, is_archive, parse_chmod, write_file
from ..dockerfile import instructions as ins
from ..dockerfile.heredoc import heredoc_content
from ..errors import ContextError, DockerfileError, StepFailed
from ..fetch import GitRef, clone, download, is_url, parse_git_url, url_file_name
from ..rootfs import mounted_step
from ..rootfs.paths import clean, image_path_join, resolve_in_root
from ..users import UnknownUser, resolve_chown
from .source_filter import ContextPresence, SourceFilter
from .sources import StageSources
from .state import StageState
from .step import StepChanges, StepResources

HEREDOC_FILE_MODE = 0o644
DOWNLOAD_MODE = 0o600  # docker: a file ADD downloads is 0600 (before --chmod)

T = TypeVar("T")


@dataclass(frozen=True)
class CopyFlags:
    """The flags of one COPY/ADD, expanded and checked."""

    from_ref: str | None
    chown: str | None
    mode: Mode | None
    excludes: PatternMatcher
    parents: bool
    checksum: str | None
    keep_git_dir: bool
    unpack: bool | None = None  # ADD --unpack: None extracts local archives only, as ADD always did


@dataclass(frozen=True)
class Target:
    """The destination: its absolute image path, and whether it names a directory to copy into."""

    path: str
    is_dir: bool


@dataclass(frozen=True)
class Expanded(Generic[T]):
    """A text expanded when the instruction was resolved, or the expansion's error. The error is raised where
    the step first uses the text (after the errors of its sources, as when it was expanded on use), or not at
    all when the step never uses it."""

    value: T | None = None
    error: DockerfileError | None = None

    @classmethod
    def of(cls, make: Callable[[], T]) -> Expanded[T]:
        try:
            return cls(make())
        except DockerfileError as exc:
            return cls(error=exc)

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@dataclass(frozen=True)
class CopyOp:
    """One COPY or ADD as the stage's state made it."""

    inst: ins.Copy
    flags: CopyFlags
    sources: tuple[str, ...]  # expanded, split into words unless in JSON form
    dest: str  # expanded
    workdir: str
    heredoc_texts: tuple[Expanded[str], ...]  # what each of inst.heredocs writes
    raw_flags: Expanded[list[list[str | None]]]  # every flag as written, its value expanded: in the cache key

    def cache_inputs(self, sources: StageSources) -> dict[str, Any] | None:
        """What the COPY/ADD reads, for its cache key: its expanded operands and flags, and the content of its
        sources (context files after .dockerignore and --exclude, by content; a stage by its key; an image by
        its digest). None when it cannot be known without doing the step: ADD of a URL or git repository without
        --checksum is fetched again on every build, as docker does."""
        flags, inst = self.flags, self.inst
        contents: list[dict[str, Any]] = []
        if flags.from_ref is not None:
            contents.append({"from": sources.key_of(inst, flags.from_ref)})
        for source in self.sources:
            remote = inst.is_add and (parse_git_url(source) is not None or is_url(source))
            if remote:
                if flags.checksum is None:
                    return None
                contents.append({"remote": source, "checksum": flags.checksum})
            elif flags.from_ref is None:
                finder = _CopyRun(sources, inst, flags, sources.context.root, "", Target("/", True), CopyOptions())
                for host, rel in finder.add_sources(source):
                    digest = tree_digest(host, finder.source_filter(host), sources.file_digests)
                    contents.append({"source": rel, "digest": digest})
        heredocs = [[h.name, text.get()] for h, text in zip(inst.heredocs, self.heredoc_texts)]
        return {"instruction": inst.keyword, "sources": list(self.sources), "dest": self.dest,
                "flags": self.raw_flags.get(), "workdir": self.workdir, "heredocs": heredocs,
                "contents": contents}

    def apply(self, step: StepResources) -> StepChanges:
        """Copy the sources into the upper directory `step.take_upper` gives."""
        inst, flags, sources, dest = self.inst, self.flags, self.sources, self.dest
        if not sources and not inst.heredocs:
            raise DockerfileError(f"{inst.keyword} needs a source and a destination")
        target = Target(image_path_join(self.workdir, dest), _names_directory(dest) or flags.parents)
        if len(sources) + len(inst.heredocs) > 1 and not target.is_dir:
            raise DockerfileError(f"when {inst.keyword} has several sources the destination must be a directory "
                                  f"ending in /: {dest!r}")
        upper = step.take_upper()
        with ExitStack() as stack:
            source_root = _source_root(step.sources, inst, flags, stack)
            mounted = stack.enter_context(mounted_step(step.rootfs, step.workspace, upper=upper))
            options = CopyOptions(owner=_owner(mounted.merged, flags), mode=flags.mode,
                                  keep_source_owner=flags.from_ref is not None,
                                  sockets_as_files=flags.from_ref is None)
            copy = _CopyRun(step.sources, inst, flags, source_root, mounted.merged, target, options)
            # A wildcard is expanded after .dockerignore and its matches are copied as BuildKit copies them: one
            # file to the file `dest`, several archives all extracted into `dest`. Only several sources written
            # out need a directory destination (docker's documented rule, checked above).
            for source in sources:
                copy.add(source)
            for heredoc, text in zip(inst.heredocs, self.heredoc_texts):
                copy.write_heredoc(heredoc, text.get())
        shown = " ".join([*sources, *(f"<<{h.name}" for h in inst.heredocs)])
        return StepChanges(upper, f"{inst.keyword} {shown} {dest} # dockyard")


def resolve_copy(inst: ins.Copy, state: StageState) -> CopyOp:
    """The COPY/ADD as the current stage state makes it."""
    flags = _read_flags(inst, state)
    sources, dest = _operands(inst, state)
    texts = tuple(Expanded.of(partial(_heredoc_text, inst, heredoc, state)) for heredoc in inst.heredocs)
    raw_flags = Expanded.of(lambda: sorted([name, state.expand(inst, value) if value is not None else None]
                                           for name, value in inst.flags))
    return CopyOp(inst, flags, tuple(sources), dest, state.workdir, texts, raw_flags)


def _heredoc_text(inst: ins.Copy, heredoc: ins.Heredoc, state: StageState) -> str:
    return heredoc_content(heredoc, lambda ref: state.expand(inst, ref))


def _names_directory(dest: str) -> bool:
    return dest.endswith(("/", "/.", "/..")) or dest in ("", ".", "..")


def _read_flags(inst: ins.Copy, state: StageState) -> CopyFlags:
    def value(name: str) -> str | None:
        raw = inst.flag(name)
        return None if raw is None else state.expand(inst, raw)

    if not inst.is_add and (inst.flag("checksum") is not None or inst.flag("keep-git-dir") is not None):
        raise DockerfileError("--checksum and --keep-git-dir are ADD flags", hint="use ADD for remote sources")
    if not inst.is_add and inst.flag("unpack") is not None:
        raise DockerfileError("--unpack is an ADD flag", hint="use ADD to extract an archive")
    unpack = value("unpack")
    if unpack not in (None, "true", "false"):
        raise DockerfileError(f"invalid --unpack={unpack}: expected true or false")
    chmod = value("chmod")
    try:
        mode = parse_chmod(chmod) if chmod else None
    except ValueError as exc:
        raise DockerfileError(str(exc)) from None
    excludes = [state.expand(inst, p) for p in inst.flag_values("exclude")]
    checksum = value("checksum")
    return CopyFlags(from_ref=value("from"), chown=value("chown") or None, mode=mode,
                     excludes=PatternMatcher(excludes), parents=value("parents") == "true",
                     checksum=checksum, keep_git_dir=value("keep-git-dir") == "true",
                     unpack=None if unpack is None else unpack == "true")


def _operands(inst: ins.Copy, state: StageState) -> tuple[list[str], str]:
    if inst.json_form:
        return [state.expand(inst, s) for s in inst.sources], state.expand(inst, inst.dest)
    # The destination is one word even when it expands to nothing (BuildKit: an empty destination is the
    # WORKDIR, as a directory), or to something with spaces.
    words = [w for text in inst.sources for w in state.expand_words(inst, text)]
    return words, state.expand(inst, inst.dest)


def _source_root(sources: StageSources, inst: ins.Copy, flags: CopyFlags, stack: ExitStack) -> str:
    if flags.from_ref is None:
        return sources.context.root
    return sources.root(inst, flags.from_ref, "--from", stack)


def _owner(root: str, flags: CopyFlags) -> tuple[int, int] | None:
    if not flags.chown:
        return None
    try:
        return resolve_chown(root, flags.chown)
    except UnknownUser as exc:
        raise StepFailed(str(exc), hint="--chown names are looked up in the image's /etc/passwd and "
                                        "/etc/group; numeric ids always work") from None


class _CopyRun:
    """One COPY/ADD's sources going into the image root."""

    def __init__(self, sources: StageSources, inst: ins.Copy, flags: CopyFlags, source_root: str, root: str,
                 target: Target, options: CopyOptions) -> None:
        self.sources = sources
        self.inst = inst
        self.flags = flags
        self.source_root = source_root
        self.root = root
        self.target = target
        self.options = options
        self.from_context = flags.from_ref is None

    def add(self, source: str) -> None:
        git = parse_git_url(source) if self.inst.is_add else None
        if git is not None:
            self._add_git(git)
        elif self.inst.is_add and is_url(source):
            self._add_url(source)
        else:
            for host_source, rel in self.add_sources(source):
                self._copy_local(host_source, rel)

    def add_sources(self, source: str) -> list[tuple[str, str]]:
        """The host paths a local source names (see _find)."""
        if self.flags.checksum is not None:
            raise DockerfileError(f"--checksum applies to URL and git sources, not to {source!r}",
                                  hint="BuildKit verifies checksums of remote sources only")
        return self._find(source)

    def source_filter(self, host_source: str) -> SourceFilter:
        return self._filter(host_source)

    # --- local sources (context, stage, image) -----------------------------------------------------------
    def _find(self, source: str) -> list[tuple[str, str]]:
        """The host paths a source names (symlinks followed, inside the root), each with the path --parents
        keeps: relative to the root, or to the `/./` pivot."""
        base_rel, pattern = "", clean(source)
        if self.flags.parents and "/./" in "/" + source:
            base_rel, _, pattern = ("/" + source).partition("/./")
            pattern = clean(pattern)
        visible = (lambda p: True) if not self.from_context else ContextPresence(self.sources.context).present
        wildcard = has_wildcard(base_rel) or has_wildcard(pattern)
        # --parents: the part before the pivot may hold wildcards too, and `**` spans directories (BuildKit
        # matches --parents sources as include patterns).
        bases = [resolve_in_root(self.source_root, clean(base_rel))]
        if has_wildcard(base_rel):
            bases = [b for b in glob_in_root(self.source_root, base_rel, visible) if os.path.isdir(b)]
        found = []
        for base in bases:
            if self.flags.parents and "**" in pattern:
                lexical = _doublestar_matches(base, pattern, visible)
            elif has_wildcard(pattern):
                lexical = [os.path.relpath(m, base) for m in glob_in_root(base, pattern, visible)]
            else:
                lexical = [pattern]
            for rel in lexical:
                host = resolve_in_root(base, rel)
                if os.path.lexists(host) and visible(host) and not (wildcard and self._excluded_match(base, rel)):
                    found.append((host, rel))
        # A wildcard that matches nothing is no error (BuildKit allows empty wildcards: the idiom
        # `COPY package.json package-lock.json* ./` relies on it); a missing path is.
        if not found and not wildcard:
            self._not_found(source)
        return found

    def _excluded_match(self, base: str, rel: str) -> bool:
        """--exclude also filters a file a wildcard matched, by its own name; a matched directory is copied (its
        contents filtered), so `--exclude=* dir*` still makes the destination directory, as BuildKit does."""
        if not self.flags.excludes or os.path.isdir(resolve_in_root(base, rel)):
            return False
        return self.flags.excludes.matches(posixpath.basename(rel))

    def _not_found(self, source: str) -> None:
        where = f"stage {self.flags.from_ref!r}" if self.flags.from_ref else \
            f"the build context ({self.sources.context.root})"
        named = self.sources.named_context(self.flags.from_ref) if self.flags.from_ref else None
        if named is not None:
            where = f"the named context {named.name!r} ({named.describe()})"
        hint = "check the path (it is relative to the context)"
        if self.from_context and self.sources.context.ignore:
            hint += "; is it excluded by .dockerignore?"
        raise ContextError(f"{self.inst.keyword} source {source!r} not found in {where}", hint=hint)

    def _copier(self, base: str, *, ignore_file: bool = True) -> Copier:
        """A copier for the tree at base: --exclude relative to it, .dockerignore for context sources."""
        return Copier(self.root, self.options, self._filter(base, ignore_file=ignore_file))

    def _filter(self, base: str, *, ignore_file: bool = True) -> SourceFilter:
        context = self.sources.context if self.from_context and ignore_file else None
        return SourceFilter(context, self.flags.excludes, base)

    def _copy_local(self, host_source: str, rel: str) -> None:
        target = self.target
        if self.flags.parents:
            self._make_parents(host_source, rel)
            target = Target(posixpath.join(target.path, rel), False)
            if os.path.isdir(host_source):  # the directory itself, with its metadata, then its contents
                copier = self._copier(host_source)
                copier.copy(host_source, resolve_in_root(self.root, target.path, follow_final=False))
                return
        if os.path.isdir(host_source):
            # A source directory copies its contents, not itself.
            copier = self._copier(host_source)
            copier.copy_dir_contents(host_source, copier.ensure_dir(target.path))
            return
        if self.inst.is_add and self.flags.unpack is not False and is_archive(host_source):
            extract_archive(host_source, self.root, target.path, self.options.owner)  # unpacked into dest
            return
        # A source that is a symlink was followed, but the copy is named after the link (BuildKit names it after
        # the path as written, or as the wildcard matched it).
        self._place(self._copier(host_source), host_source, posixpath.basename(rel) or os.path.basename(host_source),
                    target)

    def _make_parents(self, host_source: str, rel: str) -> None:
        """--parents: the source's parent directories are recreated under the destination, with their own
        modes and times (BuildKit copies them as it walks down to the source)."""
        copier = self._copier(host_source)
        parts = [p for p in posixpath.dirname(rel).split("/") if p]
        host_parent = host_source
        parents = []
        for _ in parts:
            host_parent = os.path.dirname(host_parent)
            parents.append(host_parent)
        image_dir = copier.ensure_dir(self.target.path)
        for part, host_dir in zip(parts, reversed(parents)):
            image_dir = os.path.join(image_dir, part)
            if not os.path.isdir(image_dir):
                copier.copy_dir_only(host_dir, image_dir)

    def _place(self, copier: Copier, host_file: str, name: str, target: Target) -> None:
        """Copy one non-directory to the destination: into it when it is (or names) a directory."""
        if target.is_dir or os.path.isdir(resolve_in_root(self.root, target.path)):
            copier.copy(host_file, os.path.join(copier.ensure_dir(target.path), name))
        else:
            copier.ensure_dir(posixpath.dirname(target.path))
            copier.copy(host_file, resolve_in_root(self.root, target.path, follow_final=False))

    # --- heredocs ------------------------------------------------------------------------------------------
    def write_heredoc(self, heredoc: ins.Heredoc, text: str) -> None:
        """`COPY <<NAME dest`: a 0644 file named NAME (or dest itself) with the heredoc's `text`."""
        with self._staging() as staging:
            path = os.path.join(staging, posixpath.basename(heredoc.name) or "heredoc")
            write_file(io.BytesIO(text.encode()), path)
            os.chmod(path, HEREDOC_FILE_MODE)
            self._place(Copier(self.root, self.options), path, os.path.basename(path), self.target)

    # --- remote sources --------------------------------------------------------------------------------------
    def _add_url(self, url: str) -> None:
        name = url_file_name(url)
        with self._staging() as staging:
            path = os.path.join(staging, name)
            mtime = download(url, path, self.flags.checksum)
            os.chmod(path, DOWNLOAD_MODE)
            if mtime is not None:
                os.utime(path, (mtime, mtime))
            # A download is extracted only when --unpack=true asks for it, whatever it contains.
            if self.flags.unpack and is_archive(path):
                extract_archive(path, self.root, self.target.path, self.options.owner)
                return
            self._place(Copier(self.root, self.options), path, name, self.target)

    def _add_git(self, git: GitRef) -> None:
        with self._staging() as staging:
            checkout = clone(git, os.path.join(staging, "checkout"), self.flags.keep_git_dir,
                                   self.flags.checksum)
            copier = self._copier(checkout, ignore_file=False)  # .dockerignore is about the context only
            copier.copy_dir_contents(checkout, copier.ensure_dir(self.target.path))

    def _staging(self) -> _StagingDir:
        return _StagingDir(self.sources.workspace.new_file_dir())


def _doublestar_matches(base: str, pattern: str, visible: Callable[[str], bool]) -> list[str]:
    """Paths under base (relative to it) that a pattern with `**` names, topmost first: what a matched
    directory holds comes with it. Symlinks are not followed on the way down."""
    regex = PatternMatcher([pattern]).patterns[0].regex
    matches: list[str] = []
    for top, dirs, files in os.walk(base):
        rel_top = os.path.relpath(top, base)
        kept = []
        for name in sorted(dirs) + sorted(files):
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            if not visible(os.path.join(top, name)):
                continue
            if regex.match(rel):
                matches.append(rel)
            elif name in dirs:
                kept.append(name)
        dirs[:] = sorted(kept)
    return matches


class _StagingDir:
    """A scratch directory in the build's workspace, removed when the source has been copied."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
