"""Executing one stage, instruction by instruction: config changes, RUN through an isolation backend, and
COPY/ADD, each filesystem change becoming one layer."""

from __future__ import annotations

import datetime as _dt
import os
import posixpath
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from . import events as ev
from .context import BuildContext, glob_in_root, has_wildcard
from .copy import Copier, CopyOptions, download, extract_archive, is_archive, parse_chmod
from .dockerfile import instructions as ins
from .dockerfile.expand import Expander
from .errors import ContextError, DockerfileError, DockyardError, StepFailed
from .image.blobs import BlobStore
from .image.model import HistoryEntry, Image, Layer
from .isolation import Runner, RunSpec
from .rootfs import RootFS, Workspace, mounted_readonly, mounted_step
from .rootfs.paths import clean, image_path_join, resolve_in_root
from .rootfs.snapshot import write_layer
from .users import UnknownUser, resolve_chown, resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StageResult:
    """What later stages need from a finished stage: its image and its root filesystem."""

    image: Image
    rootfs: RootFS


@dataclass
class StepRecord:
    step: int
    instruction: str
    file: str
    line: int
    duration: float = 0.0
    layer: Layer | None = None


@dataclass
class BuildServices:
    """What a stage executor works with; filled once per build by the builder."""

    store: BlobStore
    workspace: Workspace
    runner: Runner
    context: BuildContext
    events: ev.Events
    compression: str = "gzip"
    compression_level: int | None = None
    # COPY --from=IMAGE (not a stage): returns that image's unpacked root.
    image_rootfs: Callable[[str, ins.Instruction], RootFS] | None = None
    resolv_conf: str | None = None
    hosts: str | None = None
    steps: list[StepRecord] = field(default_factory=list)


