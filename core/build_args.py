"""Build arguments a build was given: which of them no ARG consumed (reported by the build and by its checks)."""

from __future__ import annotations

from collections.abc import Iterable

from .stage.state import PROXY_ARGS
from .options import EPOCH_ARG


def unused_build_args(build_args: Iterable[str], used: set[str]) -> list[str]:
    """Build args no ARG consumed. The proxy args (any spelling, as BuildKit compares them) are used by RUN
    without an ARG, and BUILDKIT_* args and SOURCE_DATE_EPOCH are the builder's own: docker reports none."""
    return sorted(name for name in build_args
                  if name not in used and name.upper() not in PROXY_ARGS and not name.startswith("BUILDKIT_")
                  and name != EPOCH_ARG)
