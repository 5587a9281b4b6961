"""Debian control-file syntax (deb822), the format of dpkg's status database (and of status.d files). A stanza is
a run of `Field: value` lines, continued by lines that start with a space or tab;
stanzas are separated by blank lines."""

from __future__ import annotations

from typing import Iterator, NamedTuple


class Stanza(NamedTuple):
    """One paragraph: its fields (names as written; look them up with `field`), and its first line number."""

    fields: dict[str, str]
    line: int
    problem: str | None  # why the paragraph is malformed (None when it is not)

    def field(self, name: str) -> str | None:
        """A field's value, its name matched case-insensitively as deb822 does."""
        wanted = name.lower()
        for key, value in self.fields.items():
            if key.lower() == wanted:
                return value
        return None


def stanzas(text: str) -> Iterator[Stanza]:
    fields: dict[str, str] = {}
    start = 0
    last: str | None = None
    problem: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if fields or problem:
                yield Stanza(fields, start, problem)
            fields, last, problem = {}, None, None
            continue
        if not fields and problem is None:
            start = number
        if line[0] in " \t":
            if last is None:
                problem = problem or f"line {number} continues a field but no field precedes it"
                continue
            fields[last] += "\n" + line[1:]
            continue
        if line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            problem = problem or f"line {number} is not a `Field: value` line"
            last = None
            continue
        last = name.strip()
        fields[last] = value.strip()
    if fields or problem:
        yield Stanza(fields, start, problem)
