"""Tags and OCI labels from the git ref when the workflow gives none: docker/metadata-action's defaults.

metadata-action with no `tags` input applies `type=schedule`, `type=ref,event=branch`, `type=ref,event=tag`,
`type=ref,event=pr` with `flavor: latest=auto`. We follow it, with two additions the product asks for and
metadata-action users commonly configure: a semver git tag gives `type=semver`'s {{version}}, {{major}}.{{minor}}
and {{major}} (a pre-release only {{version}}, as metadata-action does), and every build gets `type=sha`'s
`sha-<7 hex>`. `latest` goes with a git tag push (latest=auto), never with a pre-release.
The image name comes from the `images` input (metadata-action's), default `ghcr.io/OWNER/REPO` lower-cased.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import UsageError

from ..common import labels
from ..common.semver import parse_semver

_TAG_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_TAG = 128  # the distribution spec's limit for a tag


@dataclass(frozen=True)
class GitContext:
    """What GitHub tells a job about the commit it builds (the runner's GITHUB_* variables and event payload)."""

    ref: str = ""
    sha: str = ""
    event_name: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    repository: str = ""
    server_url: str = "https://github.com"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GitContext:
        event: Any = {}
        if path := environ.get("GITHUB_EVENT_PATH"):
            try:
                event = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                event = {}  # no payload (act without an event file): the ref alone decides
        return cls(ref=environ.get("GITHUB_REF", ""), sha=environ.get("GITHUB_SHA", ""),
                   event_name=environ.get("GITHUB_EVENT_NAME", ""), event=event if isinstance(event, dict) else {},
                   repository=environ.get("GITHUB_REPOSITORY", ""),
                   server_url=environ.get("GITHUB_SERVER_URL") or "https://github.com")


def sanitize_tag(text: str) -> str:
    """metadata-action's rule: runs of characters a tag cannot hold become `-`; a tag cannot start with `.`
    or `-`, and is at most 128 characters."""
    return _TAG_INVALID.sub("-", text).lstrip(".-")[:MAX_TAG]


def _pr_number(ctx: GitContext) -> str | None:
    if ctx.event_name in ("pull_request", "pull_request_target"):
        number = ctx.event.get("number") or (ctx.event.get("pull_request") or {}).get("number")
        if number:
            return str(number)
    if m := re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", ctx.ref):
        return m.group(1)
    return None


def derive_tag_names(ctx: GitContext) -> list[str]:
    """The tags (without the image name) for this ref, most specific first."""
    names: list[str] = []
    if (pr := _pr_number(ctx)) is not None:
        names.append(f"pr-{pr}")
    elif ctx.ref.startswith("refs/heads/"):
        names.append(sanitize_tag(ctx.ref.removeprefix("refs/heads/")))
    elif ctx.ref.startswith("refs/tags/"):
        tag = ctx.ref.removeprefix("refs/tags/")
        if semver := parse_semver(tag):
            names.append(sanitize_tag(semver.version + (f"+{semver.build}" if semver.build else "")))
            if not semver.prerelease:
                names += [*semver.release_tags(), "latest"]
        else:
            names += [sanitize_tag(tag), "latest"]
    if ctx.sha:
        names.append(f"sha-{ctx.sha[:7]}")
    return [n for n in dict.fromkeys(names) if n]


def default_images(ctx: GitContext) -> list[str]:
    if not ctx.repository:
        raise UsageError("no tags given and GITHUB_REPOSITORY is not set to name the image",
                         subject="input tags", hint="give tags, or images for the derived tags")
    return [f"ghcr.io/{ctx.repository}".lower()]


def derive_tags(images: list[str] | tuple[str, ...], ctx: GitContext) -> list[str]:
    """IMAGE:TAG for every image and every tag the ref gives (metadata-action's `tags` output)."""
    names = derive_tag_names(ctx)
    if not names:
        raise UsageError(f"cannot derive a tag from ref {ctx.ref!r} without a commit sha", subject="input tags",
                         hint="give tags explicitly")
    return [f"{image.lower()}:{name}" for image in (images or default_images(ctx)) for name in names]


def standard_labels(ctx: GitContext, user_labels: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """org.opencontainers.image.{source,revision,created} as KEY=VALUE, leaving out the keys the user set
    (integrations/common/labels.py: `created` is SOURCE_DATE_EPOCH's time when it is set)."""
    provenance = labels.ImageProvenance(source=f"{ctx.server_url}/{ctx.repository}" if ctx.repository else "",
                                        revision=ctx.sha)
    return labels.standard_labels(provenance, environ, user_labels)
