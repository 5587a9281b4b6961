"""Build events: what the builder reports while it works. Renderers (progress.py) turn them into output.

The builder and the registry client only ever call `Events.emit(...)`; they know nothing of terminals.
A public module of dockyard's API: a caller of `dockyard.build` subscribes to these events, and `--progress json`
writes them one per line (`Event.to_json`, read back with `event_from_json`).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .errors import DockyardError, Interrupted
from .stopping import Stopped

__all__ = ["BuildFailed", "BuildFinished", "BuildStarted", "Event", "Events", "ImagePushed", "Listener", "Message",
           "NULL_EVENTS", "ScanFinished", "StageStarted", "StepFinished", "StepLog", "StepStarted", "TransferFinished",
           "TransferProgress", "TransferStarted", "event_from_json"]

# What `dockyard` exits with for an exception that is no DockyardError: a bug (errors.EXIT_CODES).
INTERNAL_ERROR_EXIT_CODE = 1


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
        if d.get("platform", "") is None:
            del d["platform"]  # a one-platform build's events are as they were before there were several
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
    platform: str | None = None  # the target platform the stage is built for, when the build has several


@dataclass(frozen=True)
class StepStarted(Event):
    """A step (one instruction, FROM included) begins: where it is in the build and in the Dockerfile."""

    step: int  # 1-based over the whole build
    total: int
    stage: str
    text: str  # e.g. "RUN apk add curl"
    file: str
    line: int
    platform: str | None = None  # the target platform the step is built for, when the build has several


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
class ScanFinished(Event):
    """An image's vulnerability scan ended (`dockyard build --scan`, one per platform): `report` is the
    ScanReport's JSON form (scan/model.py's report_to_json; report_from_json reads it back)."""

    platform: str
    report: dict[str, Any]


@dataclass(frozen=True)
class BuildFinished(Event):
    """The build ended: with the image's digest, or with the error that stopped it."""

    digest: str | None
    duration: float
    error: str | None = None


@dataclass(frozen=True)
class BuildFailed(Event):
    """The build failed: the last event of every failed build (BuildFinished is the success event). `error` is
    the error's class name (errors.py; "InternalError" for an unexpected exception, "Interrupted" for a stop by
    a signal), `message` its message without location or hint, `file`/`line`/`end_line` its Dockerfile lines."""

    exit_code: int
    error: str
    message: str
    hint: str | None = None
    file: str | None = None
    line: int | None = None
    end_line: int | None = None
    subject: str | None = None  # what the error is about when it is no Dockerfile line: an image, a file
    details: str | None = None  # e.g. the last lines of a failed RUN's output

    @classmethod
    def from_error(cls, error: DockyardError) -> BuildFailed:
        location = error.location
        return cls(exit_code=error.exit_code, error=type(error).__name__, message=error.message, hint=error.hint,
                   file=location.file if location else None, line=location.start_line if location else None,
                   end_line=location.end_line if location else None, subject=error.subject,
                   details=error.details)

    @classmethod
    def from_exception(cls, exc: BaseException) -> BuildFailed:
        """Any exception that ended a build: a DockyardError as it is, a stop by a signal (stopping.py's Stopped
        carries its exit code) or Ctrl-C as Interrupted, anything else as an InternalError with its traceback."""
        if isinstance(exc, DockyardError):
            return cls.from_error(exc)
        if isinstance(exc, Stopped):
            return cls(exit_code=exc.exit_code, error=Interrupted.__name__, message=f"stopped by {exc.name}")
        if isinstance(exc, KeyboardInterrupt):
            return cls(exit_code=Interrupted.exit_code, error=Interrupted.__name__, message="interrupted")
        return cls(exit_code=INTERNAL_ERROR_EXIT_CODE, error="InternalError", message=f"{type(exc).__name__}: {exc}",
                   details="".join(traceback.format_exception(exc)).rstrip())


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

    def __init__(self, *listeners: Listener) -> None:
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
