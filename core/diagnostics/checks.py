"""dockyard's own build checks: the semantic ones a builder knows best, read from the parsed Dockerfile and
the build plan (never a second parse of the text). Rule names and messages follow BuildKit's build checks
where BuildKit has the check, so users can look them up; the others are dockyard's own.

Every check here reports at WARNING (BuildKit's default; `# check=error=true` raises them) except where
said otherwise."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path

from ..build_args import unused_build_args
from ..context import DockerIgnore
from ..dockerfile import instructions as ins
from ..dockerfile.expand import Expander
from ..dockerfile.mounts import mount_from_refs
from ..errors import DockerfileError, UsageError
from ..image.model import Platform
from ..image.reference import parse_reference
from ..named_contexts import NamedContext, NamedContexts
from ..plan import global_arg_values, make_plan, predefined_args
from .model import Finding, Severity, buildkit_help_url

# dockyard's own rules (BuildKit has no check for these).
UNUSED_BUILD_ARG = "UnusedBuildArg"
UNREACHABLE_STAGE = "UnreachableStage"
UNKNOWN_FROM_STAGE = "UnknownFromStage"
INVALID_DOCKERFILE = "InvalidDockerfile"
OWN_RULES = frozenset({UNUSED_BUILD_ARG, UNREACHABLE_STAGE, UNKNOWN_FROM_STAGE, INVALID_DOCKERFILE})

# BuildKit's secret-name heuristic (dockerfile2llb validateNoSecretKey): a secret-like token as a whole
# `_`-separated part of the name, unless a part says the value is public.
_SECRET_NAME = re.compile(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)"
                          r"(?:_|$)")
_PUBLIC_NAME = re.compile(r"(?i)(?:_|^)public(?:_|$)")
# `${NAME:-default}` and friends: the default (or error) covers an unset NAME, so BuildKit does not warn.
_GUARDED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?[-+?]")
# A bare word after --from= that is no stage is pulled as docker.io/library/WORD.
_BARE_IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# BuildKit gives every stage a default PATH when its image has none, so it is always defined.
_ALWAYS_DEFINED = frozenset({"PATH"})
# Instructions that may appear once per stage: only the last one counts.
_SINGLE_USE = ("CMD", "ENTRYPOINT", "HEALTHCHECK")


def dockerfile_findings(dockerfile: ins.Dockerfile, build_args: Mapping[str, str], target: str | None,
                        context: Path | None, context_names: frozenset[str] = frozenset()) -> list[Finding]:
    """Every finding of dockyard's checks. Raises UsageError when `target` names no stage. `context_names` are
    the build's named contexts (--build-context): a --from naming one names no unknown stage."""
    checker = _Checker(dockerfile, NamedContexts([NamedContext(name, "named", "") for name in context_names]))
    checker.check_from_args()
    env_by_stage: dict[int, set[str]] = {}
    workdir_by_stage: dict[int, bool] = {}
    names: dict[str, int] = {}
    for stage in dockerfile.stages:
        parent = names.get(stage.base.image.lower())
        env = set(env_by_stage[parent]) if parent is not None else set()
        has_workdir = workdir_by_stage[parent] if parent is not None else False
        checker.check_stage_name(stage)
        env_by_stage[stage.index], workdir_by_stage[stage.index] = checker.check_stage(
            stage, env, has_workdir, image_base=parent is None and stage.base.image != "scratch")
        checker.check_from_refs(stage, names)
        if context is not None:
            checker.check_ignored_sources(stage, DockerIgnore.load(context, Path(dockerfile.path)))
        if stage.name:
            names[stage.name] = stage.index
    checker.check_plan(dict(build_args), target)
    return checker.findings


