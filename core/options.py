"""BuildOptions: the one structure every entry point (CLI, Python API, CI adapters) fills."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError


@dataclass(frozen=True)
class OutputSpec:
    """One `--output`: type=registry (push the tags), type=oci,dest=DIR, or type=docker,dest=FILE.tar."""

    type: str
    dest: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "OutputSpec":
        attrs: dict[str, str] = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            if not eq:
                # buildx accepts a bare path as shorthand for type=local; we only have files and dirs with a type.
                raise UsageError(f"invalid --output {text!r}: expected key=value pairs such as type=oci,dest=DIR")
            attrs[key.strip()] = value.strip()
        kind = attrs.pop("type", None)
        if kind == "image" and attrs.get("push", "false") == "true":
            kind = "registry"
        if kind not in ("registry", "oci", "docker"):
            raise UsageError(f"invalid --output {text!r}: type must be registry, oci or docker",
                             hint="e.g. --output type=oci,dest=out/ or --output type=docker,dest=image.tar")
        dest = attrs.pop("dest", None)
        if kind in ("oci", "docker") and not dest:
            raise UsageError(f"invalid --output {text!r}: type={kind} needs dest=PATH")
        return cls(kind, dest, tuple(sorted(attrs.items())))


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path | None = None  # default CONTEXT/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    platform: str = "linux/amd64"
    push: bool = False
    outputs: tuple[OutputSpec, ...] = ()
    digest_file: Path | None = None
    metadata_file: Path | None = None
    insecure_registries: tuple[str, ...] = ()
    compression: str = "gzip"
    compression_level: int | None = None
    # Scratch space for unpacked layers and step directories; removed after the build.
    work_dir: Path | None = None
    # Where pulled and built blobs are kept between builds.
    blob_dir: Path | None = None
    max_parallel_transfers: int = 4
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ), compare=False, repr=False)

    @property
    def dockerfile_path(self) -> Path:
        return self.dockerfile if self.dockerfile is not None else self.context / "Dockerfile"

    @property
    def wants_push(self) -> bool:
        return self.push or any(o.type == "registry" for o in self.outputs)


def parse_key_values(items: list[str] | tuple[str, ...], what: str,
                     environ: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """`K=V` pairs from the command line. With `environ`, a bare `K` takes its value from it (docker's
    --build-arg rule); a bare K absent from the environment is dropped, as docker does."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: expected KEY=VALUE")
        if not eq:
            if environ is None:
                raise UsageError(f"invalid {what} {item!r}: expected KEY=VALUE")
            if key not in environ:
                continue
            value = environ[key]
        pairs.append((key, value))
    return tuple(pairs)


def default_cache_root(environ: dict[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or "/root", ".cache")
    return Path(base) / "dockyard"
