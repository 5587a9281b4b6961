"""Where a built image goes: finalized (media types, labels, annotations, creation time), pushed, written as an
OCI layout or a docker tarball, its build cache exported (--cache-to), and the result files written."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, TYPE_CHECKING

from .cache.store import StepEntry
from .errors import AuthenticationError, DockyardError, OutputError, RegistryError
from .events import Events
from .stage.history import created_time
from .files import replace_file
from .image.blobs import BlobStore
from .image.model import DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, Image, Layer
from .image.reference import Reference, parse_reference
from .options import BuildOptions
from .plan import BuildPlan
from .result import BuildResult

if TYPE_CHECKING:  # imported where used: a build without them does not pay for their import
    from .cache.remote import RemoteCache
    from .image.index import ImageIndex
    from .registry.client import RegistryClient

# Docker's layer media types become their OCI twins when written into an OCI manifest (same bytes).
_TO_OCI_LAYER = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}


def finalize(image: Image, options: BuildOptions) -> Image:
    """The image as it is written: OCI media types, build labels, a creation time (SOURCE_DATE_EPOCH's)."""
    labels = dict(image.container_config.get("Labels") or {})
    labels.update(dict(options.labels))
    if labels:
        image = image.with_config(Labels=labels)
    layers = tuple(Layer(Descriptor(_TO_OCI_LAYER.get(layer.media_type, layer.media_type), layer.digest, layer.size),
                         layer.diff_id) for layer in image.layers)
    # The user's annotations join the base image's (org.opencontainers.image.base.*) and win on the same key.
    annotations = dict(image.annotations) | dict(options.annotations)
    return replace(image, layers=layers, manifest_media_type=OCI_MANIFEST,
                   annotations=tuple(sorted(annotations.items()))).with_meta(
                       created=created_time(options.source_date_epoch))


def target_chain(plan: BuildPlan) -> set[int]:
    """The indexes of the target stage and the stages it is built on (FROM another stage): every layer they make
    is in the final image."""
    chain = set()
    index: int | None = plan.target_index
    by_index = {p.stage.index: p for p in plan.stages}
    while index is not None:
        chain.add(index)
        index = by_index[index].base_stage
    return chain


class CachedLayers:
    """The layers registry cache hits (--cache-from) stand for: not in the blob store until something needs
    their bytes. `remote` is the build's imported caches, once they are read (None: no cache hit comes from a
    registry)."""

    def __init__(self, client: Callable[[], RegistryClient], store: BlobStore):
        self._client = client
        self._store = store
        self.remote: RemoteCache | None = None

    def fetch(self, layers: list[Layer], mount_to: str | None = None) -> None:
        """Make each layer that came from a registry cache available: tell the client where it is when it can
        be mounted into registry `mount_to`, else download it into the store."""
        if self.remote is None:
            return
        for layer in layers:
            source = self.remote.source_of(layer.digest)
            if source is None or self._store.has(layer.digest):
                continue
            if source.registry == mount_to:
                self._client().remember_source(source, layer.digest)
            else:
                self._client().fetch_blob(source, layer.digest, self._store, size=layer.size)


class Written(NamedTuple):
    """What `OutputWriter.write` wrote: the digest (the index's for an index, else the manifest's), the refs
    pushed to, and the image index when there is one."""

    digest: str
    pushed: list[str]
    index: ImageIndex | None


class OutputWriter:
    """Writes a build's finished image where the options say, then its cache exports and result files."""

    def __init__(self, options: BuildOptions, events: Events, *, client: Callable[[], RegistryClient],
                 store: BlobStore, cached_layers: CachedLayers):
        self.options = options
        self.events = events
        self._client = client
        self._store = store
        self._cached_layers = cached_layers

    def write(self, images: Sequence[Image], tags: tuple[str, ...], uploaded: frozenset[str]) -> Written:
        """Pushes (the layers in `uploaded` are already there) and writes the --output's; returns the refs
        pushed to."""
        pushed: list[str] = []
        opts = self.options
        # Until the image index is written: one platform's image, or several with nothing to write.
        if len(images) > 1 and (opts.wants_push or opts.outputs):
            raise OutputError("writing the image index of several platforms is not supported yet",
                              hint="build one --platform at a time")
        image = images[0]
        refs = [parse_reference(t) for t in tags]
        # Layers of registry cache hits: mounted into the pushed repositories when they are all on the cache's
        # registry and nothing else is written, else downloaded now.
        registries = {r.registry for r in refs}
        mount_to = registries.pop() if opts.wants_push and not opts.outputs and len(registries) == 1 else None
        self._cached_layers.fetch(list(image.layers), mount_to)
        if opts.wants_push:
            from .registry.push import push_image

            push_image(self._client(), image, self._store, refs, uploaded)
            pushed = [str(r) for r in refs]
        for output in opts.outputs:
            if output.type not in ("oci", "docker"):
                continue  # type=registry: the push above
            assert output.dest is not None, "OutputSpec.parse gives type=oci and type=docker a dest"
            if output.type == "oci":
                from .image.layout import write_oci_layout

                names = [r.tag or "latest" for r in refs] or ["latest"]
                write_oci_layout(image, self._store, Path(output.dest), names)
            else:
                from .image.archive import write_docker_archive

                write_docker_archive(image, self._store, Path(output.dest), [repo_tag(r) for r in refs])
        if not opts.wants_push and not opts.outputs:
            self.events.warning("no output requested: the image was built but is only kept in dockyard's blob "
                                "store; use --push or --output type=oci,dest=DIR")
        return Written(image.digest, pushed, None)

    def export_caches(self, plan: BuildPlan, entries: list[tuple[int, StepEntry]], pushed: list[str]) -> None:
        """--cache-to: the steps of the final image (mode=min) or of every stage (max) to each cache ref. A
        failure is an error (a warning with ignore-error=true) that says the image itself was written."""
        if not self.options.cache_to:
            return
        from .cache.remote import export_cache

        final_stages = target_chain(plan)
        for spec in self.options.cache_to:
            ref = parse_reference(spec.ref)
            chosen = {e.key: e for stage, e in entries if spec.mode == "max" or stage in final_stages}
            try:
                self._cached_layers.fetch([e.layer for e in chosen.values() if e.layer], ref.registry)
                digest = export_cache(self._client(), self._store, ref, list(chosen.values()))
            except DockyardError as exc:
                done = f"the image was pushed to {', '.join(pushed)}" if pushed else "the image was built"
                text = f"cannot export the build cache to {ref} ({done}; only the cache export failed): {exc.message}"
                if spec.ignore_error:
                    self.events.warning(text)
                    continue
                error = AuthenticationError if isinstance(exc, AuthenticationError) else RegistryError
                raise error(text, hint=exc.hint, subject=str(ref)) from None
            self.events.info(f"exported {len(chosen)} cached steps to {ref} ({digest})")

    def write_result_files(self, result: BuildResult) -> None:
        """--digest-file and --metadata-file, each replaced whole (a reader never sees half a file)."""
        files: tuple[tuple[str | Path | None, str], ...] = (
            (self.options.digest_file, result.digest),
            (self.options.metadata_file, json.dumps(result.metadata(), indent=2)))
        for path, text in files:
            if path is None:
                continue
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                replace_file(Path(path), (text + ("\n" if not text.endswith("\n") else "")).encode())
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror}", subject=str(path)) from None




def repo_tag(ref: Reference) -> str:
    """How a docker tarball's manifest names a tag: docker.io's names short, as `docker load` shows them."""
    name = ref.name[len("docker.io/"):] if ref.registry == "docker.io" else ref.name
    if name.startswith("library/") and ref.registry == "docker.io":
        name = name[len("library/"):]
    return f"{name}:{ref.tag or 'latest'}"
