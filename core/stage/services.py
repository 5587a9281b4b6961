"""What every stage of a build works with (BuildServices, filled once by the builder), and what each step
did (StepRecord)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple, TYPE_CHECKING

from ..cache.digests import FileDigests
from ..cache.layers import LayerCache
from ..cache.store import StepCache, StepEntry
from ..context import BuildContext
from ..dockerfile import instructions as ins
from ..events import Events
from ..image.blobs import BlobStore
from ..image.model import Layer
from ..isolation import Runner
from ..rootfs import RootFS, Workspace
from .mounts import MountSources

if TYPE_CHECKING:  # imported where used: a build without them does not pay for their import
    from ..cache.remote import RemoteCache
    from ..context_sources import NamedContextLoader


@dataclass
class StepRecord:
    """What one step did, for the build's result and metadata: its instruction, time, layer and cache outcome."""

    step: int
    instruction: str
    file: str
    line: int
    duration: float = 0.0
    layer: Layer | None = None
    cached: bool | None = None  # True: taken from the step cache; False: looked up and missed; None: not cacheable
    cache_source: str | None = None  # a hit's origin: "local", or the --cache-from ref
    # For the build's timeline: when the step started (wall clock, seconds since the epoch), its stage and,
    # in a build of several platforms, the target platform.
    started: float = 0.0
    stage: str = ""
    platform: str | None = None


class BuiltStep(NamedTuple):
    """A step this build ran: its step-cache entry, and the target platform it was built for."""

    entry: StepEntry
    platform: str


# The steps a build of several platforms ran, by cache key. A step of another target whose key is the same (its
# stage's platform and every input equal: a `FROM --platform=$BUILDPLATFORM` stage that reads no TARGET* arg) takes
# the result instead of running again, also with --no-cache, as BuildKit builds such a vertex once.
BuiltSteps = dict[str, BuiltStep]


@dataclass
class BuildServices:
    """What a stage executor works with; filled once per build by the builder."""

    store: BlobStore
    workspace: Workspace
    runner: Runner
    context: BuildContext
    events: Events
    compression: str = "gzip"
    compression_level: int | None = None
    # Reproducible builds: history times and layer mtimes no later than this (None: the clock, mtimes as found).
    source_date_epoch: int | None = None
    # COPY --from=IMAGE (not a stage): returns that image's unpacked root.
    image_rootfs: Callable[[str, ins.Instruction], RootFS] | None = None
    resolv_conf: str | None = None
    hosts: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    # RUN --mount's host side: --secret, --ssh, the cache-mount directory.
    mount_sources: MountSources = field(default_factory=MountSources)
    layer_cache: LayerCache | None = None  # unpacked layers shared between builds
    step_cache: StepCache | None = None  # results of RUN/COPY/ADD steps, by key
    cache_lookups: bool = True  # False with --no-cache: every step runs (and its result is recorded)
    remote_cache: RemoteCache | None = None  # --cache-from: looked up when the local cache misses
    # Every step entry this build used or made, with its stage's index: what --cache-to exports.
    cache_entries: list[tuple[int, StepEntry]] = field(default_factory=list)
    # COPY --from=IMAGE / RUN --mount=from=IMAGE in a cache key: that image's manifest digest.
    image_digest: Callable[[str, ins.Instruction], str] | None = None
    # Content digests of context files remembered between builds, for COPY/ADD and bind-mount cache keys.
    file_digests: FileDigests | None = None
    # Writes a step's layer while the next RUN runs (StageExecutor.commit_layer); None: every layer in turn.
    snapshots: ThreadPoolExecutor | None = None
    # --build-context: the named contexts, read when a step first needs one.
    named_contexts: NamedContextLoader | None = None
    # Told of every layer a stage's image gains (made or cached), with the stage's index: the builder starts
    # pushing the final image's layers while later steps run.
    on_layer: Callable[[int, Layer], None] | None = None
    # A build of several platforms: the target platform these stages are built for, and the steps every target
    # built so far (shared by the targets' services); None in a build of one platform.
    platform: str | None = None
    built_steps: BuiltSteps | None = None
    # Set when the build stops (another stage failed): the stage gives up before its next step.
    stop: threading.Event | None = None
