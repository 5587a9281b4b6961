"""RUN --mount: parsing the flag as BuildKit does (frontend/dockerfile/instructions/commands_runmount.go), and
preparing each mount's source on the host for the sandbox.

* bind: a path of the context or of a stage/image (`from`), read-only unless `rw`; writes then go to a
  throw-away overlay (or a copy, for a file), as BuildKit discards them.
* cache: a directory under the cache-mount root, kept between builds and never in a layer; `sharing` is done
  with file locks (shared: concurrent, locked: one at a time, private: another directory while busy).
* tmpfs: made by the sandbox.
* secret: the value (from `--secret`) written to a tmpfs mounted only in dockyard's private mount namespace,
  bound read-only as one file, or given as an environment variable; gone when the step ends.
* ssh: a socket with the mount's owner and mode that relays to the agent given with `--ssh`.

Mount targets in the image root get their mount points from a stub layer *below* the image (as the
workspace scaffold does for /proc and /dev), so nothing of them reaches the step's layer.
"""

from __future__ import annotations

import csv
import difflib
import fcntl
import hashlib
import os
import posixpath
import re
import selectors
import shutil
import socket
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .dockerfile import instructions as ins
from .errors import ContextError, DockerfileError, StepFailed
from .isolation import SandboxMount
from .options import BuildOptions, SecretSource
from .rootfs import ownership
from .rootfs.overlay import mount, overlay_mount, umount
from .rootfs.paths import clean, resolve_in_root

if TYPE_CHECKING:
    from .executor import StageExecutor

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw",
         "id", "sharing", "required", "mode", "uid", "gid", "size", "env")
# Paths the sandbox mounts itself: RUN mounts may not cover them.
_SANDBOX_PATHS = ("proc", "sys")