class _Checker:
    def __init__(self, dockerfile: ins.Dockerfile, contexts: NamedContexts | None = None):
        self.dockerfile = dockerfile
        self.contexts = contexts or NamedContexts()
        self.expander = Expander(escape=dockerfile.escape)
        self.findings: list[Finding] = []
        self.global_names = {d.name for arg in dockerfile.global_args for d in arg.args}
        # Names the Dockerfile itself defines somewhere: an undefined one of these is a scoping mistake even
        # in a stage whose base image (whose environment we cannot see without pulling it) might define others.
        self.declared_names = self.global_names | {
            name for stage in dockerfile.stages for inst in stage.instructions for name in _defined_names(inst)}

    def report(self, rule: str, inst: ins.Instruction | None, message: str,
               severity: Severity = Severity.WARNING) -> None:
        location = inst.location if inst is not None else None
        self.findings.append(Finding(
            rule=rule, severity=severity, file=self.dockerfile.path, message=message,
            line=location.start_line if location else None,
            end_line=(location.end_line or location.start_line) if location else None,
            help_url="" if rule in OWN_RULES else buildkit_help_url(rule)))

    def referenced(self, text: str) -> set[str]:
        """The names `text` reads without a default to fall back on."""
        try:
            names = self.expander.referenced(text)
        except ValueError:
            return set()  # malformed: the build reports it at this line
        return names - set(_GUARDED.findall(text))

    # --- global scope and stage names ----------------------------------------------------------------------
    def check_from_args(self) -> None:
        predefined = predefined_args(Platform(), Platform(), "")
        known = self.global_names | set(predefined)
        try:
            defaults = global_arg_values(self.dockerfile, {}, set(), predefined)
        except DockerfileError:
            defaults = None  # a malformed default: the plan reports it at its line
        for stage in self.dockerfile.stages:
            base = stage.base
            for text in (base.image, base.platform or ""):
                for name in sorted(self.referenced(text) - known):
                    self.report("UndefinedArgInFrom", base, f"FROM argument '{name}' is not declared"
                                + _suggestion(name, known) + " (declare it with ARG before the first FROM)")
            if defaults is not None and self.referenced(base.image) and not self._valid_base(base.image, defaults):
                self.report("InvalidDefaultArgInFrom", base, f"Default value for ARG {base.image} results in empty "
                                                             "or invalid base image name (give the ARG a default "
                                                             "or use ${NAME:-default})")

    def _valid_base(self, image: str, defaults: Mapping[str, str]) -> bool:
        """Whether the FROM image, expanded with the global ARGs' defaults only (no --build-arg), names a stage,
        scratch or a well-formed image reference: BuildKit's InvalidDefaultArgInFrom test."""
        try:
            expanded = self.expander.expand_word(image, defaults)
        except ValueError:
            return True  # malformed: the plan reports it
        if expanded.lower() in {s.name for s in self.dockerfile.stages if s.name} | {"scratch"}:
            return True
        try:
            parse_reference(expanded)
        except UsageError:
            return False
        return True

    def from_needs_build_arg(self, line: int | None, build_args: Mapping[str, str]) -> bool:
        """Whether the FROM at `line` was reported by InvalidDefaultArgInFrom and none of its ARGs is given:
        its image is then only known at build time, which the warning already says."""
        stage = next((s for s in self.dockerfile.stages if s.base.location.start_line == line), None)
        return stage is not None and not (self.referenced(stage.base.image) & set(build_args)) and any(
            f.rule == "InvalidDefaultArgInFrom" and f.line == line for f in self.findings)

    def check_stage_name(self, stage: ins.Stage) -> None:
        base = stage.base
        if base.stage_name is None:
            return
        if base.stage_name != base.stage_name.lower():
            self.report("StageNameCasing", base, f"Stage name '{base.stage_name}' should be lowercase")
        if base.stage_name.lower() in ("scratch", "context"):
            self.report("ReservedStageName", base, f"Stage name should not use the same name as reserved stage "
                                                   f"'{base.stage_name.lower()}'")
        words = base.original.split()
        keyword, as_word = words[0], next((w for w in words[1:] if w.lower() == "as"), "")
        if (keyword.isupper() and not as_word.isupper()) or (keyword.islower() and not as_word.islower()):
            self.report("FromAsCasing", base, f"'{as_word}' and '{keyword}' keywords' casing do not match")

    # --- inside a stage ------------------------------------------------------------------------------------
    def check_stage(self, stage: ins.Stage, env: set[str], has_workdir: bool,
                    image_base: bool) -> tuple[set[str], bool]:
        """Runs the per-instruction checks; returns the ENV names and whether a WORKDIR was set, which a
        stage built FROM this one inherits (ARGs are not inherited)."""
        args: set[str] = set()
        shell_changed = False
        last_of_kind = {inst.keyword: inst for inst in stage.instructions if inst.keyword in _SINGLE_USE}
        for inst in stage.instructions:
            self.check_undefined(inst, env, args, image_base)
            if isinstance(inst, ins.Arg):
                for definition in inst.args:
                    args.add(definition.name)
                    self.check_secret_name(inst, definition.name)
            elif isinstance(inst, ins.Env):
                for key, _ in inst.pairs:
                    env.add(key)
                    self.check_secret_name(inst, key)
            if isinstance(inst, (ins.Env, ins.Label)) and inst.legacy_form:
                self.report("LegacyKeyValueFormat", inst, f'"{inst.keyword} key=value" should be used instead of '
                                                          f'legacy "{inst.keyword} key value" format')
            elif isinstance(inst, ins.Shell):
                shell_changed = True
            elif isinstance(inst, (ins.Cmd, ins.Entrypoint)) and not inst.command.exec_form and not shell_changed:
                # With a SHELL instruction the shell form is deliberate, so BuildKit does not warn then.
                self.report("JSONArgsRecommended", inst, f"JSON arguments recommended for {inst.keyword} to "
                                                         "prevent unintended behavior related to OS signals")
            elif isinstance(inst, ins.Workdir):
                if not has_workdir and not inst.path.startswith(("/", "$")):
                    self.report("WorkdirRelativePath", inst, f"Relative workdir \"{inst.path}\" can have "
                                                             "unexpected results if the base image changes")
                has_workdir = True
            elif isinstance(inst, ins.Maintainer):
                self.report("MaintainerDeprecated", inst, "Maintainer instruction is deprecated in favor of "
                                                          "using label")
            if inst.keyword in _SINGLE_USE and last_of_kind[inst.keyword] is not inst:
                self.report("MultipleInstructionsDisallowed", inst, f"Multiple {inst.keyword} instructions should "
                                                                    "not be used in the same stage because only "
                                                                    "the last one will be used")
        return env, has_workdir

    def check_undefined(self, inst: ins.Instruction, env: set[str], args: set[str], image_base: bool) -> None:
        """UndefinedVar for each name `inst` expands that nothing defines before it. An ARG's defaults are
        expanded one definition at a time, each seeing the ones before it (`ARG A=1 B=$A` gives B=1, as in the
        executor's do_arg); any other instruction sees only what came before it (`ENV A=1 B=$A` reads the old A)."""
        missing: dict[str, set[str]] = {}  # undefined name -> the names that were defined where it is read
        if isinstance(inst, ins.Arg):
            earlier = set(args)
            for definition in inst.args:
                if definition.default is not None:
                    defined = env | earlier | _ALWAYS_DEFINED
                    for name in self.referenced(definition.default) - defined:
                        missing.setdefault(name, defined)
                earlier.add(definition.name)
        else:
            defined = env | args | _ALWAYS_DEFINED
            missing = dict.fromkeys(_expanded_names(self, inst) - defined, defined)
        for name in sorted(missing):
            # A stage FROM an image may get any name from the image's environment: only names the Dockerfile
            # defines elsewhere (a global ARG not redeclared here, another stage's ENV) are known to be missing.
            if image_base and name not in self.declared_names:
                continue
            hint = (f" (a global ARG: declare it again with `ARG {name}` inside the stage)"
                    if name in self.global_names else _suggestion(name, missing[name] - _ALWAYS_DEFINED))
            self.report("UndefinedVar", inst, f"Usage of undefined variable '${name}'{hint}")

    def check_secret_name(self, inst: ins.Instruction, name: str) -> None:
        if _SECRET_NAME.search(name) and not _PUBLIC_NAME.search(name):
            self.report("SecretsUsedInArgOrEnv", inst, f"Do not use ARG or ENV instructions for sensitive data "
                                                       f'({inst.keyword} "{name}"): they stay in the image; use '
                                                       "RUN --mount=type=secret")

    def check_from_refs(self, stage: ins.Stage, earlier: dict[str, int]) -> None:
        """COPY --from / RUN --mount from= that name no stage. A later or unknown stage index is an error the
        plan reports; a bare word is pulled as an image, which is right only if it was meant."""
        for inst in stage.instructions:
            refs = [inst.flag("from")] if isinstance(inst, ins.Copy) and inst.flag("from") else (
                mount_from_refs(inst) if isinstance(inst, ins.Run) else [])
            for ref in refs:
                if ref is None:  # never: a COPY above has --from, and a mount's from= is given
                    continue
                lowered = ref.lower()
                if lowered in earlier or ref.isdigit() or not _BARE_IMAGE_NAME.fullmatch(lowered):
                    continue
                if self.contexts.lookup(ref) is not None:
                    continue  # a named context of the build
                later = self.dockerfile.stage_by_name(lowered)
                if later is not None:
                    continue  # a stage defined later: the plan reports it as an error
                close = difflib.get_close_matches(lowered, [s.name for s in self.dockerfile.stages if s.name], n=1)
                self.report(UNKNOWN_FROM_STAGE, inst,
                            f"--from={ref} names no stage: it is pulled as the image docker.io/library/{lowered}"
                            + (f" (did you mean the stage {close[0]}?)" if close else ""),
                            Severity.WARNING if close else Severity.INFO)

    def check_ignored_sources(self, stage: ins.Stage, ignore: DockerIgnore) -> None:
        for inst in stage.instructions:
            if not isinstance(inst, ins.Copy) or inst.flag("from") is not None:
                continue
            for source in inst.sources:
                if "$" in source or "://" in source:
                    continue  # the value is only known at build time, or a URL
                relative = source.strip("/").removeprefix("./") or "."
                if relative != "." and ignore.ignored(relative):
                    self.report("CopyIgnoredFile", inst, f"Attempting to {inst.keyword} file \"{source}\" that is "
                                                         "excluded by .dockerignore")

    # --- the plan ------------------------------------------------------------------------------------------
    def check_plan(self, build_args: dict[str, str], target: str | None) -> None:
        used: set[str] = set()
        try:
            plan = make_plan(self.dockerfile, target, build_args, used, contexts=self.contexts)
        except DockerfileError as exc:
            # Linting without the --build-arg a FROM needs is not a broken Dockerfile; the plan-based checks
            # below need a plan, so they are skipped then.
            if not self.from_needs_build_arg(exc.location.start_line if exc.location else None, build_args):
                self.findings.append(finding_for_dockerfile_error(exc))
            return
        needed = {p.stage.index for p in plan.stages}
        target_stage = self.dockerfile.stages[plan.target_index].display_name
        for stage in self.dockerfile.stages:
            if stage.index not in needed:
                self.report(UNREACHABLE_STAGE, stage.base, f"stage {stage.display_name} is not needed for the "
                                                           f"target {target_stage} and is not built",
                            Severity.INFO)
            else:
                used |= {d.name for inst in stage.instructions if isinstance(inst, ins.Arg) for d in inst.args}
        for name in unused_build_args(build_args, used):
            self.report(UNUSED_BUILD_ARG, None, f"build argument {name} is not consumed by any ARG")


