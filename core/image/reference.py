"""Image references (`[registry/]repo[:tag][@digest]`) with docker's defaults (docker.io/library, :latest)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

DOCKER_HUB = "docker.io"
# Docker Hub is addressed as registry-1.docker.io on the wire; users write docker.io or index.docker.io.
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_REPO_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")


@dataclass(frozen=True)
class Reference:
    """An image reference, `registry/repository[:tag][@digest]`, normalized with docker's defaults."""

    registry: str  # host[:port], normalized (docker.io for Docker Hub)
    repository: str  # path, e.g. library/busybox
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host the Distribution API is served on."""
        return "registry-1.docker.io" if self.registry == DOCKER_HUB else self.registry

    @property
    def identifier(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_reference(text: str) -> Reference:
    """Parse like docker: `busybox` → docker.io/library/busybox:latest."""
    original = text
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise UsageError(f"invalid image reference {original!r}: it must not be empty or contain spaces")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"invalid image reference {original!r}: bad digest {digest!r}")
    tag = None
    # A tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG_RE.match(tag):
            raise UsageError(f"invalid image reference {original!r}: bad tag {tag!r}")
    parts = text.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
    else:
        registry, path = DOCKER_HUB, parts
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library"] + path
    for component in path:
        if not _REPO_COMPONENT_RE.match(component):
            raise UsageError(
                f"invalid image reference {original!r}: repository names are lower-case letters, digits and "
                "separators (. _ -)")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, "/".join(path), tag, digest)


def is_loopback_registry(registry: str) -> bool:
    """Docker allows plain HTTP to localhost and 127.0.0.0/8 without --insecure-registry."""
    host = registry
    if host.startswith("["):
        host = host[1:host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in ("localhost", "::1") or host.startswith("127.")
