"""The job's report artifacts besides code quality (which `dockyard build --report gitlab=FILE` writes):
the dotenv report that hands the image to later jobs, and the annotations report that links to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dockyard import is_loopback_registry, replace_file
from dockyard.errors import OutputError

# GitLab's rules for artifacts:reports:dotenv: KEY=value lines, keys of letters, digits and '_', values without
# whitespace (no quoting is understood), and the whole file at most 5 KB.
DOTENV_LIMIT = 5 * 1024
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



def dotenv_text(values: dict[str, str], optional: dict[str, str] | None = None) -> str:
    """`values` must all fit; an `optional` entry is left out when it would take the file past GitLab's limit."""
    lines = []
    for key, value in values.items():
        lines.append(_dotenv_line(key, value))
    text = "".join(lines)
    if len(text.encode()) > DOTENV_LIMIT:
        raise OutputError(f"the dotenv report would be {len(text.encode())} bytes, over GitLab's {DOTENV_LIMIT}",
                          subject="dotenv report")
    for key, value in (optional or {}).items():
        line = _dotenv_line(key, value)
        if len((text + line).encode()) <= DOTENV_LIMIT:
            text += line
    return text


def _dotenv_line(key: str, value: str) -> str:
    if not _KEY.match(key) or any(c.isspace() for c in value):
        raise OutputError(f"cannot write {key}={value!r}: GitLab's dotenv allows no whitespace in a value",
                          subject="dotenv report")
    return f"{key}={value}\n"


def image_link(repository: str, digest: str, *, registry_image: str, project_url: str) -> str:
    """Where a person can look at the image: the project's container registry page for an image in it, else
    the registry's manifest URL."""
    if project_url and registry_image and (repository == registry_image or
                                           repository.startswith(registry_image + "/")):
        return f"{project_url}/container_registry"
    host, _, path = repository.partition("/")
    scheme = "http" if is_loopback_registry(host) else "https"  # as dockyard reaches it
    return f"{scheme}://{host}/v2/{path}/manifests/{digest}"


def annotations_report(repository: str, digest: str, tags: list[str], *, link: str) -> str:
    """artifacts:reports:annotations: external links shown on the job's page."""
    links = [{"external_link": {"label": f"image {repository}@{digest}", "url": link}}]
    links += [{"external_link": {"label": f"tag {tag}", "url": link}} for tag in tags]
    return json.dumps({"dockyard": links}, indent=2) + "\n"


def write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text.encode())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", subject=str(path)) from None
