"""What a stage starts from: a registry image (pulled, unpacked only when a step mounts it), `scratch`, an
earlier stage, or a named context; and the images COPY --from / RUN --mount from= name (their roots, their
digests for cache keys)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .cache.keys import base_key
from .cache.layers import LayerCache
from .dockerfile import instructions as ins
from .errors import DockerfileError, DockyardError, UsageError
from .stage.sources import StageResult
from .image.blobs import BlobStore
from .image.model import Image, Platform
from .image.reference import Reference, parse_reference
from .named_contexts import NamedContexts
from .plan import StagePlan
from .registry.routing import Routes
from .rootfs import PendingLayer, RootFS, Unpacker, Workspace

if TYPE_CHECKING:  # imported where used: a build without them does not pay for their import
    from .context_sources import NamedContextLoader
    from .outputs import CachedLayers
    from .registry.client import RegistryClient

BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"


def parse_platform(text: str) -> Platform:
    """A --platform or FROM --platform value; a bad one is a usage error."""
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def base_digest(image: Image) -> str:
    """The manifest digest a pulled image was resolved to (recorded in its base annotations)."""
    return dict(image.annotations)[BASE_DIGEST]


class BaseResolver:
    """Resolves the images a build starts from. A registry image is pulled once per reference and platform and
    shared by every stage, COPY --from and named context that names it; its layers are unpacked (into the
    layer cache, once per machine) only when a step mounts its root.

    A pull downloads the manifest and config only: the layers' blobs stay in the registry until something needs
    their bytes (a step unpacking the root, an output writing them, the SBOM), and a push to the same registry
    mounts them. `client()` gives the build's registry client (made on first use); `layers` keeps track of
    the blobs still in a registry and fetches them into the store (outputs.CachedLayers)."""

    def __init__(self, *, client: Callable[[], RegistryClient], routes: Routes, store: BlobStore,
                 workspace: Workspace, layer_cache: LayerCache, layers: CachedLayers,
                 compression: str, compression_level: int | None, source_date_epoch: int | None):
        self._client = client
        self._routes = routes
        self._store = store
        self._workspace = workspace
        self._layer_cache = layer_cache
        self._layers = layers
        # The build-wide settings that change every layer's bytes: in each base's cache key.
        self._compression = compression
        self._compression_level = compression_level
        self._source_date_epoch = source_date_epoch
        self._pulled: dict[str, tuple[Image, RootFS]] = {}
        self._pull_locks: dict[str, threading.Lock] = {}
        # Each registry image pulled, as (reference as written, platform, digest it resolved to), in order:
        # the materials of the build's provenance.
        self.resolved: list[tuple[str, Platform, str]] = []
        # Told of each image pulled, its layers fetched (the SBOM starts reading them while the build goes on).
        self.on_pulled: Callable[[Image], None] | None = None

    def stage_base(self, stage_plan: StagePlan, platform: Platform, results: dict[int, StageResult],
                   named_contexts: NamedContextLoader | None) -> tuple[Image, RootFS, str]:
        """The stage's starting image, root and cache key; `platform` is the build's (FROM --platform wins)."""
        if stage_plan.base_stage is not None:
            parent = results[stage_plan.base_stage]
            return parent.image, parent.rootfs, parent.key
        if stage_plan.platform:
            platform = parse_platform(stage_plan.platform)
        if stage_plan.base_context is not None:
            return self._context_base(stage_plan, platform, named_contexts)
        if stage_plan.base_image == "scratch":
            return Image(meta={"architecture": platform.architecture, "os": platform.os,
                               **({"variant": platform.variant} if platform.variant else {})}), \
                self.new_root(), self._key("scratch", platform)
        assert stage_plan.base_image is not None, "a stage not FROM a stage or a context is FROM an image"
        try:
            image, rootfs = self.pull(stage_plan.base_image, platform)
            return image, rootfs, self._key(base_digest(image), platform)
        except DockyardError as exc:
            if exc.location is None:  # a pull error is reported at the FROM line that asked for the image
                exc.location = stage_plan.stage.base.location
            raise

    def _context_base(self, stage_plan: StagePlan, platform: Platform,
                      loader: NamedContextLoader | None) -> tuple[Image, RootFS, str]:
        """FROM a named context (or a stage the context replaces): its image, and a key from its digest."""
        assert stage_plan.base_context is not None
        context = loader.lookup(stage_plan.base_context) if loader is not None else None
        assert loader is not None and context is not None, "the plan names only contexts the build has"
        try:
            loaded = loader.image(context, platform)
            key = self._key(f"context {loader.digest(context, platform)}", platform)
        except DockyardError as exc:
            if exc.location is None:
                exc.location = stage_plan.stage.base.location
            raise
        return loaded.image, loaded.rootfs, key

    def _key(self, base: str, platform: Platform) -> str:
        return base_key(base, platform=str(platform), source_date_epoch=self._source_date_epoch,
                        compression=self._compression, level=self._compression_level)

    def pull(self, text: str, platform: Platform) -> tuple[Image, RootFS]:
        """The registry image `text` for `platform`, its config copied to build on, and its (pending) root."""
        key = f"{text}|{platform}"
        cached = self._pulled.get(key)
        if cached is not None:
            return cached
        # Stages running at the same time may name the same image: it is pulled once, the others wait for it.
        with self._pull_locks.setdefault(key, threading.Lock()):
            cached = self._pulled.get(key)
            return cached if cached is not None else self._pull(text, platform, key)

    def _pull(self, text: str, platform: Platform, key: str) -> tuple[Image, RootFS]:
        from .registry.pull import pull_image

        ref = parse_reference(text)
        pulled = pull_image(self._client(), ref, platform, self._store, self._routes, fetch_layers=False)
        assert pulled.source is not None, "pull_image names the repository that served the image"
        # Its layers come from where the manifest came from, falling back as the pull would have.
        candidates = [Reference(c.registry, c.repository) for c in self._routes.pull_candidates(ref)]
        served = candidates.index(pulled.source) if pulled.source in candidates else 0
        self._layers.add_source([pulled.source, *candidates[served + 1:]], pulled.image.layers)
        image = pulled.image.with_config()  # a copy of the base's config to build on
        # Unpacked (into the layer cache, once per machine) only when a step mounts the root.
        rootfs = self.new_root()
        for layer in image.layers:
            rootfs = rootfs.with_pending(layer)
        image = replace(image, annotations=((BASE_DIGEST, pulled.digest), (BASE_NAME, str(ref))))
        self._pulled[key] = (image, rootfs)
        # As BuildKit pins it: the index's digest when the reference names an index, else the manifest's.
        self.resolved.append((text, platform, pulled.index_digest or pulled.digest))
        if self.on_pulled is not None:
            self._layers.fetch(image.layers)
            self.on_pulled(image)
        return image, rootfs

    def new_root(self) -> RootFS:
        """An empty root whose pending layers unpack through the layer cache."""
        return RootFS(unpacker=self._unpacker(), prefetch=self._prefetch)

    def _prefetch(self, pending: tuple[PendingLayer, ...]) -> None:
        """The blobs of the layers about to be unpacked that are still in a registry start downloading."""
        self._layers.prefetch([p.layer for p in pending if not self._layer_cache.has(p.chain)])

    def _unpacker(self) -> Unpacker:
        def unpack(pending: PendingLayer, lowers: list[str]) -> str:
            if not self._layer_cache.has(pending.chain):
                self._layers.fetch([pending.layer])  # a base layer's or a registry cache hit's blob
            return self._layer_cache.unpacked(pending.layer, pending.chain, lowers, self._store,
                                              self._workspace.new_mountpoint())
        return unpack

    def image_digest(self, text: str, inst: ins.Instruction, platform: Platform) -> str:
        """COPY --from=IMAGE / RUN --mount from=IMAGE in a cache key: the image's manifest digest."""
        try:
            return base_digest(self.pull(text, platform)[0])
        except UsageError as exc:
            raise DockerfileError(f"--from={text} is neither a stage nor an image reference: {exc.message}",
                                  location=inst.location) from None

    def image_rootfs(self, text: str, inst: ins.Instruction, platform: Platform) -> RootFS:
        """COPY --from=IMAGE / RUN --mount from=IMAGE: the image's root."""
        try:
            return self.pull(text, platform)[1]
        except UsageError as exc:
            raise DockerfileError(f"--from={text} is neither a stage nor an image reference: {exc.message}",
                                  location=inst.location) from None

    def context_loader(self, contexts: NamedContexts, platform: Platform) -> NamedContextLoader:
        """The --build-context's, read when a step first needs one; images among them pulled as FROM's are."""
        from .context_sources import ContextImage, LayerSettings, NamedContextLoader

        def pull(text: str, platform: Platform) -> ContextImage:
            image, rootfs = self.pull(text, platform)
            return ContextImage(image, rootfs, base_digest(image))

        return NamedContextLoader(contexts, store=self._store, workspace=self._workspace, pull=pull,
                                  platform=platform, new_root=self.new_root,
                                  layers=LayerSettings(self._compression, self._compression_level,
                                                       self._source_date_epoch))
