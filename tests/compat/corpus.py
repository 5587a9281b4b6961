"""The corpus cases: reading ``case.toml`` (format in tests/compat/README.md) and checking ``[expect]``.

``load_case(dir)`` validates the file strictly (an unknown key or a wrongly typed value is an error naming the
case), so a typo in a case cannot silently turn a check off.  ``check_expectations(expect, built)`` returns
readable failures for everything ``[expect]`` states about dockyard's image.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from tests.support import oracle, tree

CASES_DIR = Path(__file__).parent / "cases"

_STR_MAP = "a table of strings"
_STR_LIST = "a list of strings"
_TOP_KEYS = {"about": "a string", "dockerfile": "a string", "target": "a string", "build_args": _STR_MAP,
             "secrets": _STR_LIST, "build_contexts": _STR_LIST, "env": _STR_MAP, "expect": "a table",
             "exception": "a table"}
_EXPECT_KEYS = {"files": _STR_MAP, "modes": _STR_MAP, "owners": _STR_MAP, "types": _STR_MAP, "links": _STR_MAP,
                "absent": _STR_LIST, "present": _STR_LIST, "config": "a table", "history_excludes": _STR_LIST,
                "layers_exclude": _STR_LIST, "log_excludes": _STR_LIST, "error": "a string", "exit_code": "an integer"}
_EXCEPTION_KEYS = {"reason": "a string", "buildah": "a string", "ignore_paths": _STR_LIST,
                   "ignore_config": _STR_LIST}
_LIST_MAP = "a table of lists of strings"
_EXPECT_KEYS["xattrs"] = _LIST_MAP
_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a table": lambda v: isinstance(v, dict),
    _STR_MAP: lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    _STR_LIST: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    _LIST_MAP: lambda v: isinstance(v, dict) and all(isinstance(x, list) for x in v.values()),
}


class CaseError(ValueError):
    """A case.toml that does not follow the format of tests/compat/README.md."""


@dataclass(frozen=True)
class Exception_:
    reason: str
    skip_buildah: bool
    ignore_paths: tuple[str, ...]
    ignore_config: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    name: str
    dir: Path
    about: str
    dockerfile: str = "Dockerfile"
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    build_contexts: tuple[str, ...] = ()  # NAME=VALUE; a directory is relative to the context, ${ARG} expanded
    env: Mapping[str, str] = field(default_factory=dict)
    expect: Mapping = field(default_factory=dict)
    exception: Exception_ | None = None

    @property
    def expects_error(self) -> bool:
        return "error" in self.expect or "exit_code" in self.expect


def case_names() -> list[str]:
    """Every directory under cases/ holding a case.toml, sorted (one pytest test each)."""
    if not CASES_DIR.is_dir():
        return []
    return sorted(d.name for d in CASES_DIR.iterdir() if (d / "case.toml").is_file())


def _check_table(where: str, table: Mapping, allowed: Mapping[str, str]) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise CaseError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")
        if not _TYPE_CHECKS[allowed[key]](value):
            raise CaseError(f"{where}: {key} must be {allowed[key]}, got {value!r}")


def _exception(where: str, raw: Mapping) -> Exception_:
    _check_table(f"{where} [exception]", raw, _EXCEPTION_KEYS)
    if not raw.get("reason"):
        raise CaseError(f"{where} [exception]: a reason is required (why buildah departs from docker)")
    mode = raw.get("buildah", "compare")
    if mode not in ("skip", "compare"):
        raise CaseError(f"{where} [exception]: buildah must be \"skip\" or \"compare\", got {mode!r}")
    return Exception_(raw["reason"], mode == "skip", tuple(raw.get("ignore_paths", ())),
                      tuple(raw.get("ignore_config", ())))


def load_case(case_dir: Path) -> Case:
    where = f"{case_dir.name}/case.toml"
    try:
        raw = tomllib.loads((case_dir / "case.toml").read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{where}: {exc}") from None
    _check_table(where, raw, _TOP_KEYS)
    if not raw.get("about"):
        raise CaseError(f"{where}: `about` (what the case is about) is required")
    expect = raw.get("expect", {})
    _check_table(f"{where} [expect]", expect, _EXPECT_KEYS)
    if not expect:
        raise CaseError(f"{where}: an [expect] section saying what docker's image must contain is required")
    dockerfile = raw.get("dockerfile", "Dockerfile")
    if not (case_dir / dockerfile).is_file():
        raise CaseError(f"{where}: the Dockerfile {dockerfile!r} is missing")
    return Case(
        name=case_dir.name, dir=case_dir, about=raw["about"], dockerfile=dockerfile, target=raw.get("target"),
        build_args=raw.get("build_args", {}), secrets=tuple(raw.get("secrets", ())),
        build_contexts=tuple(raw.get("build_contexts", ())), env=raw.get("env", {}),
        expect=expect, exception=_exception(where, raw["exception"]) if "exception" in raw else None,
    )


# ---------------------------------------------------------------------------------------------- inputs
# What a build of a case is given, the same for every builder (test_corpus.py, benchmarks/corpus_digests.py).


def prepare_context(case: Case, dest: Path) -> Path:
    """The case's build context at `dest`: a copy of its directory after its setup.sh ran there (as root), without
    setup.sh and case.toml."""
    shutil.copytree(case.dir, dest, symlinks=True)
    setup = dest / "setup.sh"
    if setup.exists():
        oracle.run_tool(["sh", "-e", str(setup)], 120, cwd=dest)
        setup.unlink()
    (dest / "case.toml").unlink()  # the harness's file, not part of the build context
    return dest


def absolute_secrets(secrets: tuple[str, ...], context: Path) -> list[str]:
    """``--secret`` values with ``src=`` made absolute (the README says src is relative to the context)."""
    out = []
    for spec in secrets:
        parts = []
        for part in spec.split(","):
            key, _, value = part.partition("=")
            parts.append(f"src={context / value}" if key in ("src", "source") else part)
        out.append(",".join(parts))
    return out


def build_context_values(case: Case, context: Path, build_args: Mapping[str, str]) -> list[str]:
    """``--build-context`` values: ``${NAME}`` replaced by the build arg, a directory made absolute (relative to
    the context, as the README says)."""
    out = []
    for spec in case.build_contexts:
        for key, value in build_args.items():
            spec = spec.replace("${" + key + "}", value)
        name, _, value = spec.partition("=")
        out.append(f"{name}={value}" if "://" in value else f"{name}={context / value}")
    return out


# ---------------------------------------------------------------------------------------------- [expect]


@dataclass
class BuiltImage:
    """What the harness read back from one dockyard build."""

    rootfs: Path
    tree: Mapping[str, tree.Entry]
    config: Mapping  # the raw image config JSON (config, history, rootfs...)
    config_json: str  # the config blob exactly as written
    layer_tars: list[bytes]  # every layer, uncompressed
    log: str  # stdout + stderr of the build


def _check_files(expected: Mapping[str, str], img: BuiltImage) -> list[str]:
    out = []
    for path, content in expected.items():
        entry = img.tree.get(path)
        if entry is None or entry.type != "f":
            out.append(f"{path}: expected a file with {content!r}, found {entry.describe() if entry else 'nothing'}")
            continue
        actual = (img.rootfs / path.lstrip("/")).read_bytes()
        if actual != content.encode():
            out.append(f"{path}: content {actual[:200]!r} != expected {content!r}")
    return out


def _check_attr(kind: str, expected: Mapping[str, str], img: BuiltImage,
                actual_of: Callable[[tree.Entry], str]) -> list[str]:
    out = []
    for path, want in expected.items():
        entry = img.tree.get(path)
        if entry is None:
            out.append(f"{path}: expected {kind} {want}, but the path is absent")
        elif (got := actual_of(entry)) != want:
            out.append(f"{path}: {kind} {got} != expected {want} ({entry.describe()})")
    return out


def _check_xattrs(expected: Mapping[str, list[str]], img: BuiltImage) -> list[str]:
    out = []
    for path, names in expected.items():
        entry = img.tree.get(path)
        missing = [n for n in names if entry is None or n not in entry.xattrs]
        if missing:
            out.append(f"{path}: lacks xattrs {missing} ({entry.describe() if entry else 'absent'})")
    return out


def _normalized_mode(want: str) -> str:
    return f"{int(want, 8):04o}"


def _check_config(expected: Mapping, img: BuiltImage) -> list[str]:
    actual = img.config.get("config") or {}
    out = []
    for name, want in expected.items():
        got = tree.normalize_config_field(name, actual.get(name))
        if got != tree.normalize_config_field(name, want):
            out.append(f"config.{name}: {got!r} != expected {want!r}")
    return out


def _check_excludes(needles: list[str], haystacks: list[tuple[str, bytes]]) -> list[str]:
    return [f"{needle!r} appears in {where}" for needle in needles for where, data in haystacks
            if needle.encode() in data]


def check_expectations(expect: Mapping, img: BuiltImage) -> list[str]:
    """Every way dockyard's image departs from what ``[expect]`` says docker's image contains."""
    modes = {p: _normalized_mode(m) for p, m in expect.get("modes", {}).items()}
    layers = [(f"layer {i + 1}", data) for i, data in enumerate(img.layer_tars)]
    history = [("the config/history", img.config_json.encode())]
    return [
        *_check_files(expect.get("files", {}), img),
        *_check_attr("mode", modes, img, lambda e: f"{e.mode:04o}"),
        *_check_attr("owner", expect.get("owners", {}), img, lambda e: f"{e.uid}:{e.gid}"),
        *_check_attr("type", expect.get("types", {}), img, lambda e: e.type),
        *_check_attr("link", expect.get("links", {}), img, lambda e: str(e.link)),
        *_check_xattrs(expect.get("xattrs", {}), img),
        *[f"{p}: expected absent, found {img.tree[p].describe()}" for p in expect.get("absent", []) if p in img.tree],
        *[f"{p}: expected present, but it is absent" for p in expect.get("present", []) if p not in img.tree],
        *_check_config(expect.get("config", {}), img),
        *_check_excludes(expect.get("history_excludes", []), history),
        *_check_excludes(expect.get("layers_exclude", []), layers),
        *_check_excludes(expect.get("log_excludes", []), [("dockyard's output", img.log.encode())]),
    ]
