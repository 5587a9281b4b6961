"""Named build contexts (`--build-context NAME=VALUE`, as `docker buildx build` has them): what each name
points at, and which names in a Dockerfile they answer to.

A value is a directory (relative to the working directory), `docker-image://REF` (an image in a registry, by
tag or digest), `oci-layout://PATH[:TAG|@DIGEST]` (an image in an OCI layout on disk), a git URL (BuildKit's
git context syntax: `https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://`, `ssh://`), or another
http(s) URL (a single file named `context`, as BuildKit fetches it).

Names are compared as BuildKit compares them (dockerui NamedContext): both the name given and the name a
Dockerfile uses are read as image references and written in their short form without `:latest`, so
`FROM docker.io/library/alpine:latest` answers to `--build-context alpine=...`. `scratch` and `context` are
never looked up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ContextError, DockerfileError, UsageError

LOCAL = "local"
DOCKER_IMAGE = "docker-image"
OCI_LAYOUT = "oci-layout"
GIT = "git"
URL = "url"
# Kinds whose content is a directory tree (no image config): in FROM, a scratch-like image of that tree.
DIRECTORY_KINDS = frozenset({LOCAL, GIT, URL})
RESERVED_NAMES = frozenset({"scratch", "context"})

_FORMS = ("a directory, docker-image://REF, oci-layout://PATH[:TAG|@DIGEST], a git URL "
          "(https://host/repo.git#ref:subdir or git@host:repo.git) or an http(s) URL")


@dataclass(frozen=True)
class NamedContext:
    """One `--build-context`: its name (normalized), its kind and what it points at."""

    name: str
    kind: str
    value: str  # local: absolute directory; docker-image: the reference; oci-layout: the layout directory;
    #             git and url: the URL
    tag: str | None = None  # oci-layout: the ref name to pick (default latest)
    digest: str | None = None  # oci-layout: the manifest to pick

    @property
    def is_directory(self) -> bool:
        return self.kind in DIRECTORY_KINDS

    def describe(self) -> str:
        """How messages name the context, e.g. `--build-context base=docker-image://alpine:3.20`."""
        shown = {LOCAL: self.value, DOCKER_IMAGE: f"docker-image://{self.value}", GIT: self.value, URL: self.value,
                 OCI_LAYOUT: f"oci-layout://{self.value}" + (f"@{self.digest}" if self.digest else
                                                            f":{self.tag}" if self.tag else "")}[self.kind]
        return f"--build-context {self.name}={shown}"


def normalized_name(text: str) -> str | None:
    """The name BuildKit files a context under and looks a Dockerfile name up by: the image reference's
    short form without `:latest`. None when `text` is no valid reference (it then matches nothing)."""
    from .image.reference import DOCKER_HUB, parse_reference

    try:
        ref = parse_reference(text)
    except UsageError:
        return None
    name = ref.repository
    if ref.registry != DOCKER_HUB:
        name = f"{ref.registry}/{name}"
    elif name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/"):]
    if ref.tag and not (ref.tag == "latest" and not ref.digest):  # `:latest` alone is trimmed, as BuildKit does
        name += f":{ref.tag}"
    if ref.digest:
        name += f"@{ref.digest}"
    return name


def parse_build_context(text: str, cwd: Path | None = None) -> NamedContext:
    """One `--build-context NAME=VALUE`. A directory must exist; remote sources are checked when read."""
    name, value = split_build_context(text)
    return NamedContext(name, *_source(name, value, text, cwd or Path.cwd()))


def split_build_context(text: str) -> tuple[str, str]:
    """The normalized name and the value of `NAME=VALUE`, the value unchecked (what `dockyard lint` needs)."""
    name_text, eq, value = text.partition("=")
    name_text, value = name_text.strip(), value.strip()
    if not eq or not name_text or not value:
        raise UsageError(f"invalid --build-context {text!r}: expected NAME=VALUE",
                         hint=f"e.g. --build-context base=docker-image://alpine:3.20; VALUE is {_FORMS}")
    if name_text.lower() in RESERVED_NAMES:
        raise UsageError(f"invalid --build-context {text!r}: {name_text!r} cannot be replaced (BuildKit never "
                         "looks it up as a named context)", hint="give the context another name")
    name = normalized_name(name_text)
    if name is None:
        raise UsageError(f"invalid --build-context {text!r}: the name {name_text!r} is not a valid image or stage "
                         "name", hint="names are lower-case letters, digits and separators (. _ - /), "
                                      "optionally with a :tag")
    return name, value


def _source(name: str, value: str, text: str, cwd: Path) -> tuple[Any, ...]:
    # fetch's imports are paid for by builds with a named context only.
    from .fetch import is_url, parse_git_url

    if value.startswith("docker-image://"):
        return DOCKER_IMAGE, _image_reference(value[len("docker-image://"):], text)
    if value.startswith("oci-layout://"):
        return (OCI_LAYOUT, *_oci_layout(name, value[len("oci-layout://"):], text, cwd))
    try:
        git = parse_git_url(value)
    except DockerfileError as exc:
        raise UsageError(f"invalid --build-context {text!r}: {exc.message}", hint=exc.hint) from None
    if git is not None:
        return GIT, value
    if is_url(value):
        return URL, value
    if "://" in value or value.startswith(("target:", "input:")):
        kind = value.split("://", 1)[0] if "://" in value else value.split(":", 1)[0]
        raise UsageError(f"invalid --build-context {text!r}: dockyard does not know the source kind {kind!r}",
                         hint=f"VALUE is {_FORMS}")
    directory = (cwd / value).resolve() if not os.path.isabs(value) else Path(value)
    if not directory.exists():
        raise ContextError(f"--build-context {name}: the directory {value} does not exist",
                           hint="a local context is a directory, relative to the current directory; for an image "
                                "write docker-image://REF")
    if not directory.is_dir():
        raise ContextError(f"--build-context {name}: {value} is not a directory",
                           hint="a local context is a directory; for an OCI layout write oci-layout://PATH")
    return LOCAL, str(directory)


def _image_reference(ref: str, text: str) -> str:
    from .image.reference import parse_reference

    if ref == "scratch":
        return ref
    try:
        parse_reference(ref)
    except UsageError as exc:
        raise UsageError(f"invalid --build-context {text!r}: {exc.message}",
                         hint="e.g. docker-image://alpine:3.20 or docker-image://alpine@sha256:...") from None
    return ref


def _oci_layout(name: str, spec: str, text: str, cwd: Path) -> tuple[str, str | None, str | None]:
    """PATH[:TAG|@DIGEST] as buildx reads it (a tag or digest after the last path component)."""
    path, tag, digest = spec, None, None
    head, slash, last = spec.rpartition("/")
    if "@" in last:
        last, _, digest = last.partition("@")
    elif ":" in last:
        last, _, tag = last.partition(":")
    path = head + slash + last
    if not path or (digest is not None and not digest) or (tag is not None and not tag):
        raise UsageError(f"invalid --build-context {text!r}: expected oci-layout://PATH[:TAG|@DIGEST]")
    if digest is not None and not digest.startswith("sha256:"):
        raise UsageError(f"invalid --build-context {text!r}: the digest must be sha256:<64 hex digits>")
    directory = (cwd / path).resolve() if not os.path.isabs(path) else Path(path)
    if not directory.is_dir():
        raise ContextError(f"--build-context {name}: the OCI layout {path} is not a directory",
                           hint="oci-layout://PATH names a directory with index.json and blobs/, as written by "
                                "--output type=oci,dest=PATH or skopeo copy ... oci:PATH")
    return str(directory), tag, digest


class NamedContexts:
    """A build's named contexts, looked up by the names a Dockerfile uses (FROM, COPY --from, RUN --mount
    from=). A later `--build-context` of the same name replaces an earlier one, as buildx's map does."""

    def __init__(self, contexts: tuple[NamedContext, ...] | list[NamedContext] = ()):
        self._by_name = {c.name: c for c in contexts}

    def __bool__(self) -> bool:
        return bool(self._by_name)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def lookup(self, name: str) -> NamedContext | None:
        if not self._by_name or name.lower() in RESERVED_NAMES:
            return None
        normalized = normalized_name(name)
        return self._by_name.get(normalized) if normalized is not None else None
