"""Talking to the runner: workflow commands on stdout, and the environment files.

actions-toolkit (PyPI, 0.1.15) is used where it is right: `set_secret` (::add-mask::), groups, message-only
`error`, and `set_output`, which writes GITHUB_OUTPUT in the `name<<ghadelimiter_<uuid4>` form with a check that
the value does not contain the delimiter (multi-line values such as the tag list need that form). It falls short
in two places, done here instead: its annotations print every property even when empty (`title=,file=...,
line=,endLine=`) — the findings' annotations come ready-made from dockyard's `github` report, the failure's
is written by `command` — and it has no job summary helper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from actions_toolkit import core

# A line this short is punctuation in a key file (`{`, `}`), not a secret: masking it would blank every `}` in
# the log and protect nothing.
MIN_MASKED_LENGTH = 3


def mask(values: Iterable[str]) -> None:
    """::add-mask:: each value, line by line (the runner matches masks within a line, so a multi-line secret
    is registered as its lines)."""
    seen: set[str] = set()
    for value in values:
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= MIN_MASKED_LENGTH and line not in seen:
                seen.add(line)
                core.set_secret(line)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, properties: Mapping[str, object]) -> str:
    """A workflow command (`::error file=F,line=N::message`), the properties without a value left out."""
    given = ",".join(f"{name}={escape_property(str(value))}" for name, value in properties.items()
                     if value is not None and str(value) != "")
    return f"::{kind}{' ' + given if given else ''}::{escape_data(message)}"


def command_properties(line: str) -> dict[str, str]:
    """The properties of a workflow command line (`::KIND PROPERTIES::MESSAGE`), unescaped; {} for another line."""
    if not line.startswith("::"):
        return {}
    head = line[2:].partition("::")[0]
    _, _, given = head.partition(" ")
    properties = {}
    for item in given.split(",") if given else ():
        name, _, value = item.partition("=")
        properties[name] = value.replace("%2C", ",").replace("%3A", ":").replace("%0A", "\n").replace(
            "%0D", "\r").replace("%25", "%")
    return properties


def start_group(title: str) -> None:
    core.start_group(title)


def end_group() -> None:
    core.end_group()


def error(message: str) -> None:
    core.error(message)


def set_outputs(outputs: dict[str, str]) -> None:
    for name, value in outputs.items():
        core.set_output(name, value)


def append_summary(markdown: str, environ: dict[str, str]) -> None:
    """Append to $GITHUB_STEP_SUMMARY (Markdown; the runner shows it on the run's page). No file: not on a runner."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(markdown if markdown.endswith("\n") else markdown + "\n")

