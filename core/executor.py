"""Executing one stage, instruction by instruction. The instructions that only change the image config are
here; RUN is in run_step.py and COPY/ADD in copy_step.py. Each filesystem change becomes one layer."""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from . import events as ev
from .context import BuildContext
from .copy import Copier, CopyOptions
from .copy_step import execute_copy
from .dockerfile import instructions as ins
from .dockerfile.expand import Expander
from .errors import DockerfileError, DockyardError, StepFailed
from .image.blobs import BlobStore
from .image.model import HistoryEntry, Image, Layer
from .isolation import Runner
from .rootfs import RootFS, Workspace, mounted_step
from .rootfs.paths import image_path_join
from .rootfs.snapshot import write_layer
from .run_step import execute_run

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

    default_path = DEFAULT_PATH

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
        return execute_run(self, inst)

    def do_copy(self, inst: ins.Copy) -> Layer:
        return execute_copy(self, inst)

    def do_add(self, inst: ins.Copy) -> Layer:
        return execute_copy(self, inst)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text: str, flag: str) -> int:
    """Go duration syntax (`30s`, `1m30s`, `500ms`) to nanoseconds, as HEALTHCHECK stores them."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise DockerfileError(f"invalid --{flag}={text}: expected a duration such as 30s or 1m30s")
    return int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))
