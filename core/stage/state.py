"""A stage's state between two instructions: the image being built (config, history, layers), the ARG and ENV
scope with BuildKit's ordering rule, the SHELL, whether CMD was set in this stage, and the WORKDIR directories
still to be made. Immutable: every instruction gives a new state (ops.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from ..dockerfile import instructions as ins
from ..dockerfile.expand import Expander
from ..errors import DockerfileError
from ..image.model import HistoryEntry, Image

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")
# Build args that RUN sees without an ARG line (BuildKit's proxy env); never in the image config or history.
PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class ArgScope:
    """The ARG values a build has outside its stages: --build-arg, and the global scope (the ARGs before the
    first FROM and the args BuildKit predefines there)."""

    build_args: Mapping[str, str] = field(default_factory=dict)
    global_args: Mapping[str, str] = field(default_factory=dict)

    def proxy_env(self) -> dict[str, str]:
        """The proxy build args, in both spellings as BuildKit sets them for RUN (no ARG needed)."""
        env: dict[str, str] = {}
        for name in PROXY_ARGS:
            value = self.build_args.get(name, self.build_args.get(name.lower()))
            if value is not None:
                env[name] = env[name.lower()] = value
        return env


class PendingWorkdir(NamedTuple):
    """A WORKDIR's directory, made in the next layer the stage makes: as the USER of the time, errors at its line."""

    path: str
    user: str | None
    inst: ins.Instruction


@dataclass(frozen=True)
class StageState:
    """Everything an instruction reads of the stage so far. Mappings are never changed in place."""

    image: Image
    escape: str = "\\"
    args: Mapping[str, str] = field(default_factory=dict)  # ARGs declared in this stage, with their values
    # ARGs declared after the last ENV of the same name (inherited ENV included): BuildKit keeps one
    # environment in declaration order, so such an ARG wins; an ENV declared after an ARG wins over it.
    args_over_env: frozenset[str] = frozenset()
    shell: tuple[str, ...] = DEFAULT_SHELL
    cmd_set_in_stage: bool = False
    # WORKDIR's directories, made in the next step's layer when that step runs: made right away they would
    # need the root unpacked even when every later step is cached.
    pending_workdirs: tuple[PendingWorkdir, ...] = ()

    @classmethod
    def start(cls, image: Image, escape: str = "\\") -> StageState:
        """A stage's first state, on its base image. BuildKit (and buildah) give every stage a PATH when its base
        has none (e.g. FROM scratch)."""
        state = cls(image, escape, shell=tuple(image.container_config.get("Shell") or DEFAULT_SHELL))
        if "PATH" not in state.env_dict():
            state = state.with_config(Env=[*state.env_list(), f"PATH={DEFAULT_PATH}"])
        return state

    # --- the config ----------------------------------------------------------------------------------------
    @property
    def config(self) -> Mapping[str, Any]:
        return self.image.container_config

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    def with_config(self, **changes: Any) -> StageState:
        """The config with `changes` (a None value removes the key)."""
        return replace(self, image=self.image.with_config(**changes))

    def with_image(self, image: Image) -> StageState:
        return replace(self, image=image)

    def with_history(self, created_by: str, created: str) -> StageState:
        """An empty-layer history entry for a config-only instruction."""
        return self.with_image(self.image.with_history(HistoryEntry(created_by=created_by, empty_layer=True,
                                                                    created=created, comment="dockyard")))

    def with_workdirs_made(self) -> StageState:
        """The pending WORKDIR directories are in a layer now (made by a step, or in a cached one)."""
        return replace(self, pending_workdirs=())

    # --- ARG and ENV ---------------------------------------------------------------------------------------
    def env_list(self) -> list[str]:
        return list(self.config.get("Env") or [])

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env_list():
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def with_arg(self, name: str, value: str) -> StageState:
        """`ARG name=value` declared: it wins over an ENV of the same name declared before it."""
        return replace(self, args={**self.args, name: value}, args_over_env=self.args_over_env | {name})

    def with_env(self, pairs: list[tuple[str, str]]) -> StageState:
        """`ENV` pairs set in order; a name already set keeps its place in the list (BuildKit's addEnv), and wins
        over an ARG of the same name declared before it."""
        env = self.env_list()
        for key, value in pairs:
            names = [e.partition("=")[0] for e in env]
            if key in names:
                env[names.index(key)] = f"{key}={value}"
            else:
                env.append(f"{key}={value}")
        over = self.args_over_env - {key for key, _ in pairs}
        return replace(self.with_config(Env=env), args_over_env=over)

    def expansion_env(self) -> dict[str, str]:
        """Variables visible to expansion: stage ARGs and ENV, the later declaration of a name winning."""
        env = dict(self.args)
        env.update(self.env_dict())
        env.update({name: self.args[name] for name in self.args_over_env})
        return env

    def expand(self, inst: ins.Instruction, text: str) -> str:
        try:
            return Expander(escape=self.escape).expand_word(text, self.expansion_env())
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None

    def expand_words(self, inst: ins.Instruction, text: str) -> list[str]:
        try:
            return Expander(escape=self.escape).expand_words(text, self.expansion_env())
        except ValueError as exc:
            raise DockerfileError(str(exc), location=inst.location) from None
