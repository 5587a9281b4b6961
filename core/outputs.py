"""Where a build's images go: finalized (media types, labels, annotations, creation time), pushed, written as
an OCI layout or a docker tarball, their build cache exported (--cache-to), and the result files written.

One image is written as its manifest. Several (one per platform), or one with index annotations, are written
as an image index listing them: an OCI image index, or a Docker manifest list with oci-mediatypes=false."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .cache.store import StepEntry
from .errors import AuthenticationError, DockyardError, OutputError, RegistryError, UsageError
from .events import Events
from .stage.history import created_time
from .files import replace_file
from .image.blobs import BlobStore, DigestMismatch
from .image.index import ImageIndex, image_descriptor, platform_json
from .image.model import (DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_LAYER,
                          OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST, Descriptor, Image, Layer, Platform)
from .image.reference import Reference, parse_reference
from .options import Annotation, BuildOptions, OutputSpec, annotation_specs
from .plan import BuildPlan
from .result import BuildResult

if TYPE_CHECKING:  # imported where used: a build without them does not pay for their import
    from .attest.compose import PlatformAttestations
    from .cache.remote import BlobSource as CacheBlobSource
    from .cache.remote import RemoteCache
    from .registry.client import RegistryClient

# Docker's layer media types become their OCI twins when written into an OCI manifest (same bytes), and back
# when Docker media types are asked for (oci-mediatypes=false).
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
_TO_OCI_LAYER = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}
_TO_DOCKER_LAYER = {OCI_LAYER_GZIP: DOCKER_LAYER_GZIP, OCI_LAYER: DOCKER_LAYER}
# The annotation levels an image index carries (an index is made for them even for one platform).
INDEX_LEVELS = ("index", "index-descriptor")


@dataclass(frozen=True)
class Written:
    """What OutputWriter.write wrote: the digest of the image index (when one was written) or of the image
    manifest, the references pushed to, the index, and the images as written (in their media types). (A
    dataclass, not a NamedTuple: a tuple's `index` method would shadow the field.)"""

    digest: str
    pushed: list[str]
    index: ImageIndex | None
    images: tuple[Image, ...] = ()
    # --sign: each signature stored, in the metadata file's form (signing/sign.py's Signature.to_json)
    signatures: tuple[dict[str, str], ...] = ()
    attestations: tuple[PlatformAttestations, ...] = ()


@dataclass(frozen=True)
class ImageSet:
    """The images one output writes, in the media types it asks for, and their index when there is one."""

    images: tuple[Image, ...]
    index: ImageIndex | None
    # The attestation manifests the index lists after the images (none: the output holds no attestations).
    attestations: tuple[PlatformAttestations, ...] = ()

    @property
    def digest(self) -> str:
        return self.index.digest if self.index is not None else self.images[0].digest

    @property
    def manifests(self) -> tuple[Image, ...]:
        """Every manifest the index lists: the images, then the attestation manifests."""
        return self.images + tuple(a.image for a in self.attestations)


def platform_annotations(options: BuildOptions, platform: Platform, level: str) -> dict[str, str]:
    """The --annotation's of `level` (`manifest`, `manifest-descriptor`) for `platform`'s image: those for
    every platform, then those qualified with this one (which win)."""
    chosen = [a for a in annotation_specs(options.annotations) if a.level == level]
    found = {a.key: a.value for a in chosen if a.platform is None}
    found.update({a.key: a.value for a in chosen if a.platform is not None and _matches(a, platform)})
    return found


def _matches(annotation: Annotation, platform: Platform) -> bool:
    assert annotation.platform is not None
    return Platform.parse(annotation.platform).matches(dict(platform_json(platform)))


def level_annotations(options: BuildOptions, level: str) -> dict[str, str]:
    """The --annotation's of an index level (`index`, `index-descriptor`)."""
    return {a.key: a.value for a in annotation_specs(options.annotations) if a.level == level}


def needs_index(options: BuildOptions, image_count: int) -> bool:
    """Several images are written as an index; so is one when an annotation is for the index (buildx makes
    a single-platform push an index too, for its attestations, and puts index annotations there)."""
    return image_count > 1 or any(a.level in INDEX_LEVELS for a in annotation_specs(options.annotations))


def check_outputs(options: BuildOptions, platforms: Sequence[str | Platform] = ("linux/amd64",)) -> None:
    """Refuses, before any build work, outputs that cannot hold what the build makes for `platforms`: a
    docker tarball of several platforms (or with index annotations), annotations in Docker media types,
    pushes that disagree, a push with nowhere to go. Raises UsageError."""
    names = [str(p) for p in platforms]
    index = needs_index(options, len(names))
    annotations = annotation_specs(options.annotations)
    for output in options.outputs:
        if output.type == "docker" and index:
            if len(names) > 1:
                raise UsageError(f"--output type=docker writes a `docker load` tarball, which holds the image of one "
                                 f"platform; this build makes {len(names)} ({', '.join(names)})",
                                 hint="write them all with --output type=oci,dest=DIR or --push; or build the "
                                      "tarball for one platform: --platform linux/amd64 --output type=docker,...")
            raise UsageError("--output type=docker writes no image index, so index annotations have nowhere to go "
                             "(buildx refuses them for its docker exporter too)",
                             hint="write the annotation as manifest:KEY=VALUE, or use --push / --output "
                                  "type=oci,dest=DIR")
    docker_types = [o for o in _media_type_outputs(options) if not o.oci_media_types]
    if docker_types:
        refused = [a for a in annotations if a.level != "index-descriptor"]
        if refused:
            kind = "manifest list" if index else "manifest"
            a = refused[0]
            raise UsageError(f"--annotation {a.level}:{a.key}: a Docker {kind} (oci-mediatypes=false) cannot carry "
                             "annotations: Docker's image formats have no place for them",
                             hint="drop oci-mediatypes=false (OCI media types are the default), or the annotation")
        if options.compression == "zstd":
            raise UsageError("--compression zstd needs OCI media types: Docker's image format has no zstd layers "
                             "(oci-mediatypes=false was asked for)",
                             hint="use --compression gzip, or drop oci-mediatypes=false")
    registries = [o for o in options.outputs if o.type == "registry"]
    for key in ("oci_media_types", "push_by_digest"):
        if len({getattr(o, key) for o in registries}) > 1:
            raise UsageError(f"the type=registry outputs disagree on {key.replace('_', '-')}: one push is made, "
                             "to every name, in one form", hint="give the attribute the same value in each")
    if options.signing is not None and not options.wants_push:
        raise UsageError("--sign signs the image in the registry it is pushed to, and this build pushes nothing",
                         hint="add --push (or --output type=registry), or drop --sign")
    if options.wants_push and not options.push_targets:
        raise UsageError("--push needs at least one --tag naming where to push",
                         hint="e.g. -t registry.example.com/team/app:1.0, or "
                              "--output type=registry,name=registry.example.com/team/app")


def _media_type_outputs(options: BuildOptions) -> list[OutputSpec]:
    """The outputs that write manifests (a bare --push is a registry output with default attributes)."""
    outputs = list(options.outputs)
    if options.push and not any(o.type == "registry" for o in outputs):
        outputs.append(OutputSpec("registry"))
    return outputs


def docker_media_types(image: Image) -> Image:
    """The image as a Docker v2 schema 2 manifest: Docker's manifest, config and layer media types, and no
    annotations (Docker's format has none; the caller refuses the user's first)."""
    layers = []
    for layer in image.layers:
        if layer.media_type == OCI_LAYER_ZSTD:
            raise UsageError("a zstd layer cannot be written with Docker media types (oci-mediatypes=false)",
                             hint="use --compression gzip, or drop oci-mediatypes=false")
        media = _TO_DOCKER_LAYER.get(layer.media_type, layer.media_type)
        layers.append(Layer(Descriptor(media, layer.digest, layer.size), layer.diff_id))
    return replace(image, layers=tuple(layers), manifest_media_type=DOCKER_MANIFEST, annotations=())


def finalize(image: Image, options: BuildOptions) -> Image:
    """The image as it is written: OCI media types, build labels, manifest annotations, a creation time
    (SOURCE_DATE_EPOCH's)."""
    labels = dict(image.container_config.get("Labels") or {})
    labels.update(dict(options.labels))
    if labels:
        image = image.with_config(Labels=labels)
    layers = tuple(Layer(Descriptor(_TO_OCI_LAYER.get(layer.media_type, layer.media_type), layer.digest, layer.size),
                         layer.diff_id) for layer in image.layers)
    # The user's annotations join the base image's (org.opencontainers.image.base.*) and win on the same key.
    annotations = dict(image.annotations) | platform_annotations(options, image.platform, "manifest")
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
    """The layers that stay in a registry until something needs their bytes: those registry cache hits
    (--cache-from) stand for, and the layers of base images (pulled without them: `add_source`). `remote` is the
    build's imported caches, once they are read (None: no cache hit comes from a registry).

    Thread-safe: a layer fetched ahead (`prefetch`, while the layers below it unpack) is waited for, never
    downloaded twice."""

    def __init__(self, client: Callable[[], RegistryClient], store: BlobStore):
        self._client = client
        self._store = store
        self.remote: RemoteCache | None = None
        # Base layer blob digest -> the repositories to download it from, in order: the one that served the
        # image's manifest (a mirror, or the image's own), then those left of the pull's fallbacks.
        self._sources: dict[str, tuple[Reference, ...]] = {}
        self._lock = threading.Lock()
        self._downloads: dict[str, Future[None]] = {}  # digest -> its download, started or done
        self._pool: ThreadPoolExecutor | None = None

    def add_source(self, repos: Sequence[Reference], layers: Sequence[Layer]) -> None:
        """`layers` (of an image pulled without them) are in the repositories `repos`, tried in order."""
        sources = tuple(Reference(repo.registry, repo.repository) for repo in repos)
        with self._lock:
            for layer in layers:
                self._sources.setdefault(layer.digest, sources)

    def _sources_of(self, digest: str) -> tuple[Reference | CacheBlobSource, ...]:
        sources: tuple[Reference | CacheBlobSource, ...] | None = self._sources.get(digest)
        if sources is None and self.remote is not None:
            source = self.remote.source_of(digest)
            sources = (source,) if source is not None else None
        return sources or ()

    def fetch(self, layers: Sequence[Layer], mount_to: str | None = None) -> None:
        """Make each layer that is still in a registry available: tell the client where it is when it can be
        mounted into registry `mount_to`, else download it into the store (several at once)."""
        waiting = []
        for layer in layers:
            sources = self._sources_of(layer.digest)
            if not sources or self._store.has(layer.digest):
                continue
            first = sources[0]
            if isinstance(first, Reference) and first.registry == mount_to:
                self._client().remember_source(first, layer.digest)
            else:
                waiting.append(self._download(layer, sources))
        for future in waiting:
            future.result()  # the first failure raises

    def prefetch(self, layers: Sequence[Layer]) -> None:
        """Start downloading those of `layers` still in a registry, without waiting (a later `fetch` does)."""
        for layer in layers:
            sources = self._sources_of(layer.digest)
            if sources and not self._store.has(layer.digest):
                self._download(layer, sources)

    def _download(self, layer: Layer, sources: tuple[Reference | CacheBlobSource, ...]) -> Future[None]:
        with self._lock:
            future = self._downloads.get(layer.digest)
            if future is None or (future.done() and future.exception() is not None):
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self._client().max_parallel,
                                                    thread_name_prefix="layer-fetch")
                future = self._pool.submit(self._fetch_from, layer, sources)
                self._downloads[layer.digest] = future
        return future

    def _fetch_from(self, layer: Layer, sources: tuple[Reference | CacheBlobSource, ...]) -> None:
        """Download `layer` from the first of `sources` that serves it; as a pull falls back from a failing
        mirror, a blob that does not match its digest stops at once."""
        client = self._client()
        for source, next_source in zip(sources, sources[1:] + (None,)):
            if not isinstance(source, Reference):  # a local directory's or the GitHub Actions cache's blob
                source.fetch(layer.digest, self._store, layer.size)
                return
            try:
                client.fetch_blob(source, layer.digest, self._store, layer.size)
                return
            except DigestMismatch:
                raise
            except RegistryError as exc:
                if not isinstance(next_source, Reference):
                    raise
                client.events.warning(f"cannot download layer {layer.digest} from {source.registry}: "
                                      f"{exc.message}; trying {next_source.registry}")

    def close(self) -> None:
        """Stops the downloads not started yet (the build is over or failed); running ones finish."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class OutputWriter:
    """Writes a build's finished image where the options say, then its cache exports and result files."""

    def __init__(self, options: BuildOptions, events: Events, *, client: Callable[[], RegistryClient],
                 store: BlobStore, cached_layers: CachedLayers):
        self.options = options
        self.events = events
        self._client = client
        self._store = store
        self._cached_layers = cached_layers
        self._signer = None
        if options.signing is not None:
            from .signing.sign import signer_for

            # Read (and decrypt) the key now: a bad key or passphrase fails before anything is built or pushed.
            self._signer = signer_for(options.signing, options.environ, events)

    def write(self, images: Sequence[Image], tags: tuple[str, ...], uploaded: frozenset[str],
              attestations: Sequence[PlatformAttestations] = ()) -> Written:
        """Pushes (the layers in `uploaded` are already there) and writes the --output's of `images` (one per
        platform, finalized, in --platform order); several are written as one image index. `attestations`
        (one attestation manifest per image, made about the images in OCI media types) make the push and
        OCI layouts an index listing them after the images, as BuildKit; a docker tarball has none. Returns
        the digest of what was written (the push's when there is one) and the references pushed to."""
        images = tuple(images)
        attested = tuple(attestations)
        if not images:
            raise ValueError("nothing to write: no image")
        opts = self.options
        check_outputs(opts, [image.platform for image in images])
        names = [parse_reference(t) for t in tags or opts.push_targets]
        # Layers of registry cache hits: mounted into the pushed repositories when they are all on the cache's
        # registry and nothing else is written, else downloaded now.
        registries = {r.registry for r in names}
        files = any(o.type != "registry" for o in opts.outputs)
        mount_to = registries.pop() if opts.wants_push and not files and len(registries) == 1 else None
        self._cached_layers.fetch([layer for image in images for layer in image.layers], mount_to)
        sets: dict[tuple[bool, bool], ImageSet] = {}
        if attested and any(not o.oci_media_types for o in _media_type_outputs(opts) if o.type != "docker"):
            # BuildKit's exporter turns OCI media types on for attestations (EnableOCITypes("attestations")).
            self.events.warning("attestations need OCI media types: oci-mediatypes=false is not followed for "
                                "the index that holds them (BuildKit does the same)")

        def image_set(oci: bool, with_attestations: bool = True) -> ImageSet:
            chosen = attested if with_attestations else ()
            key = (oci or bool(chosen), bool(chosen))
            if key not in sets:
                sets[key] = self.arrange(images, oci=key[0], attestations=chosen)
            return sets[key]

        pushed: list[str] = []
        signatures: tuple[dict[str, str], ...] = ()
        primary: ImageSet | None = None
        if opts.wants_push:
            registry_outputs = [o for o in opts.outputs if o.type == "registry"]
            primary = image_set(all(o.oci_media_types for o in registry_outputs))
            by_digest = any(o.push_by_digest for o in registry_outputs)
            pushed, signatures = self._push(primary, names, uploaded, by_digest=by_digest)
        for output in opts.outputs:
            if output.type not in ("oci", "docker"):
                continue  # type=registry: the push above
            assert output.dest is not None, "OutputSpec.parse gives type=oci and type=docker a dest"
            written = image_set(output.oci_media_types, with_attestations=output.type == "oci")
            primary = primary or written
            if output.type == "oci":
                self._write_layout(written, Path(output.dest), names)
            else:
                from .image.archive import write_docker_archive

                if attested:
                    self.events.info(f"the docker tarball {output.dest} holds no attestations (as with "
                                     "BuildKit's docker exporter): push, or write --output type=oci,dest=DIR, "
                                     "to keep them")

                assert written.index is None, "check_outputs refuses a docker tarball of an index"
                write_docker_archive(written.images[0], self._store, Path(output.dest), [repo_tag(r) for r in names])
        if not opts.wants_push and not opts.outputs:
            self.events.warning("no output requested: the image was built but is only kept in dockyard's blob "
                                "store; use --push or --output type=oci,dest=DIR")
        primary = primary or image_set(True)
        return Written(primary.digest, pushed, primary.index, primary.images, signatures,
                       primary.attestations)

    def arrange(self, images: tuple[Image, ...], *, oci: bool = True,
                attestations: tuple[PlatformAttestations, ...] = ()) -> ImageSet:
        """`images` in OCI or Docker media types, with their index when the build writes one (always with
        `attestations`, as buildx makes a single-platform build with attestations an index): its entries
        carry the manifest-descriptor annotations, the index the index annotations; the attestation
        manifests follow the images, as BuildKit lists them."""
        if not oci:
            images = tuple(docker_media_types(image) for image in images)
        if not needs_index(self.options, len(images)) and not attestations:
            return ImageSet(images, None)
        entries = tuple(image_descriptor(image, tuple(sorted(
            platform_annotations(self.options, image.platform, "manifest-descriptor").items())))
            for image in images)
        if attestations:
            from .attest.manifest import attestation_descriptor

            listed = {image.digest for image in images}
            for attestation in attestations:
                assert attestation.subject in listed, "an attestation is about an image of this index"
            entries += tuple(attestation_descriptor(a.image, a.subject) for a in attestations)
        index = ImageIndex(entries, tuple(sorted(level_annotations(self.options, "index").items())),
                           OCI_INDEX if oci else DOCKER_MANIFEST_LIST)
        return ImageSet(images, index, attestations)

    def _push(self, written: ImageSet, names: list[Reference], uploaded: frozenset[str], *,
              by_digest: bool) -> tuple[list[str], tuple[dict[str, str], ...]]:
        """Pushes the images (and their index) to `names`: under their tags, or by digest only (buildx's
        push-by-digest=true, for the matrix jobs whose images are assembled into one index later). With
        --sign, the signatures are stored after the manifests and before the tags. Returns the references
        pushed to and the signatures stored."""
        from .registry.push import push_image, push_index

        refs = [Reference(r.registry, r.repository) for r in names] if by_digest else names
        if by_digest:  # one push per repository, whatever tags the names had
            refs = list({(r.registry, r.repository): r for r in refs}.values())
        hook = None
        if self._signer is not None:
            from .signing.sign import SignatureHook

            if written.index is not None:
                subject = written.index.descriptor()
            else:
                image = written.images[0]
                subject = Descriptor(image.manifest_media_type, image.digest, len(image.manifest_bytes()))
            hook = SignatureHook(self._signer, self._client(), self._store, subject, written.index)
        if written.index is not None:
            digest = push_index(self._client(), written.index, list(written.manifests), self._store, refs,
                                uploaded, before_tags=hook)
        else:
            digest = push_image(self._client(), written.images[0], self._store, refs, uploaded, before_tags=hook)
        pushed = [str(r.with_digest(digest)) if by_digest or not r.tag else str(r) for r in refs]
        return pushed, tuple(s.to_json() for s in hook.signatures) if hook is not None else ()

    def _write_layout(self, written: ImageSet, dest: Path, names: list[Reference]) -> None:
        from .image.layout import write_oci_layout

        ref_names = [str(r) for r in names if r.tag] or ["latest"]
        if written.index is not None:
            annotations = tuple(sorted(level_annotations(self.options, "index-descriptor").items()))
        else:
            annotations = tuple(sorted(platform_annotations(self.options, written.images[0].platform,
                                                             "manifest-descriptor").items()))
        write_oci_layout(written.manifests, self._store, dest, ref_names, index=written.index,
                         annotations=annotations)

    def export_caches(self, plan: BuildPlan, entries: list[tuple[int, StepEntry]], pushed: list[str]) -> None:
        """--cache-to: the steps of the final image (mode=min) or of every stage (max) to each cache ref. A
        failure is an error (a warning with ignore-error=true) that says the image itself was written."""
        if not self.options.cache_to:
            return
        from .cache.external import export_to

        final_stages = target_chain(plan)
        for spec in self.options.cache_to:
            chosen = {e.key: e for stage, e in entries if spec.mode == "max" or stage in final_stages}
            # A registry export mounts blobs the same registry has; the others need every blob's bytes here.
            mount_to = parse_reference(spec.ref).registry if spec.kind == "registry" else None
            try:
                self._cached_layers.fetch([e.layer for e in chosen.values() if e.layer], mount_to)
                digest = export_to(spec, self._client, self._store, list(chosen.values()))
            except DockyardError as exc:
                done = f"the image was pushed to {', '.join(pushed)}" if pushed else "the image was built"
                text = (f"cannot export the build cache to {spec.target} ({done}; only the cache export failed): "
                        f"{exc.message}")
                if spec.ignore_error:
                    self.events.warning(text)
                    continue
                error = (AuthenticationError if isinstance(exc, AuthenticationError) else
                         OutputError if isinstance(exc, OutputError) else RegistryError)
                raise error(text, hint=exc.hint, subject=spec.target) from None
            self.events.info(f"exported {len(chosen)} cached steps to {spec.target} ({digest})")

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
