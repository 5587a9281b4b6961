"""RUN --mount as BuildKit reads it (frontend/dockerfile/instructions/commands_runmount.go): the flag's CSV
fields, keys case-insensitive, each value expanded with the step's ARG/ENV (as BuildKit's parseMount expands
values, never keys, after splitting the fields), then BuildKit's defaults and checks. The result is a typed
`RunMount`; preparing its source on the host is the stage's job (stage/mounts.py)."""

from __future__ import annotations

import csv
import difflib
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import DockerfileError
from ..rootfs.paths import clean
from .instructions import Run

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw",
         "id", "sharing", "required", "mode", "uid", "gid", "size", "env")


@dataclass(frozen=True)
class RunMount:
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
def parse_mount(text: str, expand: Callable[[str], str], workdir: str = "/") -> RunMount:
    """A `--mount` value, as BuildKit's parseMount reads it: CSV fields, keys case-insensitive, values
    expanded with the step's ARG/ENV, then BuildKit's defaults and checks."""
    try:
        fields = next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        raise DockerfileError(f"invalid --mount={text}: expected comma-separated key=value pairs") from None
    values: dict[str, Any] = {"type": "bind"}
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


def _flag_word(values: dict[str, Any], key: str, item: str) -> bool:
    """A key without a value: ro/rw/required. Returns whether it set read-only-ness."""
    if key in ("readonly", "ro", "readwrite", "rw"):
        values["readonly"] = key in ("readonly", "ro")
        return True
    if key == "required":
        _set_key(values, key, "true", item)
        return False
    raise DockerfileError(f"invalid --mount field {item!r}: it must be a key=value pair",
                          hint="only ro, rw and required may be given without a value")


def _set_key(values: dict[str, Any], key: str, value: str, item: str) -> None:
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


def _validated(values: dict[str, Any], readonly_given: bool, workdir: str, text: str) -> RunMount:
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
    return RunMount(**values)


def _check_secret(values: dict[str, Any]) -> None:
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


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    """BuildKit's suggestion of the closest known word, as a sentence ending the message (or nothing)."""
    close = difflib.get_close_matches(word.lower(), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def mount_from_refs(run: Run) -> list[str]:
    """The stages/images RUN --mount reads (`from=`), unexpanded, for the build plan: BuildKit resolves them
    before any ARG has a value."""
    refs: list[str] = []
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