class StageExecutor:
    def __init__(self, stage: ins.Stage, image: Image, rootfs: RootFS, services: BuildServices,
                 build_args: dict[str, str], used_args: set[str], stages: dict[int, StageResult],
                 dockerfile: ins.Dockerfile, step_counter: Callable[[], tuple[int, int]],
                 global_args: dict[str, str]):
        self.stage = stage
        self.image = image
        self.rootfs = rootfs
        self.s = services
        self.build_args = build_args
        self.used_args = used_args
        self.stages = stages
        self.dockerfile = dockerfile
        self.expander = Expander(escape=dockerfile.escape)
        self.args: dict[str, str] = {}  # ARGs declared in this stage, with their values
        self.shell = tuple(image.container_config.get("Shell") or DEFAULT_SHELL)
        self.cmd_set_in_stage = False
        self._pending_upper: str | None = None  # WORKDIR's mkdir, committed with the next layer
        self._next_step = step_counter
        self.global_args = global_args  # values of the ARGs before the first FROM

    # --- environment -------------------------------------------------------------------------------------
    def env_list(self) -> list[str]:
        return list(self.image.container_config.get("Env") or [])

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env_list():
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def expansion_env(self) -> dict[str, str]:
        """Variables visible to expansion: stage ARGs, overridden by ENV (docker's precedence)."""
        env = dict(self.args)
        env.update(self.env_dict())
        return env

    def expand(self, inst: ins.Instruction, text: str) -> str:
        try:
            return self.expander.expand_word(text, self.expansion_env())
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None

    def expand_words(self, inst: ins.Instruction, text: str) -> list[str]:
        try:
            return self.expander.expand_words(text, self.expansion_env())
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self) -> StageResult:
        if "PATH" not in self.env_dict():
            # BuildKit (and buildah) give every stage a PATH when its base has none (e.g. FROM scratch).
            self.image = self.image.with_config(Env=[*self.env_list(), f"PATH={DEFAULT_PATH}"])
        triggers = list(self.image.container_config.get("OnBuild") or [])
        if triggers:
            self.image = self.image.with_config(OnBuild=None)
            from .dockerfile.parser import parse_dockerfile

            for trigger in triggers:
                parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n", f"ONBUILD of {self.stage.base.image}")
                for inst in parsed.stages[0].instructions:
                    self.dispatch(inst)
        for inst in self.stage.instructions:
            self.dispatch(inst)
        self._commit_pending()
        return StageResult(self.image, self.rootfs)

    def dispatch(self, inst: ins.Instruction) -> None:
        step, total = self._next_step()
        record = StepRecord(step, inst.original, inst.location.file, inst.location.start_line)
        self.s.steps.append(record)
        self.s.events.emit(ev.StepStarted(step=step, total=total, stage=self.stage.display_name,
                                          text=inst.original, file=inst.location.file,
                                          line=inst.location.start_line))
        started = time.monotonic()
        handler = getattr(self, "do_" + inst.keyword.lower())
        try:
            try:
                layer = handler(inst)
            except OSError as exc:
                raise StepFailed(f"{inst.keyword} failed: {exc}") from None
        except DockyardError as exc:
            if exc.location is None:
                exc.location = inst.location
            record.duration = time.monotonic() - started
            self.s.events.emit(ev.StepFinished(step=step, duration=record.duration, failed=True))
            raise
        record.duration = time.monotonic() - started
        record.layer = layer
        self.s.events.emit(ev.StepFinished(step=step, duration=record.duration,
                                           layer_digest=layer.digest if layer else None,
                                           layer_size=layer.size if layer else None))

    # --- metadata instructions ---------------------------------------------------------------------------
    def _history(self, text: str) -> None:
        self.image = self.image.with_history(HistoryEntry(created_by=text, empty_layer=True,
                                                          created=now_rfc3339(), comment="dockyard"))

    def do_arg(self, inst: ins.Arg) -> None:
        for definition in inst.args:
            value = None
            if definition.default is not None:
                value = self.expand(inst, definition.default)
            if definition.name in self.build_args:
                value = self.build_args[definition.name]
                self.used_args.add(definition.name)
            elif value is None and definition.name in self.global_args:
                # `ARG NAME` inside a stage brings the global ARG's value into scope.
                value = self.global_args[definition.name]
            if value is not None:
                self.args[definition.name] = value
            else:
                self.args.pop(definition.name, None)
        self._history(f"ARG {' '.join(a.name + ('=' + a.default if a.default is not None else '') for a in inst.args)}")

    def do_env(self, inst: ins.Env) -> None:
        env = self.env_list()
        for key, raw in inst.pairs:
            value = self.expand(inst, raw)
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            self.image = self.image.with_config(Env=env)
        self._history(inst.original)

    def do_label(self, inst: ins.Label) -> None:
        labels = dict(self.image.container_config.get("Labels") or {})
        for key, raw in inst.pairs:
            labels[self.expand(inst, key)] = self.expand(inst, raw)
        self.image = self.image.with_config(Labels=labels)
        self._history(inst.original)

    def do_maintainer(self, inst: ins.Maintainer) -> None:
        self.image = self.image.with_meta(author=inst.name)
        self._history(inst.original)

    def do_expose(self, inst: ins.Expose) -> None:
        ports = dict(self.image.container_config.get("ExposedPorts") or {})
        for word in inst.ports:
            for port in self.expand_words(inst, word):
                number, _, proto = port.partition("/")
                if not number or not all(c.isdigit() or c == "-" for c in number):
                    raise DockerfileError(f"invalid port {port!r} in EXPOSE", hint="e.g. EXPOSE 80 or 53/udp")
                ports[f"{number}/{(proto or 'tcp').lower()}"] = {}
        self.image = self.image.with_config(ExposedPorts=ports)
        self._history(inst.original)

    def do_volume(self, inst: ins.Volume) -> None:
        volumes = dict(self.image.container_config.get("Volumes") or {})
        for path in inst.paths:
            expanded = self.expand(inst, path)
            if not expanded:
                raise DockerfileError("VOLUME needs a non-empty path")
            volumes[expanded] = {}
        self.image = self.image.with_config(Volumes=volumes)
        self._history(inst.original)

    def do_user(self, inst: ins.User) -> None:
        self.image = self.image.with_config(User=self.expand(inst, inst.user))
        self._history(inst.original)

    def do_workdir(self, inst: ins.Workdir) -> None:
        previous = self.image.container_config.get("WorkingDir") or "/"
        path = image_path_join(previous, self.expand(inst, inst.path))
        self.image = self.image.with_config(WorkingDir=path)
        # docker creates the directory right away; its mkdir joins the next layer this stage makes.
        self._pending_upper = self._pending_upper or self.s.workspace.new_layer_dir()
        with mounted_step(self.rootfs, self.s.workspace, upper=self._pending_upper) as step:
            Copier(step.merged, CopyOptions()).ensure_dir(path)
        self._history(f"WORKDIR {path}")

    def do_stopsignal(self, inst: ins.Stopsignal) -> None:
        self.image = self.image.with_config(StopSignal=self.expand(inst, inst.signal))
        self._history(inst.original)

    def do_shell(self, inst: ins.Shell) -> None:
        self.shell = tuple(inst.args)
        self.image = self.image.with_config(Shell=list(inst.args))
        self._history(inst.original)

    def do_cmd(self, inst: ins.Cmd) -> None:
        self.image = self.image.with_config(Cmd=inst.command.argv(self.shell))
        self.cmd_set_in_stage = True
        self._history(inst.original)

    def do_entrypoint(self, inst: ins.Entrypoint) -> None:
        argv = inst.command.argv(self.shell)
        if not inst.command.exec_form and not inst.command.shell_text.strip():
            argv = None  # `ENTRYPOINT ""` clears it
        changes: dict = {"Entrypoint": argv}
        if not self.cmd_set_in_stage:
            changes["Cmd"] = None  # docker: a new ENTRYPOINT drops a CMD inherited from the base
        self.image = self.image.with_config(**changes)
        self._history(inst.original)

    def do_onbuild(self, inst: ins.Onbuild) -> None:
        triggers = list(self.image.container_config.get("OnBuild") or []) + [inst.trigger]
        self.image = self.image.with_config(OnBuild=triggers)
        self._history(inst.original)

    def do_healthcheck(self, inst: ins.Healthcheck) -> None:
        if inst.command is None:
            self.image = self.image.with_config(Healthcheck={"Test": ["NONE"]})
        else:
            test = (["CMD", *inst.command.args] if inst.command.exec_form
                    else ["CMD-SHELL", inst.command.shell_text])
            check: dict = {"Test": test}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
                value = inst.flag(flag)
                if value is not None:
                    check[key] = parse_duration_ns(value, flag)
            retries = inst.flag("retries")
            if retries is not None:
                if not retries.isdigit():
                    raise DockerfileError(f"invalid --retries={retries}: expected a whole number")
                check["Retries"] = int(retries)
            self.image = self.image.with_config(Healthcheck=check)
        self._history(inst.original)

    # --- filesystem instructions -------------------------------------------------------------------------
    def _commit(self, upper: str, created_by: str) -> Layer:
        layer, _ = write_layer(upper, self.s.store, compression=self.s.compression,
                               level=self.s.compression_level)
        self.rootfs = self.rootfs.with_layer(upper)
        self.image = self.image.with_layer(layer, HistoryEntry(created_by=created_by, created=now_rfc3339(),
                                                               comment="dockyard"))
        return layer

    def _commit_pending(self) -> None:
        if self._pending_upper and os.listdir(self._pending_upper):
            self._commit(self._pending_upper, "WORKDIR (directories)")
        self._pending_upper = None

    def _take_upper(self) -> str:
        upper, self._pending_upper = self._pending_upper, None
        return upper or self.s.workspace.new_layer_dir()

    def do_run(self, inst: ins.Run) -> Layer:
        for name in ("mount", "security"):
            if inst.flag(name) is not None:
                raise DockerfileError(f"RUN --{name} is not supported yet",
                                      hint="it is planned; remove the flag for now")
        network = inst.flag("network") or "default"
        if network not in ("default", "none", "host"):
            raise DockerfileError(f"invalid RUN --network={network}: use default, none or host")
        argv = inst.command.argv(self.shell)
        env = self.env_dict()
        # ARG values are visible to RUN as environment variables, but are not kept in the image.
        run_env = {**self.args, **env}
        run_env.setdefault("PATH", DEFAULT_PATH)
        config = self.image.container_config
        upper = self._take_upper()
        with mounted_step(self.rootfs, self.s.workspace, upper=upper, scaffold=True) as step:
            try:
                user = resolve_user(step.merged, config.get("User") or "0")
            except UnknownUser as exc:
                raise StepFailed(str(exc), hint="create the user in an earlier RUN, or use a numeric id") from None
            run_env.setdefault("HOME", user.home)
            spec = RunSpec(rootfs=step.merged, argv=tuple(argv), env=tuple(run_env.items()),
                           cwd=config.get("WorkingDir") or "/", uid=user.uid, gid=user.gid,
                           groups=user.groups, network="none" if network == "none" else "default",
                           binds=self._host_files(step.merged))
            step_no = self.s.steps[-1].step
            result = self.s.runner.run(spec, lambda line: self.s.events.emit(ev.StepLog(step=step_no, line=line)))
        if result.setup_error or result.exit_code != 0:
            shown = " ".join(argv) if inst.command.exec_form else inst.command.shell_text
            if result.setup_error:
                message = f"RUN could not start: {result.setup_error}"
            else:
                message = f"RUN exited with {result.exit_code}: {shown}"
            tail = "\n".join("  | " + line for line in result.tail[-10:])
            raise StepFailed(message, details=tail or None,
                             hint="the lines above are the end of the command's output" if tail else None)
        return self._commit(upper, f"RUN {' '.join(argv)} # dockyard")

    def _host_files(self, root: str) -> tuple[tuple[str, str, bool], ...]:
        """resolv.conf and hosts from the host, bound read-only over the image's (private copies, so a RUN
        cannot change the host's), only where the image has a regular file or nothing there."""
        binds = []
        for source, target in ((self.s.resolv_conf, "/etc/resolv.conf"), (self.s.hosts, "/etc/hosts")):
            if not source:
                continue
            host_target = resolve_in_root(root, target, follow_final=False)
            if os.path.islink(host_target) or not os.path.isfile(host_target):
                continue  # a symlink or something odd: leave the image's own
            binds.append((source, target, True))
        return tuple(binds)

    def do_copy(self, inst: ins.Copy) -> Layer:
        return self._copy(inst)

    def do_add(self, inst: ins.Copy) -> Layer:
        return self._copy(inst)

    def _copy(self, inst: ins.Copy) -> Layer:
        # --link is accepted: it changes how BuildKit caches the layer, never the files it contains.
        unsupported = [f for f in ("exclude", "parents", "checksum", "keep-git-dir") if inst.flag(f) is not None]
        if unsupported:
            raise DockerfileError(f"{inst.keyword} --{unsupported[0]} is not supported yet")
        if inst.heredocs:
            raise DockerfileError(f"{inst.keyword} with a heredoc is not supported yet")
        if inst.json_form:
            sources = [self.expand(inst, s) for s in inst.sources]
            dest = self.expand(inst, inst.dest)
        else:
            words = [w for text in (*inst.sources, inst.dest) for w in self.expand_words(inst, text)]
            sources, dest = words[:-1], words[-1]
        if not sources:
            raise DockerfileError(f"{inst.keyword} needs a source and a destination")
        workdir = self.image.container_config.get("WorkingDir") or "/"
        dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        dest_path = image_path_join(workdir, dest)
        from_ref = inst.flag("from")
        chown, chmod = inst.flag("chown"), inst.flag("chmod")
        upper = self._take_upper()
        with ExitStack() as stack:
            if from_ref is not None:
                source_root = stack.enter_context(mounted_readonly(self._from_rootfs(inst, self.expand(inst, from_ref)),
                                                                   self.s.workspace))
                visible = lambda p: True  # noqa: E731  .dockerignore never applies to --from
            else:
                source_root = self.s.context.root
                visible = self.s.context.visible
            step = stack.enter_context(mounted_step(self.rootfs, self.s.workspace, upper=upper))
            owner = None
            if chown:
                try:
                    owner = resolve_chown(step.merged, self.expand(inst, chown))
                except UnknownUser as exc:
                    raise StepFailed(str(exc)) from None
            try:
                mode = parse_chmod(self.expand(inst, chmod)) if chmod else None
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
                found = self._find_sources(source_root, source, visible, from_ref)
                if not found:
                    where = f"stage {from_ref!r}" if from_ref else f"the build context ({self.s.context.root})"
                    raise ContextError(f"{inst.keyword} source {source!r} not found in {where}",
                                       hint="check the path (it is relative to the context)" +
                                       ("" if from_ref else "; is it excluded by .dockerignore?"))
                matches.extend(found)
            many = len(matches) + len(remote) > 1 or any(has_wildcard(s) for s in sources)
            if many and not dest_is_dir:
                raise DockerfileError(f"when {inst.keyword} has several sources the destination must be a "
                                      f"directory ending in /: {dest!r}")
            for host_source in matches:
                self._copy_one(inst, copier, step.merged, host_source, dest_path, dest_is_dir)
            for url in remote:
                self._add_url(copier, step.merged, url, dest_path, dest_is_dir)
        return self._commit(upper, f"{inst.keyword} {' '.join(sources)} {dest} # dockyard")

    def _find_sources(self, root: str, source: str, visible, from_ref) -> list[str]:
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

    def _copy_one(self, inst: ins.Copy, copier: Copier, root: str, host_source: str, dest_path: str,
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

    def _add_url(self, copier: Copier, root: str, url: str, dest_path: str, dest_is_dir: bool) -> None:
        name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "index.html"
        tmp_dir = self.s.workspace.new_file_dir()
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

    def _from_rootfs(self, inst: ins.Instruction, ref: str) -> RootFS:
        stage = self.dockerfile.stage_by_name(ref)
        if stage is None and ref.isdigit():
            index = int(ref)
            if index >= self.stage.index:
                raise DockerfileError(f"--from={ref} refers to a stage that is not before this one")
            stage = self.dockerfile.stages[index]
        if stage is not None:
            if stage.index >= self.stage.index:
                raise DockerfileError(f"--from={ref} refers to stage {stage.display_name}, which is not before "
                                      "this one")
            return self.stages[stage.index].rootfs
        if self.s.image_rootfs is None:
            raise DockerfileError(f"--from={ref}: no such stage")
        return self.s.image_rootfs(ref, inst)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text: str, flag: str) -> int:
    """Go duration syntax (`30s`, `1m30s`, `500ms`) to nanoseconds, as HEALTHCHECK stores them."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise DockerfileError(f"invalid --{flag}={text}: expected a duration such as 30s or 1m30s")
    return int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))
