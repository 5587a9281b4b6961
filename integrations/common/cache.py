"""The registry cache an adapter reads and writes when its user asks for "the cache" without naming one.

`IMAGE:buildcache`: the tag BuildKit's documentation (and dockyard's README) uses for a registry cache. A tag
of the image's own repository needs no second repository, which some registries (Docker Hub, ECR) make people
create, and whatever can push the image can push its cache."""

from __future__ import annotations

from .platforms import platform_slug

CACHE_TAG = "buildcache"


def default_cache_reference(image: str, platform: str = "") -> str:
    """The cache of `image`, a repository without tag or digest; with `platform`, the cache of that platform's
    build (`buildcache-linux-arm64`): the runners of a distributed build run at the same time, and a cache
    manifest of their own keeps each from overwriting the others'."""
    return f"{image}:{CACHE_TAG}" + (f"-{platform_slug(platform)}" if platform else "")


def cache_from(reference: str) -> str:
    """The `--cache-from` value that reads the registry cache at `reference`."""
    return f"type=registry,ref={reference}"


def local_cache_from(directory: str) -> str:
    """The `--cache-from` value that reads the local cache in `directory` (an OCI layout a CI cache keeps)."""
    return f"type=local,src={directory}"


def local_cache_to(directory: str) -> str:
    """The `--cache-to` value that writes every stage's steps (mode=max) to the local cache in `directory`."""
    return f"type=local,dest={directory},mode=max"


def cache_to(reference: str) -> str:
    """The `--cache-to` value that writes every stage's steps (mode=max) to the registry cache at `reference`."""
    return f"type=registry,ref={reference},mode=max"
