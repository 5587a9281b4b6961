"""The `created` time of a history entry (and of the image), as BuildKit writes it."""

from __future__ import annotations

import datetime as _dt


def created_time(epoch: int | None = None) -> str:
    """A `created` timestamp: now, or SOURCE_DATE_EPOCH written as BuildKit writes it (whole seconds, UTC)."""
    if epoch is None:
        return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