@dataclass(frozen=True)
class MountSpec:
    """One parsed --mount, values expanded; `target` is absolute and clean."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    env: str | None = None
    size: int | None = None


# --- parsing -----------------------------------------------------------------------------------------------
def parse_mount(text: str, expand: Callable[[str], str], workdir: str = "/") -> MountSpec:
    """A `--mount` value, as BuildKit's parseMount reads it: CSV fields, keys case-insensitive, values
    expanded with the step's ARG/ENV, then BuildKit's defaults and checks."""
    try:
        fields = next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        raise DockerfileError(f"invalid --mount={text}: expected comma-separated key=value pairs") from None
    values: dict = {"type": "bind"}
    readonly_given = False
    for item in fields:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq:
            readonly_given |= _flag_word(values, key, item)
            continue
        value = expand(value)
        readonly_given |= key in ("readonly", "ro", "readwrite", "rw")
        _set_key(values, key, value, item)
    return _validated(values, readonly_given, workdir, text)


def _flag_word(values: dict, key: str, item: str) -> bool:
    """A key without a value: ro/rw/required. Returns whether it set read-only-ness."""
    if key in ("readonly", "ro", "readwrite", "rw"):
        values["readonly"] = key in ("readonly", "ro")
        return True
    if key == "required":
        _set_key(values, key, "true", item)
        return False
    raise DockerfileError(f"invalid --mount field {item!r}: it must be a key=value pair",
                          hint="only ro, rw and required may be given without a value")


def _set_key(values: dict, key: str, value: str, item: str) -> None:
    kind = values["type"]
    if key == "type":
        if value.lower() not in MOUNT_TYPES:
            raise DockerfileError(f"unsupported mount type {value!r}{_did_you_mean(value, MOUNT_TYPES)}",
                                  hint=f"use one of {', '.join(MOUNT_TYPES)}")
        values["type"] = value.lower()
    elif key == "from":
        values["from_"] = value
    elif key in ("source", "src"):
        values["source"] = value
    elif key in ("target", "dst", "destination"):
        values["target"] = value
    elif key in ("readonly", "ro", "readwrite", "rw"):
        values["readonly"] = _go_bool(value, key) == (key in ("readonly", "ro"))
    elif key == "required":
        if kind not in ("secret", "ssh"):
            raise DockerfileError(f"unexpected key 'required' for mount type {kind!r}",
                                  hint="required applies to secret and ssh mounts; give type= first")
        values["required"] = _go_bool(value, key)
    elif key == "size":
        if kind != "tmpfs":
            raise DockerfileError(f"unexpected key 'size' for mount type {kind!r}",
                                  hint="size applies to tmpfs mounts; give type=tmpfs first")
        values["size"] = _ram_bytes(value)
    elif key == "id":
        values["id"] = value
    elif key == "env":
        values["env"] = value
    elif key == "sharing":
        if value.lower() not in SHARING_MODES:
            raise DockerfileError(f"unsupported sharing value {value!r}", hint="use shared, private or locked")
        values["sharing"] = value.lower()
    elif key in ("mode", "uid", "gid"):
        values[key] = _number(value, key)
    else:
        raise DockerfileError(f"unexpected key {key!r} in {item!r}{_did_you_mean(key, _KEYS)}",
                              hint=f"known keys: {', '.join(_KEYS)}")


def _validated(values: dict, readonly_given: bool, workdir: str, text: str) -> MountSpec:
    kind = values["type"]
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if values.get(key) is not None:
                raise DockerfileError(f"{key} is not allowed for {kind} mounts")
    if values.get("env") is not None and kind != "secret":
        raise DockerfileError(f"env is not allowed for {kind} mounts", hint="env applies to secret mounts")
    if "sharing" in values and kind != "cache":
        raise DockerfileError(f"sharing is not allowed for {kind} mounts")
    if not readonly_given:
        values["readonly"] = kind not in ("cache", "tmpfs")
    if kind == "secret":
        _check_secret(values)
    if kind == "ssh" and values.get("source"):
        raise DockerfileError("ssh mounts do not take a source", hint="name the agent with id=, e.g. id=default")
    values["target"] = _absolute_target(values.get("target", ""), kind, workdir, text)
    if kind == "cache" and not values.get("id"):
        values["id"] = values["target"]  # docker: the id defaults to the target
    return MountSpec(**values)


def _check_secret(values: dict) -> None:
    if values.get("from_"):
        raise DockerfileError("a secret mount cannot have from=")
    if values.get("source") and values.get("id"):
        raise DockerfileError("a secret mount takes id= or source=, not both")
    values["id"] = values.pop("source", None) or values.get("id") or ""
    if not values["id"]:
        if not values.get("target"):
            raise DockerfileError("a secret mount needs id= (or a target=, whose name is the id)",
                                  hint="e.g. --mount=type=secret,id=token")
        values["id"] = posixpath.basename(values["target"].rstrip("/"))


def _absolute_target(target: str, kind: str, workdir: str, text: str) -> str:
    """BuildKit joins a relative bind/cache/tmpfs target to WORKDIR (secret and ssh targets to /)."""
    if kind in ("secret", "ssh"):
        return "/" + clean(target) if target else ""
    path = "/" + clean(posixpath.join(workdir, target))
    if path == "/":
        raise DockerfileError(f"invalid mount target \"/\" in --mount={text}", hint="mount on a directory below /")
    return path


_GO_TRUE, _GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(value: str, key: str) -> bool:
    if value in _GO_TRUE or value in _GO_FALSE:
        return value in _GO_TRUE
    raise DockerfileError(f"invalid value for {key}: {value}", hint="use true or false")


def _number(value: str, key: str) -> int:
    try:
        return int(value, 8 if key == "mode" else 10)
    except ValueError:
        example = "0644" if key == "mode" else "1000"
        raise DockerfileError(f"invalid value {value} for {key}", hint=f"e.g. {key}={example}") from None


_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def _ram_bytes(value: str) -> int:
    """docker's units.RAMInBytes: `64m`, `1.5g`, `512MiB`, binary multipliers."""
    match = _RAM.match(value)
    if not match:
        raise DockerfileError(f"invalid value for size: {value}", hint="e.g. size=64m")
    power = " kmgtp".index((match.group(2) or " ").lower())
    return int(float(match.group(1)) * 1024 ** power)


