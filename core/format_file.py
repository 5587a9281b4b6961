"""The `FLAG FORMAT=FILE` option values of the report flags (--report, --scan-report), parsed one way."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def parse_format_file(text: str, flag: str, formats: tuple[str, ...], example: str) -> tuple[str, Path]:
    """A `FLAG FORMAT=FILE` value (--report, --scan-report): the format, one of `formats`, and the file."""
    fmt, sep, path = text.partition("=")
    if not sep or not path or fmt not in formats:
        raise UsageError(f"{flag} {text!r}: expected FORMAT=FILE with FORMAT one of {', '.join(formats)}",
                         hint=f"e.g. {example}")
    return fmt, Path(path)
