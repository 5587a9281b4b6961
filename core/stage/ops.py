"""Each instruction of a stage resolved once, with the stage's state, into an immutable operation. The
config-only ones are here: their `apply` gives the next state, and `created_by` is their history text. RUN
(run.py) and COPY/ADD (copy_add.py) give their cache inputs and make a layer's changes.

The config-only operations are NamedTuples rather than frozen dataclasses: as immutable, and a build imports
them at start-up, where a frozen dataclass costs 0.6 ms to create (its methods are compiled from source) and a
NamedTuple 0.1 ms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Union

from ..dockerfile import instructions as ins
from ..errors import DockerfileError
from ..options import go_duration
from ..rootfs.paths import image_path_join
from .run import RunOp, resolve_run
from .state import ArgScope, PendingWorkdir, StageState

if TYPE_CHECKING:
    from .copy_add import CopyOp


class ConfigOp(Protocol):
    """An instruction that changes the image config (or the stage's scope) only: no layer."""

    @property
    def created_by(self) -> str: ...

    def apply(self, state: StageState) -> StageState: ...


Op = Union[ConfigOp, RunOp, "CopyOp"]


class ArgOp(NamedTuple):
    """`ARG`: each name with its value (None: declared without one, leaving an earlier value in place), and the
    --build-arg values it used."""

    values: tuple[tuple[str, str | None], ...]
    used: frozenset[str] = frozenset()

    @property
    def created_by(self) -> str:
        return "ARG " + " ".join(name if value is None else f"{name}={value}" for name, value in self.values)

    def apply(self, state: StageState) -> StageState:
        for name, value in self.values:
            if value is not None:
                state = state.with_arg(name, value)
        return state


class EnvOp(NamedTuple):
    created_by: str
    pairs: tuple[tuple[str, str], ...]  # expanded, names non-empty

    def apply(self, state: StageState) -> StageState:
        return state.with_env(list(self.pairs))


class LabelOp(NamedTuple):
    created_by: str
    labels: tuple[tuple[str, str], ...]

    def apply(self, state: StageState) -> StageState:
        labels = dict(state.config.get("Labels") or {})
        labels.update(self.labels)
        return state.with_config(Labels=labels)


class MaintainerOp(NamedTuple):
    created_by: str
    author: str

    def apply(self, state: StageState) -> StageState:
        return state.with_image(state.image.with_meta(author=self.author))


class ExposeOp(NamedTuple):
    created_by: str
    ports: tuple[str, ...]  # ExposedPorts keys, e.g. "80/tcp"

    def apply(self, state: StageState) -> StageState:
        ports = dict(state.config.get("ExposedPorts") or {})
        ports.update({port: {} for port in self.ports})
        return state.with_config(ExposedPorts=ports)


class VolumeOp(NamedTuple):
    created_by: str
    paths: tuple[str, ...]

    def apply(self, state: StageState) -> StageState:
        volumes = dict(state.config.get("Volumes") or {})
        volumes.update({path: {} for path in self.paths})
        return state.with_config(Volumes=volumes)


class UserOp(NamedTuple):
    created_by: str
    user: str

    def apply(self, state: StageState) -> StageState:
        return state.with_config(User=self.user)


class WorkdirOp(NamedTuple):
    """`WORKDIR`: the path joined to the one before; docker creates the directory right away, here it is made in
    the next layer the stage makes (as the USER of the time)."""

    inst: ins.Workdir
    path: str

    @property
    def created_by(self) -> str:
        return f"WORKDIR {self.path}"

    def apply(self, state: StageState) -> StageState:
        state = state.with_config(WorkingDir=self.path)
        pending = PendingWorkdir(self.path, state.config.get("User"), self.inst)
        return replace(state, pending_workdirs=(*state.pending_workdirs, pending))


class StopsignalOp(NamedTuple):
    created_by: str
    signal: str

    def apply(self, state: StageState) -> StageState:
        return state.with_config(StopSignal=self.signal)


class ShellOp(NamedTuple):
    created_by: str
    shell: tuple[str, ...]

    def apply(self, state: StageState) -> StageState:
        return replace(state.with_config(Shell=list(self.shell)), shell=self.shell)


class CmdOp(NamedTuple):
    created_by: str
    argv: tuple[str, ...]

    def apply(self, state: StageState) -> StageState:
        return replace(state.with_config(Cmd=list(self.argv)), cmd_set_in_stage=True)


class EntrypointOp(NamedTuple):
    created_by: str
    argv: tuple[str, ...] | None  # None: `ENTRYPOINT ""` clears it

    def apply(self, state: StageState) -> StageState:
        changes: dict[str, Any] = {"Entrypoint": list(self.argv) if self.argv is not None else None}
        if not state.cmd_set_in_stage:
            changes["Cmd"] = None  # docker: a new ENTRYPOINT drops a CMD inherited from the base
        return state.with_config(**changes)


class OnbuildOp(NamedTuple):
    created_by: str
    trigger: str

    def apply(self, state: StageState) -> StageState:
        return state.with_config(OnBuild=[*(state.config.get("OnBuild") or []), self.trigger])


class HealthcheckOp(NamedTuple):
    created_by: str
    check: Mapping[str, Any]

    def apply(self, state: StageState) -> StageState:
        return state.with_config(Healthcheck=dict(self.check))


def resolve(inst: ins.Instruction, state: StageState, scope: ArgScope) -> Op:
    """`inst` as `state` makes it: every variable expanded, every value checked. Raises DockerfileError."""
    if isinstance(inst, ins.Run):
        return resolve_run(inst, state, scope)
    if isinstance(inst, ins.Copy):
        # copy_add (and the tar, compression and download code under it) is imported by the first COPY or
        # ADD: a build of RUN steps alone starts without it.
        from .copy_add import resolve_copy

        return resolve_copy(inst, state)
    if isinstance(inst, ins.Arg):
        return _resolve_arg(inst, state, scope)
    if isinstance(inst, ins.Env):
        # Every pair is expanded with the variables as they were before this ENV (`ENV a=1 b=$a` reads the
        # old a), then set.
        pairs = tuple((state.expand(inst, key), state.expand(inst, value)) for key, value in inst.pairs)
        if any(not key for key, _ in pairs):
            raise DockerfileError("ENV names can not be blank", hint="e.g. ENV NAME=value")
        return EnvOp(inst.original, pairs)
    if isinstance(inst, ins.Label):
        return LabelOp(inst.original, tuple((state.expand(inst, key), state.expand(inst, raw))
                                            for key, raw in inst.pairs))
    if isinstance(inst, ins.Maintainer):
        return MaintainerOp(inst.original, inst.name)
    if isinstance(inst, ins.Expose):
        ports = [port for word in inst.ports for spec in state.expand_words(inst, word)
                 for port in exposed_ports(spec)]
        return ExposeOp(inst.original, tuple(ports))
    if isinstance(inst, ins.Volume):
        paths = []
        for path in inst.paths:
            expanded = state.expand(inst, path)
            if not expanded:
                raise DockerfileError("VOLUME needs a non-empty path")
            paths.append(expanded)
        return VolumeOp(inst.original, tuple(paths))
    if isinstance(inst, ins.User):
        return UserOp(inst.original, state.expand(inst, inst.user))
    if isinstance(inst, ins.Workdir):
        return WorkdirOp(inst, image_path_join(state.workdir, state.expand(inst, inst.path)))
    if isinstance(inst, ins.Stopsignal):
        signal = state.expand(inst, inst.signal)
        if not is_signal(signal):
            raise DockerfileError(f"invalid STOPSIGNAL {signal!r}", hint="e.g. STOPSIGNAL SIGTERM, SIGKILL or 9")
        return StopsignalOp(inst.original, signal)
    if isinstance(inst, ins.Shell):
        return ShellOp(inst.original, tuple(inst.args))
    if isinstance(inst, ins.Cmd):
        return CmdOp(inst.original, tuple(inst.command.argv(state.shell)))
    if isinstance(inst, ins.Entrypoint):
        clears = not inst.command.exec_form and not inst.command.shell_text.strip()
        return EntrypointOp(inst.original, None if clears else tuple(inst.command.argv(state.shell)))
    if isinstance(inst, ins.Onbuild):
        return OnbuildOp(inst.original, inst.trigger)
    if isinstance(inst, ins.Healthcheck):
        return HealthcheckOp(inst.original, _healthcheck(inst))
    raise DockerfileError(f"{inst.keyword} cannot be used here")


def _resolve_arg(inst: ins.Arg, state: StageState, scope: ArgScope) -> ArgOp:
    """Each name's value: --build-arg, else the default (expanded, seeing the names declared before it on the
    same line), else the global scope's value for a bare `ARG NAME` (global ARGs and the predefined
    TARGET*/BUILD* args), else None."""
    values: list[tuple[str, str | None]] = []
    used: set[str] = set()
    for definition in inst.args:
        value: str | None
        if definition.name in scope.build_args:
            used.add(definition.name)
            value = scope.build_args[definition.name]
        elif definition.default is not None:
            value = state.expand(inst, definition.default)
        else:
            value = scope.global_args.get(definition.name)
        if value is not None:
            # An ARG with no value leaves an earlier value of the name in place (BuildKit).
            state = state.with_arg(definition.name, value)
        values.append((definition.name, value))
    return ArgOp(tuple(values), frozenset(used))


def _healthcheck(inst: ins.Healthcheck) -> dict[str, Any]:
    if inst.command is None:
        return {"Test": ["NONE"]}
    test = ["CMD", *inst.command.args] if inst.command.exec_form else ["CMD-SHELL", inst.command.shell_text]
    check: dict[str, Any] = {"Test": test}
    # Docker omits a field left at zero (the runtime default applies), so only non-zero ones are set.
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = inst.flag(flag)
        duration = parse_duration_ns(value, flag) if value is not None else 0
        if 0 < duration < _MIN_HEALTHCHECK_NS:
            raise DockerfileError(f"--{flag}={value} cannot be less than 1ms")
        if duration:
            check[key] = duration
    retries = inst.flag("retries")
    if retries is not None:
        if not retries.isdigit():
            raise DockerfileError(f"invalid --retries={retries}: expected a whole number")
        if int(retries):
            check["Retries"] = int(retries)
    return check


_MIN_HEALTHCHECK_NS = 1_000_000

# Signal names the runtime knows (moby/sys/signal for Linux), with or without the SIG prefix.
_SIGNALS = frozenset("ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV "
                     "STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ".split())


def is_signal(text: str) -> bool:
    """A number, a signal name (`SIGTERM`, `term`), or `SIGRTMIN+n` / `RTMAX-n`, as docker accepts."""
    if text.isdigit():
        return int(text) > 0
    name = text.upper().removeprefix("SIG")
    if name in _SIGNALS:
        return True
    for base, sign in (("RTMIN", "+"), ("RTMAX", "-")):
        offset = name.removeprefix(base)
        if offset != name and (offset == "" or (offset[:1] == sign and offset[1:].isdigit()
                                                 and int(offset[1:]) <= 15)):
            return True
    return False


def exposed_ports(spec: str) -> list[str]:
    """`80`, `53/udp`, `8000-8002/tcp` as docker's ExposedPorts keys; a range gives one key per port."""
    number, _, proto = spec.partition("/")
    start, dash, end = number.partition("-")
    proto = (proto or "tcp").lower()
    valid = start.isdigit() and (end.isdigit() if dash else True) and proto in ("tcp", "udp", "sctp")
    first, last = (int(start), int(end or start)) if valid else (0, -1)
    if not valid or last < first or last > 65535:
        raise DockerfileError(f"invalid port {spec!r} in EXPOSE",
                              hint="e.g. EXPOSE 80, EXPOSE 53/udp or EXPOSE 8000-8010/tcp")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


_DURATION_UNITS: dict[str, float] = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text: str, flag: str) -> int:
    """Go duration syntax (`30s`, `1m30s`, `500ms`) to nanoseconds, as HEALTHCHECK stores them."""
    nanoseconds = go_duration(text, _DURATION_UNITS)
    if nanoseconds is None:
        raise DockerfileError(f"invalid --{flag}={text}: expected a duration such as 30s or 1m30s")
    return int(nanoseconds)
