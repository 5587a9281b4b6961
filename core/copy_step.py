"""COPY and ADD as instructions: expanding sources and destination, finding the sources (the context, a
stage, an image, a URL), docker's destination rules, and committing the result as one layer. The file
operations themselves are in copy.py."""

from __future__ import annotations

import os
import posixpath
import shutil
from contextlib import ExitStack
from typing import TYPE_CHECKING

from .context import glob_in_root, has_wildcard
from .copy import Copier, CopyOptions, download, extract_archive, is_archive, parse_chmod
from .dockerfile import instructions as ins
from .errors import ContextError, DockerfileError, StepFailed
from .image.model import Layer
from .rootfs import RootFS, mounted_readonly, mounted_step
from .rootfs.paths import clean, image_path_join, resolve_in_root
from .users import UnknownUser, resolve_chown

if TYPE_CHECKING:
    from .executor import StageExecutor


def execute_copy(executor: StageExecutor, inst: ins.Copy) -> Layer:
    # --link is accepted: it changes how BuildKit caches the layer, never the files it contains.
    unsupported = [f for f in ("exclude", "parents", "checksum", "keep-git-dir") if inst.flag(f) is not None]
    if unsupported:
        raise DockerfileError(f"{inst.keyword} --{unsupported[0]} is not supported yet")
    if inst.heredocs:
        raise DockerfileError(f"{inst.keyword} with a heredoc is not supported yet")
    if inst.json_form:
        sources = [executor.expand(inst, s) for s in inst.sources]
        dest = executor.expand(inst, inst.dest)
    else:
        words = [w for text in (*inst.sources, inst.dest) for w in executor.expand_words(inst, text)]
        sources, dest = words[:-1], words[-1]
    if not sources:
        raise DockerfileError(f"{inst.keyword} needs a source and a destination")
    workdir = executor.image.container_config.get("WorkingDir") or "/"
    dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    dest_path = image_path_join(workdir, dest)
    from_ref = inst.flag("from")
    chown, chmod = inst.flag("chown"), inst.flag("chmod")
    upper = executor._take_upper()
    with ExitStack() as stack:
        if from_ref is not None:
            source_root = stack.enter_context(mounted_readonly(_from_rootfs(executor, inst, executor.expand(inst, from_ref)),
                                                               executor.s.workspace))
            visible = lambda p: True  # noqa: E731  .dockerignore never applies to --from
        else:
            source_root = executor.s.context.root
            visible = executor.s.context.visible
        step = stack.enter_context(mounted_step(executor.rootfs, executor.s.workspace, upper=upper))
        owner = None
        if chown:
            try:
                owner = resolve_chown(step.merged, executor.expand(inst, chown))
            except UnknownUser as exc:
                raise StepFailed(str(exc)) from None
        try:
            mode = parse_chmod(executor.expand(inst, chmod)) if chmod else None
        except ValueError as exc:
            raise DockerfileError(str(exc)) from None
        copier = Copier(step.merged, CopyOptions(owner=owner, mode=mode,
                                                 keep_source_owner=from_ref is not None), visible)
        matches: list[str] = []
        remote: list[str] = []
        for source in sources:
            if inst.is_add and source.startswith(("http://", "https://")):
                remote.append(source)
                continue
            found = _find_sources(executor, source_root, source, visible, from_ref)
            if not found:
                where = f"stage {from_ref!r}" if from_ref else f"the build context ({executor.s.context.root})"
                raise ContextError(f"{inst.keyword} source {source!r} not found in {where}",
                                   hint="check the path (it is relative to the context)" +
                                   ("" if from_ref else "; is it excluded by .dockerignore?"))
            matches.extend(found)
        many = len(matches) + len(remote) > 1 or any(has_wildcard(s) for s in sources)
        if many and not dest_is_dir:
            raise DockerfileError(f"when {inst.keyword} has several sources the destination must be a "
                                  f"directory ending in /: {dest!r}")
        for host_source in matches:
            _copy_one(executor, inst, copier, step.merged, host_source, dest_path, dest_is_dir)
        for url in remote:
            _add_url(executor, copier, step.merged, url, dest_path, dest_is_dir)
    return executor._commit(upper, f"{inst.keyword} {' '.join(sources)} {dest} # dockyard")

def _find_sources(executor: StageExecutor, root: str, source: str, visible, from_ref) -> list[str]:
    if has_wildcard(source):
        return glob_in_root(root, source, visible)
    host = resolve_in_root(root, clean(source))
    if not os.path.lexists(host):
        return []
    if not visible(host) and from_ref is None:
        # The path itself is ignored; docker still copies a directory's non-ignored children.
        if not os.path.isdir(host):
            return []
    return [host]

def _copy_one(executor: StageExecutor, inst: ins.Copy, copier: Copier, root: str, host_source: str, dest_path: str,
              dest_is_dir: bool) -> None:
    if os.path.isdir(host_source) and not os.path.islink(host_source):
        # A source directory copies its contents, not itself.
        copier.copy_dir_contents(host_source, copier.ensure_dir(dest_path))
        return
    if inst.is_add and is_archive(host_source):
        extract_archive(host_source, root, dest_path)  # a local archive is unpacked into dest
        return
    if dest_is_dir or os.path.isdir(resolve_in_root(root, dest_path)):
        parent = copier.ensure_dir(dest_path)
        copier.copy(host_source, os.path.join(parent, os.path.basename(host_source)))
    else:
        copier.ensure_dir(posixpath.dirname(dest_path))
        copier.copy(host_source, resolve_in_root(root, dest_path, follow_final=False))

def _add_url(executor: StageExecutor, copier: Copier, root: str, url: str, dest_path: str, dest_is_dir: bool) -> None:
    name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "index.html"
    tmp_dir = executor.s.workspace.new_file_dir()
    tmp = os.path.join(tmp_dir, name)
    mtime = download(url, tmp)
    os.chmod(tmp, 0o600)  # docker: downloaded files are 0600
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    if dest_is_dir or os.path.isdir(resolve_in_root(root, dest_path)):
        target = os.path.join(copier.ensure_dir(dest_path), name)
    else:
        copier.ensure_dir(posixpath.dirname(dest_path))
        target = resolve_in_root(root, dest_path, follow_final=False)
    copier.copy(tmp, target)
    shutil.rmtree(tmp_dir, ignore_errors=True)

def _from_rootfs(executor: StageExecutor, inst: ins.Instruction, ref: str) -> RootFS:
    stage = executor.dockerfile.stage_by_name(ref)
    if stage is None and ref.isdigit():
        index = int(ref)
        if index >= executor.stage.index:
            raise DockerfileError(f"--from={ref} refers to a stage that is not before this one")
        stage = executor.dockerfile.stages[index]
    if stage is not None:
        if stage.index >= executor.stage.index:
            raise DockerfileError(f"--from={ref} refers to stage {stage.display_name}, which is not before "
                                  "this one")
        return executor.stages[stage.index].rootfs
    if executor.s.image_rootfs is None:
        raise DockerfileError(f"--from={ref}: no such stage")
    return executor.s.image_rootfs(ref, inst)


