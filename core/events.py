"""Build events: what the builder reports while it works. Renderers (progress.py) turn them into output.

The builder and the registry client only ever call `Events.emit(...)`; they know nothing of terminals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Event:
    """What every build event has: the time it happened, and a `--progress json` form named after its kind."""

    time: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["event"] = self.kind
        return d


@dataclass(frozen=True)
class BuildStarted(Event):
    """A build begins: its Dockerfile and context, and how many stages and steps it has."""

    dockerfile: str
    context: str
    stages: int
    steps: int


@dataclass(frozen=True)
class StageStarted(Event):
    """A stage begins, from its base (an image or an earlier stage)."""

    stage: str
    base: str


@dataclass(frozen=True)
class StepStarted(Event):
    """A step (one instruction, FROM included) begins: where it is in the build and in the Dockerfile."""

    step: int  # 1-based over the whole build
    total: int
    stage: str
    text: str  # e.g. "RUN apk add curl"
    file: str
    line: int


@dataclass(frozen=True)
class StepLog(Event):
    """A line of a running step's output."""

    step: int
    line: str  # one line of the step's output, without its newline


@dataclass(frozen=True)
class StepFinished(Event):
    """A step ended: how long it took, the layer it made, whether it failed or came from the cache."""

    step: int
    duration: float
    layer_digest: str | None = None
    layer_size: int | None = None
    failed: bool = False
    cached: bool | None = None  # True: a step cache hit (nothing ran); False: a miss; None: not looked up
    cache_source: str | None = None  # a hit's origin: "local", or the --cache-from ref it came from


@dataclass(frozen=True)
class TransferStarted(Event):
    """A blob starts being pulled or pushed."""

    direction: str  # "pull" or "push"
    image: str
    digest: str
    total: int


@dataclass(frozen=True)
class TransferProgress(Event):
    """How many bytes of a blob being pulled or pushed have moved so far."""

    digest: str
    done: int


@dataclass(frozen=True)
class TransferFinished(Event):
    """A blob's pull or push ended, or was skipped (the registry had it, or mounted it)."""

    digest: str
    skipped: str | None = None  # "exists", "mounted": why no bytes moved


@dataclass(frozen=True)
class ImagePushed(Event):
    """An image's manifest was pushed under a tag or digest."""

    reference: str
    digest: str


@dataclass(frozen=True)
class Message(Event):
    """A note for the user: information, a warning or an error."""

    level: str  # "info", "warning", "error"
    text: str


@dataclass(frozen=True)
class BuildFinished(Event):
    """The build ended: with the image's digest, or with the error that stopped it."""

    digest: str | None
    duration: float
    error: str | None = None


def event_from_json(d: dict[str, Any]) -> Event | None:
    """The inverse of `Event.to_json` (a `--progress json` line read back, e.g. by a CI adapter that renders it
    with progress.py's renderers); None for an event kind newer than this module."""
    kinds = {cls.__name__: cls for cls in Event.__subclasses__()}
    fields = dict(d)
    kind = fields.pop("event", "")
    cls = kinds.get("".join(part.capitalize() for part in kind.split("_")))
    return cls(**fields) if cls is not None else None


Listener = Callable[[Event], None]


class Events:
    """A thread-safe fan-out of events to listeners (transfers report from worker threads)."""

    def __init__(self, *listeners: Listener):
        self._listeners = list(listeners)
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        with self._lock:
            for listener in self._listeners:
                listener(event)

    def info(self, text: str) -> None:
        self.emit(Message(level="info", text=text))

    def warning(self, text: str) -> None:
        self.emit(Message(level="warning", text=text))


NULL_EVENTS = Events()
