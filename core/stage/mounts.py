"""RUN --mount's host side: each parsed mount (dockerfile/mounts.py) prepared on the host for the sandbox.

* bind: a path of the context or of a stage/image (`from`), read-only unless `rw`; writes then go to a
  throw-away overlay (or a copy, for a file), as BuildKit discards them.
* cache: a directory under the cache-mount root, kept between builds and never in a layer; `sharing` is done
  with file locks (cache/mount_dirs.py).
* tmpfs: made by the sandbox.
* secret: the value (from `--secret`) written to a tmpfs mounted only in dockyard's private mount namespace,
  bound read-only as one file, or given as an environment variable; gone when the step ends.
* ssh: a socket with the mount's owner and mode that relays to the agent given with `--ssh` (ssh_agent.py).

Mount targets in the image root get their mount points from a stub layer *below* the image (as the
workspace scaffold does for /proc and /dev), so nothing of them reaches the step's layer.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache.mount_dirs import cache_directory
from ..dockerfile import instructions as ins
from ..dockerfile.mounts import RunMount
from ..errors import ContextError, DockerfileError, StepFailed
from ..isolation import SandboxMount
from ..options import BuildOptions, SecretSource
from ..rootfs import ownership
from ..rootfs.overlay import mount, overlay_mount, umount
from ..rootfs.paths import clean, resolve_in_root
from ..ssh_agent import AgentRelay
from .sources import StageSources

# Paths the sandbox mounts itself: RUN mounts may not cover them.
_SANDBOX_PATHS = ("proc", "sys")


@dataclass(frozen=True)
class MountSources:
    """What RUN --mount takes from the host: --secret and --ssh, and where cache mounts persist."""

    secrets: dict[str, SecretSource] = field(default_factory=dict)
    ssh: dict[str, str] = field(default_factory=dict)  # id -> agent socket
    cache_root: Path | None = None
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, options: BuildOptions) -> MountSources:
        return cls({s.id: s for s in options.secrets}, {s.id: s.socket for s in options.ssh},
                   options.cache_mounts_root, options.environ)


@dataclass
class PreparedMounts:
    """One RUN step's mounts, ready for the sandbox, and what they add to its environment (secrets, SSH agent)."""

    mounts: list[SandboxMount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # secrets given as variables
    agent_socket: str | None = None  # SSH_AUTH_SOCK, unless the step's environment sets it


class MountPreparer:
    """Prepares one RUN step's mounts; everything it makes is released by `stack` when the step ends."""

    def __init__(self, sources: StageSources, host: MountSources, inst: ins.Run, view: str, stack: ExitStack) -> None:
        self.sources = sources  # the context, other stages, images: what bind and cache mounts read
        self.host = host
        self.inst = inst
        self.view = view  # a read-only view of the step's root, to resolve targets in
        self.stack = stack
        self.out = PreparedMounts()
        self._secret_dir: str | None = None
        self._ssh_count = 0

    def prepare(self, specs: list[RunMount]) -> PreparedMounts:
        for spec in specs:
            getattr(self, "_" + spec.type)(spec)
        return self.out

    def _add(self, spec_target: str, **kwargs: Any) -> None:
        self.out.mounts.append(SandboxMount(target=self.resolve(spec_target), **kwargs))

    def resolve(self, target: str) -> str:
        """The target with the image's symlinks resolved inside the root (a symlinked parent never leads
        outside it)."""
        rel = os.path.relpath(resolve_in_root(self.view, target), self.view)
        resolved = "/" if rel == "." else "/" + rel
        if resolved == "/":
            raise DockerfileError(f"cannot mount on {target}: it is the root directory")
        if resolved.split("/")[1] in _SANDBOX_PATHS:
            raise DockerfileError(f"cannot mount on {target}: /{resolved.split('/')[1]} is the kernel's")
        return resolved

    # --- bind
    def _bind(self, spec: RunMount) -> None:
        root, where = self._source_root(spec)
        host = resolve_in_root(root, clean(spec.source))
        if not os.path.lexists(host):
            raise ContextError(f"RUN --mount source {spec.source or '/'!r} not found in {where}",
                               hint="the source is relative to the context (or to the from= stage's root)")
        is_file = not os.path.isdir(host)
        context = self.sources.context
        if not spec.from_ and not context.visible(host):
            raise ContextError(f"RUN --mount source {spec.source!r} is excluded by .dockerignore",
                               hint="a bind mount sees the context without what .dockerignore excludes, as in "
                                    "docker; add an exception (!PATH) to .dockerignore")
        if not spec.from_ and not is_file and context.ignore:
            host = self._visible_context(host)
        if not spec.readonly:
            host = self._writable_copy(host, is_file)
        self._add(spec.target, source=host, readonly=spec.readonly, file=is_file)

    def _source_root(self, spec: RunMount) -> tuple[str, str]:
        if not spec.from_:
            return str(self.sources.context.root), "the build context"
        return self.sources.root(self.inst, spec.from_, "--mount from", self.stack), f"{spec.from_!r}"

    def _visible_context(self, host_dir: str) -> str:
        """A context directory as BuildKit's bind mount shows it: what .dockerignore excludes is not there."""
        scratch = self.sources.workspace.new_file_dir()
        self.stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        view = os.path.join(scratch, "context")
        self.sources.context.visible_tree(host_dir, view)
        return view

    def _writable_copy(self, host: str, is_file: bool) -> str:
        """Writes to a rw bind are discarded: an overlay over a directory, a private copy of a file."""
        ws = self.sources.workspace
        scratch = ws.new_file_dir()
        self.stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        if is_file:
            copy = os.path.join(scratch, "file")
            shutil.copy2(host, copy, follow_symlinks=False)
            return copy
        if ws.trees is not None:  # no overlayfs here: a private copy of the directory
            copy = os.path.join(scratch, "dir")
            shutil.copytree(host, copy, symlinks=True)
            return copy
        upper, work = os.path.join(scratch, "upper"), os.path.join(scratch, "work")
        os.mkdir(upper)
        os.mkdir(work)
        # Volatile: what the step writes here is thrown away, so it need never reach the disk.
        return self.stack.enter_context(overlay_mount([host], ws.new_mountpoint(), upper, work, volatile=True))

    # --- cache
    def _cache(self, spec: RunMount) -> None:
        if self.host.cache_root is None:
            raise StepFailed("cache mounts need a cache directory, and none is configured")
        data = self.stack.enter_context(cache_directory(self.host.cache_root, spec.id, spec.sharing,
                                                        lambda path: self._initialize_cache(spec, path)))
        self._add(spec.target, source=data, readonly=spec.readonly)

    def _initialize_cache(self, spec: RunMount, data: str) -> None:
        """A new cache: its contents from `from`/`source` if given, then docker's mode/uid/gid (0755, 0:0)."""
        if spec.from_:
            seed = resolve_in_root(self._source_root(spec)[0], clean(spec.source))
            if not os.path.isdir(seed):
                raise ContextError(f"RUN --mount cache source {spec.source or '/'!r} is not a directory in "
                                   f"{spec.from_!r}")
            shutil.copytree(seed, data, symlinks=True)
        else:
            os.mkdir(data)
        ownership.chown(data, spec.uid or 0, spec.gid or 0)
        os.chmod(data, 0o755 if spec.mode is None else spec.mode)

    # --- tmpfs
    def _tmpfs(self, spec: RunMount) -> None:
        self._add(spec.target, kind="tmpfs", readonly=False, options=f"size={spec.size}" if spec.size else "")

    # --- secret
    def _secret(self, spec: RunMount) -> None:
        source = self.host.secrets.get(spec.id)
        if source is None:
            if spec.required:
                raise StepFailed(f"secret {spec.id} not found",
                                 hint=f"pass it with --secret id={spec.id},src=FILE or --secret id={spec.id},env=VAR")
            return  # an optional secret that was not given: no file, no variable (BuildKit)
        value = source.read(self.host.environ)
        if spec.env:
            self.out.env[spec.env] = value.decode("utf-8", "surrogateescape")
        target = spec.target or ("" if spec.env else f"/run/secrets/{posixpath.basename(spec.id)}")
        if target:
            path = self._secret_file(spec, value)
            self._add(target, source=path, readonly=True, file=True)

    def _secret_file(self, spec: RunMount, value: bytes) -> str:
        if self._secret_dir is None and self.sources.workspace.trees is not None:
            # No mounts in this mode: a private directory of the workspace, removed when the step ends.
            self._secret_dir = self.sources.workspace.new_file_dir()
            os.chmod(self._secret_dir, 0o700)
            self.stack.callback(shutil.rmtree, self._secret_dir, ignore_errors=True)
        elif self._secret_dir is None:
            # In memory, in dockyard's private mount namespace only, and unmounted when the step ends.
            self._secret_dir = self.sources.workspace.new_mountpoint()
            mount("tmpfs", self._secret_dir, "tmpfs", 0, "mode=0700,size=16m")
            self.stack.callback(umount, self._secret_dir)
        path = os.path.join(self._secret_dir, f"{len(os.listdir(self._secret_dir))}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(value)
        ownership.chown(path, spec.uid or 0, spec.gid or 0)
        os.chmod(path, 0o400 if spec.mode is None else spec.mode)
        return path

    # --- ssh
    def _ssh(self, spec: RunMount) -> None:
        ssh_id = spec.id or "default"
        agent = self.host.ssh.get(ssh_id)
        target = spec.target or f"/run/buildkit/ssh_agent.{self._ssh_count}"
        self._ssh_count += 1
        if agent is None:
            if spec.required:
                raise StepFailed(f"no ssh agent {ssh_id!r} was given to the build",
                                 hint=f"pass one with --ssh {ssh_id} (uses $SSH_AUTH_SOCK) or --ssh {ssh_id}=SOCKET")
            return
        directory = self.sources.workspace.new_file_dir()
        os.chmod(directory, 0o700)
        relay = AgentRelay(agent, os.path.join(directory, "agent.sock"), spec.uid or 0, spec.gid or 0,
                           0o600 if spec.mode is None else spec.mode)
        self.stack.callback(relay.close)
        self._add(target, source=relay.path, readonly=False, file=True)
        # As BuildKit's ExecOp: the first ssh mount is the agent.
        self.out.agent_socket = self.out.agent_socket or target


def needs_mountpoint(mount_: SandboxMount, others: list[SandboxMount]) -> bool:
    """Whether the mount point lies in the image root (not in /dev, which the sandbox makes, nor inside
    another mount, where the sandbox creates it if missing)."""
    inside = [m.target for m in others if m is not mount_ and not m.file and mount_.target.startswith(m.target + "/")]
    return not inside and not mount_.target.startswith("/dev/") and mount_.target != "/dev"


def make_stub_layer(view: str, mounts: list[SandboxMount], directory: str) -> None:
    """Mount points for the targets the image lacks, in a layer directory that goes *below* the image: it
    never shadows the image's files, and being a lower layer nothing of it reaches the step's layer."""
    for m in mounts:
        existing = os.path.join(view, m.target.lstrip("/"))
        if os.path.lexists(existing):
            if m.file == os.path.isdir(existing):
                what = "directory" if m.file else "file"
                raise StepFailed(f"cannot mount on {m.target}: the image has a {what} there")
            continue
        stub = os.path.join(directory, m.target.lstrip("/"))
        os.makedirs(stub if not m.file else os.path.dirname(stub), mode=0o755, exist_ok=True)
        if m.file:
            Path(stub).touch()


def make_hidden_mountpoints(merged: str, mounts: list[SandboxMount]) -> list[str]:
    """Mount points the stub layer could not provide because an opaque directory or a whiteout of the image
    hides it: created in the step's root, to be removed from its upper directory after the step. Returns the
    paths created, parents first."""
    created: list[str] = []
    for m in mounts:
        parts = [p for p in m.target.split("/") if p]
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            path = os.path.join(merged, rel)
            if os.path.lexists(path):
                continue
            if depth == len(parts) and m.file:
                Path(path).touch()
            else:
                os.mkdir(path, 0o755)
            created.append(rel)
    return created


def remove_mountpoints(upper: str, created: list[str]) -> None:
    """Undo make_hidden_mountpoints in the upper directory, deepest first; a directory the step wrote into
    stays."""
    for rel in reversed(created):
        path = os.path.join(upper, rel)
        try:
            os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        except OSError:
            pass
