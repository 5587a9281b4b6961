"""When and how long to wait before trying a registry request again.

Retried: connection failures and timeouts, 5xx answers and 429 (rate limiting). Not retried: TLS failures and
unknown host names (waiting does not fix a certificate or a typo) and every other 4xx (the request itself is
wrong). Waits grow exponentially with jitter, so that the parallel transfers of one build (and many CI jobs
behind one proxy) do not hammer a struggling registry in lock-step; a `Retry-After` the registry sends wins,
capped so that a registry cannot stall a build for hours.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import RegistryError

DEFAULT_RETRIES = 3
DEFAULT_BASE_DELAY = 0.5  # seconds before the first retry (before jitter)
DEFAULT_MAX_DELAY = 30.0  # the longest exponential wait
MAX_RETRY_AFTER = 120.0  # the longest Retry-After we honour
# 501 Not Implemented and 505 HTTP Version Not Supported will not change on a second try.
_PERMANENT_5XX = (501, 505)
# Kinds from client.classify_network_error that waiting cannot fix.
_PERMANENT_NETWORK_KINDS = ("tls", "dns")


class TransientRegistryError(RegistryError):
    """A registry could not be reached or the connection broke: trying again may work. `reason` is the short
    description of the failure, for the message of a later error."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.reason = reason


def is_retryable_status(status: int) -> bool:
    return status == 429 or (status >= 500 and status not in _PERMANENT_5XX)


def is_retryable_network_kind(kind: str) -> bool:
    return kind not in _PERMANENT_NETWORK_KINDS


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` is the number of attempts after the first one (docker's --max-download-attempts minus one)."""

    retries: int = DEFAULT_RETRIES
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def delay(self, retry: int, retry_after: str | None = None) -> float:
        """How long to wait before retry number `retry` (0 for the first retry)."""
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER)
        ceiling = min(self.max_delay, self.base_delay * (2 ** retry))
        return float(ceiling * random.uniform(0.5, 1.0))  # "equal jitter": never less than half the ceiling

    def wait(self, retry: int, retry_after: str | None = None) -> None:
        self.sleep(self.delay(retry, retry_after))


def attempts_text(retries: int) -> str:
    """For final errors: how hard we tried."""
    return "no retries" if retries == 0 else f"{retries + 1} attempts"
