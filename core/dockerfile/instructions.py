"""Typed Dockerfile instructions: what the parser produces and everything else consumes.

Values are kept *unexpanded* (as written, quotes included where docker keeps them for later expansion):
which variables are visible depends on ARG/ENV state at dispatch time, so `expand.py` is applied by the
executor, instruction by instruction, the way docker does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SourceLocation


@dataclass(frozen=True)
class Command:
    """A RUN/CMD/ENTRYPOINT/HEALTHCHECK command: JSON exec form (`args`) or shell form (`shell_text`)."""

    exec_form: bool
    args: tuple[str, ...] = ()  # exec form
    shell_text: str = ""  # shell form, as written (continuations joined)

    def argv(self, shell: tuple[str, ...]) -> list[str]:
        """The argv to run: exec form as is, shell form prefixed by SHELL (default /bin/sh -c)."""
        return list(self.args) if self.exec_form else [*shell, self.shell_text]


@dataclass(frozen=True)
class Instruction:
    """The base of every instruction kind: where it was written, its source text and its `--flags` (unexpanded)."""

    keyword: str  # upper-case, e.g. "RUN"
    location: SourceLocation
    original: str  # the instruction's source text, continuations joined, for messages and history
    flags: tuple[tuple[str, str | None], ...] = field(default=(), kw_only=True)  # ("from", "build"), ...

    def flag(self, name: str) -> str | None:
        for key, value in self.flags:
            if key == name:
                return value if value is not None else "true"
        return None

    def flag_values(self, name: str) -> list[str]:
        return [v if v is not None else "true" for k, v in self.flags if k == name]


@dataclass(frozen=True)
class From(Instruction):
    """`FROM [--platform=PLATFORM] IMAGE [AS NAME]`: the start of a stage, unexpanded."""

    image: str  # unexpanded; expanded with global ARGs only
    stage_name: str | None = None  # as written after AS (docker lower-cases it for lookup)
    platform: str | None = None  # --platform, unexpanded


@dataclass(frozen=True)
class ArgDef:
    """One `NAME[=DEFAULT]` of an ARG instruction."""

    name: str
    default: str | None  # unexpanded; None when no `=` was given


@dataclass(frozen=True)
class Arg(Instruction):
    """`ARG NAME[=DEFAULT] ...`: one or more build arguments, declared in order."""

    args: tuple[ArgDef, ...]


@dataclass(frozen=True)
class Env(Instruction):
    """`ENV KEY=VALUE ...` (or the legacy `ENV KEY VALUE`): values unexpanded."""

    pairs: tuple[tuple[str, str], ...]  # (key, unexpanded value)
    legacy_form: bool = False  # `ENV key value`


@dataclass(frozen=True)
class Label(Instruction):
    """`LABEL KEY=VALUE ...` (or the legacy `LABEL KEY VALUE`): keys and values unexpanded."""

    pairs: tuple[tuple[str, str], ...]  # (unexpanded key, unexpanded value)
    legacy_form: bool = False  # `LABEL key value`


@dataclass(frozen=True)
class Maintainer(Instruction):
    """`MAINTAINER NAME` (deprecated): sets the image's author."""

    name: str


@dataclass(frozen=True)
class Run(Instruction):
    """`RUN`: a command in exec or shell form, with its heredocs; --mount, --network and --security are in `flags`."""

    command: Command
    # --mount, --network, --security as raw flag values are in `flags`; parsed by the executor (issue 3).
    heredocs: tuple[Heredoc, ...] = ()  # in the order their markers appear; see heredoc.run_command


@dataclass(frozen=True)
class Cmd(Instruction):
    """`CMD`: the container's default command (or ENTRYPOINT's default arguments), exec or shell form."""

    command: Command


@dataclass(frozen=True)
class Entrypoint(Instruction):
    """`ENTRYPOINT`: the command the container runs, exec or shell form."""

    command: Command


@dataclass(frozen=True)
class Expose(Instruction):
    """`EXPOSE PORT[/PROTOCOL] ...`: ports the container listens on, unexpanded."""

    ports: tuple[str, ...]  # unexpanded words, e.g. "80", "53/udp", "${PORT}"


@dataclass(frozen=True)
class Copy(Instruction):
    """COPY and ADD. Flags (--from, --chown, --chmod, --link, --exclude, --parents, --checksum,
    --keep-git-dir) are in `flags`, unexpanded."""

    sources: tuple[str, ...]  # unexpanded paths/URLs; heredoc markers (`<<EOF`) are not among them
    dest: str  # unexpanded
    json_form: bool = False  # `COPY ["a", "b"]`: no word splitting
    # Inline files (`COPY <<EOF /dest`), written after the `sources` as BuildKit does, each as a file named
    # after its delimiter; their bytes come from heredoc.heredoc_content.
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def is_add(self) -> bool:
        return self.keyword == "ADD"


@dataclass(frozen=True)
class Heredoc:
    """`<<NAME` and the lines after the instruction up to the line `NAME`."""

    name: str  # the delimiter, quotes removed
    content: str  # the lines as written, each with its line break; tabs not yet stripped for <<-
    expand: bool = True  # False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`)
    chomp_tabs: bool = False  # <<-


@dataclass(frozen=True)
class Volume(Instruction):
    """`VOLUME PATH ...` or `VOLUME ["PATH", ...]`: mount points, unexpanded."""

    paths: tuple[str, ...]  # unexpanded


@dataclass(frozen=True)
class User(Instruction):
    """`USER USER[:GROUP]`: who later RUN steps and the container run as, unexpanded."""

    user: str  # unexpanded `user[:group]`


@dataclass(frozen=True)
class Workdir(Instruction):
    """`WORKDIR PATH`: the working directory from here on, unexpanded."""

    path: str  # unexpanded


@dataclass(frozen=True)
class Onbuild(Instruction):
    """`ONBUILD INSTRUCTION`: a trigger stored in the image's config, run by a later build FROM the image."""

    trigger: str  # the instruction text to run later, e.g. "RUN echo hi"


@dataclass(frozen=True)
class Stopsignal(Instruction):
    """`STOPSIGNAL SIGNAL`: the signal that stops the container, unexpanded."""

    signal: str  # unexpanded


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """`HEALTHCHECK [OPTIONS] CMD command` or `HEALTHCHECK NONE`; the options are in `flags`."""

    command: Command | None  # None for HEALTHCHECK NONE
    # --interval, --timeout, --start-period, --start-interval, --retries are in `flags`.


@dataclass(frozen=True)
class Shell(Instruction):
    """`SHELL ["executable", "parameters", ...]`: the shell that runs later shell-form commands (JSON form only)."""

    args: tuple[str, ...]


KEYWORDS = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
            "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL")


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM and the instructions after it, up to the next FROM."""

    index: int
    base: From
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.base.stage_name.lower() if self.base.stage_name else None

    @property
    def display_name(self) -> str:
        return self.base.stage_name or f"stage-{self.index}"


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its parser directives, the ARGs before the first FROM, and its stages in order."""

    path: str  # as shown in messages (relative to the working directory when possible)
    global_args: tuple[Arg, ...]  # ARGs before the first FROM
    stages: tuple[Stage, ...]
    directives: tuple[tuple[str, str], ...] = ()  # ("escape", "`"), ("syntax", ...), ("check", ...)
    escape: str = "\\"

    def stage_by_name(self, name: str) -> Stage | None:
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        return None
