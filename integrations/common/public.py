"""The names of the `dockyard` package the adapters use, in one place: all of them public names."""

from __future__ import annotations

from dockyard import OutputSpec, PlainRenderer, Platform, format_duration, format_size, parse_reference

__all__ = ["OutputSpec", "PlainRenderer", "Platform", "format_duration", "format_size", "parse_reference"]
