"""The names of the `dockyard` package the adapters use, in one place.

Platform, OutputSpec and parse_reference are public names of `dockyard` (its __init__ exports them, or will:
until it does, they come from the modules that define them). PlainRenderer (and the durations and sizes it writes,
format_duration and format_size) are not public names yet: the CI logs render the event stream exactly as
`--progress plain` does, so the kernel needs them (or a public renderer)."""

from __future__ import annotations

try:
    from dockyard import OutputSpec, Platform, parse_reference
except ImportError:  # a dockyard whose __init__ does not export them yet
    from dockyard.image.model import Platform
    from dockyard.image.reference import parse_reference
    from dockyard.options import OutputSpec
from dockyard.progress import PlainRenderer, format_duration, format_size

__all__ = ["OutputSpec", "PlainRenderer", "Platform", "format_duration", "format_size", "parse_reference"]
