"""What a stage's steps read besides their own root: the build context, earlier stages, named contexts
(--build-context) and images (COPY --from, RUN --mount from=), and how each of them enters a cache key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import NamedTuple, TYPE_CHECKING

from ..cache.digests import FileDigests
from ..context import BuildContext
from ..dockerfile import instructions as ins
from ..errors import DockerfileError
from ..image.model import Image
from ..named_contexts import NamedContext
from ..rootfs import RootFS, Workspace, mounted_readonly

if TYPE_CHECKING:
    from ..context_sources import NamedContextLoader


@dataclass
class StageResult:
    """What later stages need from a finished stage: its image, its root filesystem and its cache key."""

    image: Image
    rootfs: RootFS
    key: str = ""


class StageSources(NamedTuple):
    """The sources of one stage's steps. `stages` is the build's own record of finished stages, filled as they
    finish: a stage reads only the ones before it."""

    context: BuildContext
    dockerfile: ins.Dockerfile
    stage_index: int
    stages: Mapping[int, StageResult]
    workspace: Workspace
    named_contexts: NamedContextLoader | None = None
    # COPY --from=IMAGE (not a stage): returns that image's unpacked root.
    image_rootfs: Callable[[str, ins.Instruction], RootFS] | None = None
    # COPY --from=IMAGE / RUN --mount=from=IMAGE in a cache key: that image's manifest digest.
    image_digest: Callable[[str, ins.Instruction], str] | None = None
    # Content digests of context files remembered between builds, for COPY/ADD and bind-mount cache keys.
    file_digests: FileDigests | None = None

    def stage_named(self, ref: str) -> ins.Stage | None:
        """The stage `ref` names, by name or index; None when it names an image. (The plan has already refused
        a reference to this stage or a later one.)"""
        stage = self.dockerfile.stage_by_name(ref)
        if stage is None and ref.isdigit() and int(ref) < len(self.dockerfile.stages):
            stage = self.dockerfile.stages[int(ref)]
        return stage

    def named_context(self, ref: str) -> NamedContext | None:
        """The named context `ref` names when it names no stage (a stage of a context's name is replaced by the
        context already)."""
        if self.named_contexts is None or self.stage_named(ref) is not None:
            return None
        return self.named_contexts.lookup(ref)

    def rootfs(self, inst: ins.Instruction, ref: str, flag: str) -> RootFS:
        """The root that `flag`=`ref` reads: an earlier stage's, a named context's, or an image's."""
        stage = self.stage_named(ref)
        if stage is not None:
            if stage.index >= self.stage_index or stage.index not in self.stages:
                raise DockerfileError(f"{flag}={ref} must name a stage before this one")
            return self.stages[stage.index].rootfs
        context = self.named_context(ref)
        if context is not None:
            assert self.named_contexts is not None
            return self.named_contexts.image(context).rootfs
        if self.image_rootfs is None:
            raise DockerfileError(f"{flag}={ref}: no such stage")
        return self.image_rootfs(ref, inst)

    def root(self, inst: ins.Instruction, ref: str, flag: str, stack: ExitStack) -> str:
        """The directory `flag`=`ref` reads, for the time of `stack`: a directory context's tree itself, else a
        read-only mount of the root `rootfs` gives."""
        context = self.named_context(ref)
        if context is not None and context.is_directory:
            assert self.named_contexts is not None
            return self.named_contexts.tree(context).directory
        return stack.enter_context(mounted_readonly(self.rootfs(inst, ref, flag), self.workspace))

    def key_of(self, inst: ins.Instruction, ref: str) -> str:
        """A --from source for a cache key: a stage's final key, a named context's digest (a tree's content or an
        image's manifest), or an image's manifest digest. A stage that is not built yet gets a placeholder: the
        step misses and reports the error when it runs."""
        stage = self.stage_named(ref)
        if stage is None and ref.isdigit():
            return f"unknown stage {ref}"
        if stage is not None:
            result = self.stages.get(stage.index)
            return result.key if result is not None and stage.index < self.stage_index else f"stage {ref} not built"
        context = self.named_context(ref)
        if context is not None:
            assert self.named_contexts is not None
            return f"context {self.named_contexts.digest(context)}"
        if self.image_digest is None:
            raise DockerfileError(f"--from={ref}: no such stage")
        return self.image_digest(ref, inst)