def _did_you_mean(word: str, known) -> str:
    """BuildKit's suggestion of the closest known word, as a sentence ending the message (or nothing)."""
    close = difflib.get_close_matches(word.lower(), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def mount_from_refs(run: ins.Run) -> list[str]:
    """The stages/images RUN --mount reads (`from=`), unexpanded, for the build plan: BuildKit resolves them
    before any ARG has a value."""
    refs = []
    for text in run.flag_values("mount"):
        try:
            fields = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            continue  # reported when the step runs
        refs += [v for k, _, v in (f.partition("=") for f in fields) if k.strip().lower() == "from" and v]
    for ref in refs:
        if "$" in ref:  # the stage graph is known before any variable has a value
            raise DockerfileError(f"'from' doesn't support variable expansion ({ref})", location=run.location,
                                  hint="define an alias stage (`FROM ${ARG} AS name`, global ARGs work in FROM) "
                                       "and mount from=name")
    return refs


# --- the host side of mounts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MountSources:
    """What RUN --mount takes from the host: --secret and --ssh, and where cache mounts persist."""

    secrets: dict[str, SecretSource] = field(default_factory=dict)
    ssh: dict[str, str] = field(default_factory=dict)  # id -> agent socket
    cache_root: Path | None = None
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, options: BuildOptions) -> "MountSources":
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

    def __init__(self, executor: StageExecutor, inst: ins.Run, view: str, stack: ExitStack):
        self.executor = executor
        self.inst = inst
        self.view = view  # a read-only view of the step's root, to resolve targets in
        self.stack = stack
        self.sources: MountSources = executor.s.mount_sources
        self.out = PreparedMounts()
        self._secret_dir: str | None = None
        self._ssh_count = 0

    def prepare(self, specs: list[MountSpec]) -> PreparedMounts:
        for spec in specs:
            getattr(self, "_" + spec.type)(spec)
        return self.out

    def _add(self, spec_target: str, **kwargs) -> None:
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
    def _bind(self, spec: MountSpec) -> None:
        root, where = self._source_root(spec)
        host = resolve_in_root(root, clean(spec.source))
        if not os.path.lexists(host):
            raise ContextError(f"RUN --mount source {spec.source or '/'!r} not found in {where}",
                               hint="the source is relative to the context (or to the from= stage's root)")
        is_file = not os.path.isdir(host)
        context = self.executor.s.context
        if not spec.from_ and not context.visible(host):
            raise ContextError(f"RUN --mount source {spec.source!r} is excluded by .dockerignore",
                               hint="a bind mount sees the context without what .dockerignore excludes, as in "
                                    "docker; add an exception (!PATH) to .dockerignore")
        if not spec.from_ and not is_file and context.ignore:
            host = self._visible_context(host)
        if not spec.readonly:
            host = self._writable_copy(host, is_file)
        self._add(spec.target, source=host, readonly=spec.readonly, file=is_file)

    def _source_root(self, spec: MountSpec) -> tuple[str, str]:
        if not spec.from_:
            return str(self.executor.s.context.root), "the build context"
        return self.executor.source_root(self.inst, spec.from_, "--mount from", self.stack), f"{spec.from_!r}"

    def _visible_context(self, host_dir: str) -> str:
        """A context directory as BuildKit's bind mount shows it: what .dockerignore excludes is not there."""
        scratch = self.executor.s.workspace.new_file_dir()
        self.stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        view = os.path.join(scratch, "context")
        self.executor.s.context.visible_tree(host_dir, view)
        return view

    def _writable_copy(self, host: str, is_file: bool) -> str:
        """Writes to a rw bind are discarded: an overlay over a directory, a private copy of a file."""
        ws = self.executor.s.workspace
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
    def _cache(self, spec: MountSpec) -> None:
        if self.sources.cache_root is None:
            raise StepFailed("cache mounts need a cache directory, and none is configured")
        data = self.stack.enter_context(cache_directory(self.sources.cache_root, spec.id, spec.sharing,
                                                        lambda path: self._initialize_cache(spec, path)))
        self._add(spec.target, source=data, readonly=spec.readonly)

    def _initialize_cache(self, spec: MountSpec, data: str) -> None:
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
    def _tmpfs(self, spec: MountSpec) -> None:
        self._add(spec.target, kind="tmpfs", readonly=False, options=f"size={spec.size}" if spec.size else "")

    # --- secret
    def _secret(self, spec: MountSpec) -> None:
        source = self.sources.secrets.get(spec.id)
        if source is None:
            if spec.required:
                raise StepFailed(f"secret {spec.id} not found",
                                 hint=f"pass it with --secret id={spec.id},src=FILE or --secret id={spec.id},env=VAR")
            return  # an optional secret that was not given: no file, no variable (BuildKit)
        value = source.read(self.sources.environ)
        if spec.env:
            self.out.env[spec.env] = value.decode("utf-8", "surrogateescape")
        target = spec.target or ("" if spec.env else f"/run/secrets/{posixpath.basename(spec.id)}")
        if target:
            path = self._secret_file(spec, value)
            self._add(target, source=path, readonly=True, file=True)

    def _secret_file(self, spec: MountSpec, value: bytes) -> str:
        if self._secret_dir is None and self.executor.s.workspace.trees is not None:
            # No mounts in this mode: a private directory of the workspace, removed when the step ends.
            self._secret_dir = self.executor.s.workspace.new_file_dir()
            os.chmod(self._secret_dir, 0o700)
            self.stack.callback(shutil.rmtree, self._secret_dir, ignore_errors=True)
        elif self._secret_dir is None:
            # In memory, in dockyard's private mount namespace only, and unmounted when the step ends.
            self._secret_dir = self.executor.s.workspace.new_mountpoint()
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
    def _ssh(self, spec: MountSpec) -> None:
        ssh_id = spec.id or "default"
        agent = self.sources.ssh.get(ssh_id)
        target = spec.target or f"/run/buildkit/ssh_agent.{self._ssh_count}"
        self._ssh_count += 1
        if agent is None:
            if spec.required:
                raise StepFailed(f"no ssh agent {ssh_id!r} was given to the build",
                                 hint=f"pass one with --ssh {ssh_id} (uses $SSH_AUTH_SOCK) or --ssh {ssh_id}=SOCKET")
            return
        directory = self.executor.s.workspace.new_file_dir()
        os.chmod(directory, 0o700)
        relay = AgentRelay(agent, os.path.join(directory, "agent.sock"), spec.uid or 0, spec.gid or 0,
                           0o600 if spec.mode is None else spec.mode)
        self.stack.callback(relay.close)
        self._add(target, source=relay.path, readonly=False, file=True)
        # As BuildKit's ExecOp: the first ssh mount is the agent.
        self.out.agent_socket = self.out.agent_socket or target


