"""Tags and OCI labels from GitLab's predefined variables, when the pipeline gives no tags.

The defaults GitLab users know from Auto DevOps and the kaniko examples in GitLab's docs: the ref slug
(CI_COMMIT_REF_SLUG, already a valid tag: lower-case, 63 characters at most) and the short sha on every
pipeline, `latest` on the default branch; a tag pipeline whose CI_COMMIT_TAG is a semantic version gets
`1.2.3`, `1.2` and `1` instead of the slug (a pre-release only its full version).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.errors import UsageError

from ..common import labels
from ..common.semver import parse_semver

# The distribution spec's tag grammar.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Pipeline:
    """What GitLab tells a job about the commit it builds."""

    ref_slug: str = ""
    short_sha: str = ""
    sha: str = ""
    branch: str = ""
    tag: str = ""
    default_branch: str = ""
    project_url: str = ""
    project_name: str = ""
    created_at: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Pipeline:
        return cls(ref_slug=environ.get("CI_COMMIT_REF_SLUG", ""), short_sha=environ.get("CI_COMMIT_SHORT_SHA", ""),
                   sha=environ.get("CI_COMMIT_SHA", ""), branch=environ.get("CI_COMMIT_BRANCH", ""),
                   tag=environ.get("CI_COMMIT_TAG", ""), default_branch=environ.get("CI_DEFAULT_BRANCH", ""),
                   project_url=environ.get("CI_PROJECT_URL", ""), project_name=environ.get("CI_PROJECT_NAME", ""),
                   created_at=environ.get("CI_PIPELINE_CREATED_AT", ""))


def default_tag_names(pipeline: Pipeline) -> list[str]:
    names: list[str] = []
    semver = parse_semver(pipeline.tag) if pipeline.tag else None
    if semver:
        names += [semver.version, *semver.release_tags()]
    elif pipeline.ref_slug:
        names.append(pipeline.ref_slug)
    if pipeline.short_sha:
        names.append(pipeline.short_sha)
    if pipeline.branch and pipeline.branch == pipeline.default_branch:
        names.append("latest")
    return list(dict.fromkeys(names))


def image_references(image: str, given: tuple[str, ...], pipeline: Pipeline) -> list[str]:
    """IMAGE:TAG for each tag: the `tags` input's items (a tag name, or a whole reference when it holds a `/`),
    else the defaults above."""
    names = list(given) or default_tag_names(pipeline)
    if not names:
        raise UsageError("no tags given, and CI_COMMIT_REF_SLUG and CI_COMMIT_SHORT_SHA are not set to derive them",
                         subject="input tags", hint="give tags: [TAG, ...]")
    references = []
    for name in names:
        if "/" in name:
            references.append(name)
        elif _TAG.match(name):
            references.append(f"{image}:{name}")
        else:
            raise UsageError(f"{name!r} is not a valid tag", subject="input tags",
                             hint="a tag is letters, digits, '_', '.' and '-' (128 at most, not starting with "
                                  "'.' or '-'), or a whole reference REGISTRY/PATH:TAG")
    return list(dict.fromkeys(references))


def standard_labels(pipeline: Pipeline, environ: Mapping[str, str]) -> list[str]:
    """org.opencontainers.image.* as KEY=VALUE (integrations/common/labels.py). `created` is the pipeline's
    creation time, so every job of one pipeline labels its images alike; SOURCE_DATE_EPOCH wins when set."""
    return labels.standard_labels(labels.ImageProvenance(
        source=pipeline.project_url, url=pipeline.project_url, revision=pipeline.sha, title=pipeline.project_name,
        version=pipeline.tag, created=pipeline.created_at), environ)