def finding_for_dockerfile_error(exc: DockerfileError) -> Finding:
    """A Dockerfile that does not parse or plan: an error at its line, under BuildKit's name if it has one."""
    rule = exc.rule or INVALID_DOCKERFILE
    location = exc.location
    message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    return Finding(rule=rule, severity=Severity.ERROR, file=location.file if location else (exc.subject or ""),
                   line=location.start_line if location else None,
                   end_line=(location.end_line or location.start_line) if location else None, message=message,
                   help_url=buildkit_help_url(rule) if exc.rule else "", source="dockyard")


def _defined_names(inst: ins.Instruction) -> list[str]:
    if isinstance(inst, ins.Arg):
        return [d.name for d in inst.args]
    if isinstance(inst, ins.Env):
        return [key for key, _ in inst.pairs]
    return []


def _expanded_names(checker: _Checker, inst: ins.Instruction) -> set[str]:
    """The variables the builder expands in `inst` (RUN, CMD and ENTRYPOINT are left to the shell; an ARG's
    defaults are checked one by one in `check_undefined`)."""
    texts: list[str] = []
    if isinstance(inst, ins.Env):
        texts = [value for _, value in inst.pairs]
    elif isinstance(inst, ins.Label):
        texts = [text for pair in inst.pairs for text in pair]
    elif isinstance(inst, ins.Copy):
        texts = [*inst.sources, inst.dest, *(inst.flag_values("chown") + inst.flag_values("chmod"))]
    elif isinstance(inst, ins.Expose):
        texts = list(inst.ports)
    elif isinstance(inst, ins.Volume):
        texts = list(inst.paths)
    elif isinstance(inst, ins.Workdir):
        texts = [inst.path]
    elif isinstance(inst, ins.User):
        texts = [inst.user]
    elif isinstance(inst, ins.Stopsignal):
        texts = [inst.signal]
    names: set[str] = set()
    for text in texts:
        names |= checker.referenced(text)
    return names


def _suggestion(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean ${close[0]}?)" if close else ""
