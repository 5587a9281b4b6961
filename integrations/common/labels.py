"""The OCI labels (org.opencontainers.image.*) an adapter adds from what its platform knows of the commit.

`created` is SOURCE_DATE_EPOCH's time when it is set, so a reproducible build stays reproducible; else the time
the platform gives (GitLab: the pipeline's creation, so every job of one pipeline labels its images alike); else
now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PREFIX = "org.opencontainers.image."


@dataclass(frozen=True)
class ImageProvenance:
    """What a CI platform tells a job about the commit it builds; an empty value gives no label."""

    source: str = ""  # the repository's URL
    revision: str = ""  # the commit's full sha
    url: str = ""  # where a person finds out about the image
    title: str = ""
    version: str = ""
    created: str = ""  # RFC 3339, when the platform has a time of its own for the build


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_time(given: str, environ: Mapping[str, str], *, now: dt.datetime | None = None) -> str:
    """SOURCE_DATE_EPOCH's time, else `given`, else now."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return rfc3339(dt.datetime.fromtimestamp(int(epoch), dt.UTC))
    return given or rfc3339(now or dt.datetime.now(dt.UTC))


def standard_labels(provenance: ImageProvenance, environ: Mapping[str, str],
                    user_labels: Sequence[str] = ()) -> list[str]:
    """KEY=VALUE for every OCI label with a value, leaving out the keys the user set in `user_labels`
    (KEY=VALUE items)."""
    given = {item.partition("=")[0].strip() for item in user_labels}
    values = {
        "source": provenance.source,
        "url": provenance.url,
        "revision": provenance.revision,
        "created": created_time(provenance.created, environ),
        "title": provenance.title,
        "version": provenance.version,
    }
    return [f"{PREFIX}{key}={value}" for key, value in values.items() if value and PREFIX + key not in given]
