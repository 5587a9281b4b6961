"""Where to pull an image from: mirrors and registry maps, before (or instead of) the registry it names.

* `--registry-mirror HOST[/PATH]` (docker's registry-mirrors, kaniko's flag): pull-through caches for Docker
  Hub, tried in the order given.
* `--registry-map FROM=TO[;TO...]` (kaniko's syntax): the same for any registry FROM. A PATH in TO is put in
  front of the repository (`docker.io=mirror.example.com/hub` serves docker.io/library/busybox as
  mirror.example.com/hub/library/busybox), as kaniko does for namespaced mirrors.
* The registry the image names is tried last, unless `--skip-default-registry-fallback`.

Only pulls are routed: pushes always go where the tag says. The pulled image keeps the name the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from ..image.reference import DOCKER_HUB, Reference, parse_reference

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_HUB_NAMES = {DOCKER_HUB, "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class Mirror:
    """A registry to pull from instead of another (a mirror, a --registry-map target), with an optional path prefix."""

    registry: str  # host[:port]
    prefix: str = ""  # a path put before the repository, without slashes around it

    @classmethod
    def parse(cls, text: str, what: str) -> Mirror:
        """`HOST[:PORT][/PATH]`; an `https://` in front is accepted, as docker's daemon.json writes mirrors."""
        bare = _SCHEME_RE.sub("", text.strip()).strip("/")
        registry, _, prefix = bare.partition("/")
        if not registry:
            raise UsageError(f"invalid {what} {text!r}: expected a registry host, e.g. mirror.example.com")
        try:  # the same rules as an image name, so a bad host or path is caught now rather than on the wire
            parse_reference(f"{registry.lower()}/{prefix + '/' if prefix else ''}probe")
        except UsageError:
            raise UsageError(f"invalid {what} {text!r}: not a registry host with an optional path",
                             hint="e.g. mirror.example.com:5000 or mirror.example.com/dockerhub") from None
        return cls(registry.lower(), prefix)

    def route(self, ref: Reference) -> Reference:
        repository = f"{self.prefix}/{ref.repository}" if self.prefix else ref.repository
        return Reference(self.registry, repository, ref.tag, ref.digest)


def _normalize_registry(name: str) -> str:
    name = _SCHEME_RE.sub("", name.strip()).strip("/").lower()
    return DOCKER_HUB if name in _HUB_NAMES else name


@dataclass(frozen=True)
class Routes:
    """Where pulls go: each registry's mirrors in order, and whether the registry itself is tried after them."""

    # (registry, its mirrors in order); docker.io's entry holds --registry-mirror's hosts.
    mirrors: tuple[tuple[str, tuple[Mirror, ...]], ...] = ()
    fallback: bool = True  # try the image's own registry after its mirrors

    @classmethod
    def parse(cls, registry_mirrors: tuple[str, ...] | list[str] = (),
              registry_maps: tuple[str, ...] | list[str] = (), *, fallback: bool = True) -> Routes:
        table: dict[str, list[Mirror]] = {}
        for text in registry_maps:
            if not text.strip():
                continue  # kaniko ignores an empty map, so `--registry-map=$UNSET_VARIABLE` is harmless
            source, eq, targets = text.partition("=")
            if not eq or not source.strip() or not targets.strip():
                raise UsageError(f"invalid --registry-map {text!r}: expected FROM=TO[;TO...]",
                                 hint="e.g. --registry-map docker.io=mirror.example.com;mirror2.example.com")
            entries = table.setdefault(_normalize_registry(source), [])
            entries += [Mirror.parse(t, "--registry-map") for t in targets.split(";") if t.strip()]
        hub = table.setdefault(DOCKER_HUB, [])
        hub += [Mirror.parse(m, "--registry-mirror") for m in registry_mirrors if m.strip()]
        return cls(tuple((registry, tuple(found)) for registry, found in table.items() if found), fallback)

    def pull_candidates(self, ref: Reference) -> list[Reference]:
        """Where to try pulling `ref`, in order: its mirrors, then (unless told not to) its own registry."""
        mirrors = dict(self.mirrors).get(ref.registry, ())
        candidates: list[Reference] = []
        for mirror in mirrors:
            routed = mirror.route(ref)
            if routed not in candidates:
                candidates.append(routed)
        if self.fallback or not candidates:
            if ref in candidates:
                candidates.remove(ref)  # a map onto itself: try it once, last
            candidates.append(ref)
        return candidates