@contextmanager
def cache_directory(root: Path, cache_id: str, sharing: str, initialize: Callable[[str], None]) -> Iterator[str]:
    """The data directory of cache `cache_id`, held with a file lock for the step and initialized (under an
    exclusive lock) on first use. shared: a shared lock, many steps at once; locked: an exclusive one, waiting
    for the others; private: an exclusive one without waiting, using another instance while the first is busy."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = root / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
    instance = 0
    while True:
        directory = Path(f"{base}-{instance}" if instance else base)
        directory.mkdir(mode=0o700, exist_ok=True)
        lock = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (fcntl.LOCK_NB if sharing == "private" else 0))
            break
        except BlockingIOError:
            os.close(lock)
            instance += 1
    try:
        data = str(directory / "data")
        if not (directory / ".ready").exists():
            shutil.rmtree(data, ignore_errors=True)  # a half-made one from an interrupted build
            initialize(data)
            (directory / ".ready").touch()
        if sharing == "shared":
            fcntl.flock(lock, fcntl.LOCK_SH)
        yield data
    finally:
        os.close(lock)


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


class AgentRelay:
    """A socket with the mount's owner and mode that forwards every connection to the ssh agent: the agent's
    own socket is neither exposed nor changed (BuildKit forwards it through its session the same way)."""

    def __init__(self, agent: str, path: str, uid: int, gid: int, mode: int):
        self.agent = agent
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        self._listener.listen(16)
        threading.Thread(target=self._serve, daemon=True, name="ssh-agent-relay").start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed at the end of the step
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            try:
                upstream.connect(self.agent)
            except OSError:
                return
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                while True:
                    for key, _ in selector.select():
                        try:
                            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                            if not data:
                                return
                            key.data.sendall(data)
                        except OSError:
                            return

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        self._listener.close()
