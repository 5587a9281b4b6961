"""Renderers: turn build events (events.py) into output, as chosen by `--progress auto|plain|json`.

A renderer is an `Events` listener (`renderer(event)`) plus `close()`, which the caller must call when the
build is over, successful or not: it stops the live display and flushes. Renderers never print errors
themselves beyond a one-line status; the CLI renders `DockyardError`s separately. So the failure event
(BuildFailed) is written by the JSON renderer, for machines, and left out by the others.

rich is imported only inside `RichRenderer`, so `import dockyard.progress` (and `dockyard --version`) stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Protocol, Self, TextIO

from .errors import UsageError
from .events import (BuildFinished, BuildStarted, Event, ImagePushed, Message, StageStarted, StepFinished,
                     StepLog, StepStarted, TransferFinished, TransferProgress, TransferStarted)

if TYPE_CHECKING:  # rich is imported only when a terminal asks for the live view
    from rich.console import Console, Group, RenderableType
    from rich.live import Live
    from rich.progress import TaskID
    from rich.spinner import Spinner
    from rich.text import Text

MODES = ("auto", "plain", "json")


class Renderer(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None: ...


def make_renderer(mode: str, *, stream: TextIO | None = None, quiet: bool = False,
                  environ: Mapping[str, str] = os.environ) -> Renderer:
    """The renderer for `--progress MODE`. `stream` defaults to the current sys.stderr (looked up at call time,
    so redirections made after import, e.g. by test harnesses, are honoured)."""
    if mode not in MODES:
        raise UsageError(f"invalid --progress {mode!r}", hint="use one of: " + ", ".join(MODES))
    stream = sys.stderr if stream is None else stream
    if quiet:
        return NullRenderer()
    if mode == "json":
        return JsonRenderer(stream)
    if mode == "auto" and _wants_live(stream, environ):
        return RichRenderer(stream)
    return PlainRenderer(stream)


def _wants_live(stream: TextIO, environ: Mapping[str, str]) -> bool:
    # A live view only makes sense on an interactive terminal: CI runners often allocate a pty (so isatty()
    # alone would lie) but set CI, and TERM=dumb terminals (emacs shells) can't move the cursor.
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        tty = False
    ci = environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return tty and not ci and environ.get("TERM") != "dumb"


# --- shared formatting --------------------------------------------------------------------------------------

def short_digest(digest: str) -> str:
    """sha256:0123456789abcdef… -> sha256:0123456789ab… (12 hex digits, like docker's short ids)."""
    algo, sep, hexpart = digest.partition(":")
    if not sep:
        return digest[:12] + ("…" if len(digest) > 12 else "")
    return f"{algo}:{hexpart[:12]}" + ("…" if len(hexpart) > 12 else "")


def format_size(n: float) -> str:
    """Decimal units, as registries and rich's DownloadColumn report them: 3.1 MB."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def step_label(e: StepStarted) -> str:
    """#3 [build 3/5] RUN make: the step number, then where it is in the build, as BuildKit's plain output;
    in a build of several platforms, the platform first, as buildx: #3 [linux/arm64 build 3/5] RUN make."""
    where = f"{e.platform} {e.stage}" if e.platform else e.stage
    return f"#{e.step} [{where} {e.step}/{e.total}] {e.text}"


def stage_label(e: StageStarted) -> str:
    """stage build FROM golang:1.22, with ` for linux/arm64` in a build of several platforms."""
    return f"stage {e.stage} FROM {e.base}" + (f" for {e.platform}" if e.platform else "")


@dataclass
class _Transfer:
    """A blob transfer the text renderers follow, to report its size and speed when it ends."""

    direction: str
    image: str
    total: int
    started: float
    done: int = 0


def _transfer_started_text(t: _Transfer, digest: str) -> str:
    return f"{t.direction} {short_digest(digest)} {format_size(t.total)}"


def _transfer_finished_text(t: _Transfer, e: TransferFinished) -> str:
    head = f"{t.direction} {short_digest(e.digest)}"
    if e.skipped:
        return f"{head} skipped ({e.skipped})"
    size = t.done or t.total  # a client that reports no progress still moved the whole blob
    elapsed = max(e.time - t.started, 1e-3)  # a cached or tiny blob can finish within the clock's resolution
    return f"{head} done {format_size(size)} in {format_duration(elapsed)} ({format_size(size / elapsed)}/s)"


class _Transfers:
    """Per-digest transfer state; both text renderers need it to report size and speed at the end."""

    def __init__(self) -> None:
        self._by_digest: dict[str, _Transfer] = {}

    def start(self, e: TransferStarted) -> _Transfer:
        t = self._by_digest[e.digest] = _Transfer(e.direction, e.image, e.total, e.time)
        return t

    def progress(self, e: TransferProgress) -> _Transfer | None:
        t = self._by_digest.get(e.digest)
        if t is not None:
            t.done = e.done
        return t

    def finish(self, e: TransferFinished) -> _Transfer:
        # A finish without a start (a client that skips before announcing) still gets a line.
        return self._by_digest.pop(e.digest, None) or _Transfer("transfer", "", 0, e.time)


class _Base:
    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- quiet / json / plain -----------------------------------------------------------------------------------

class NullRenderer(_Base):
    """--quiet: print nothing (the CLI still prints errors and the final digest)."""

    def __call__(self, event: Event) -> None:
        pass


class JsonRenderer(_Base):
    """One JSON object per line, flushed at once so a consumer piping our stderr sees events as they happen."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()  # whole lines only, even with transfer events from worker threads

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.to_json(), default=str, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.flush()


class PlainRenderer(_Base):
    """One timestamped line per event, for CI logs: no cursor movement, no per-chunk transfer noise."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()
        self._t0: float | None = None  # the build's start: timestamps are relative, as BuildKit's
        self._transfers = _Transfers()

    def __call__(self, event: Event) -> None:
        with self._lock:  # state and writes together, so lines never interleave or see half-updated state
            if self._t0 is None or isinstance(event, BuildStarted):
                self._t0 = event.time
            text = self._format(event)
            if text is not None:
                self._stream.write(f"[{event.time - self._t0:6.2f}s] {text}\n")
                self._stream.flush()

    def _format(self, e: Event) -> str | None:
        if isinstance(e, BuildStarted):
            return f"building {e.dockerfile} (context {e.context}): {e.stages} stage(s), {e.steps} step(s)"
        if isinstance(e, StageStarted):
            return stage_label(e)
        if isinstance(e, StepStarted):
            return step_label(e)
        if isinstance(e, StepLog):
            return f"#{e.step} {e.line}"
        if isinstance(e, StepFinished):
            status = "ERROR" if e.failed else "CACHED" if e.cached else "DONE"
            if e.cached and e.cache_source not in (None, "local"):
                status += f" (from {e.cache_source})"
            return f"#{e.step} {status} {format_duration(e.duration)}"
        if isinstance(e, TransferStarted):
            t = self._transfers.start(e)
            return f"{_transfer_started_text(t, e.digest)} {'from' if e.direction == 'pull' else 'to'} {e.image}"
        if isinstance(e, TransferProgress):
            self._transfers.progress(e)
            return None
        if isinstance(e, TransferFinished):
            return _transfer_finished_text(self._transfers.finish(e), e)
        if isinstance(e, ImagePushed):
            return f"pushed {e.reference} {e.digest}"
        if isinstance(e, Message):
            return e.text if e.level == "info" else f"{e.level.upper()}: {e.text}"
        if isinstance(e, BuildFinished):
            if e.error is not None:
                return f"build failed after {format_duration(e.duration)}"
            return f"build done in {format_duration(e.duration)}: {e.digest}"
        return None  # an event kind newer than this renderer: skip rather than break the build


# --- rich live view -----------------------------------------------------------------------------------------

@dataclass
class _Running:
    """A running step in the rich live view: its label, spinner and last lines of output."""

    label: str
    started: float
    spinner: Spinner  # kept per step so its animation doesn't restart on every refresh
    tail: deque[Text]


class RichRenderer(_Base):
    """The interactive view. Finished steps, transfers and messages are printed above a small live region that
    holds only what is in flight (running steps with their last log lines, transfer bars), so the scrollback
    keeps a complete record and the live region stays short however long the build is.

    Locking: `_lock` guards our state only. Never print or start/stop the Live while holding it: rich's refresh
    thread holds the Live/Console locks while it renders us (`__rich__` takes `_lock`), so that order would
    deadlock. (Progress.add_task/update only take Progress's own lock, which never waits for ours.)
    """

    TAIL_LINES = 5

    def __init__(self, stream: TextIO | None = None, *, console: Console | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.console = console or Console(file=stream or sys.stderr, highlight=False)
        # Embedded in our own Live, never started itself (that would be a second live display and thread).
        self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                  DownloadColumn(), TransferSpeedColumn(), console=self.console,
                                  auto_refresh=False)
        self._lock = threading.Lock()
        self._live_lock = threading.Lock()  # serialises starting/stopping the Live; never held with _lock
        # Started on the first event: no refresh thread or hidden cursor before there's work.
        self._live: Live | None = None
        self._closed = False
        self._running: dict[int, _Running] = {}
        self._transfers = _Transfers()
        self._task_ids: dict[str, TaskID] = {}

    # Events -> state (under _lock) -> things to print (outside it).
    def __call__(self, event: Event) -> None:
        from rich.spinner import Spinner
        from rich.text import Text

        self._ensure_live()
        lines: list[Text] = []
        with self._lock:
            e = event
            if isinstance(e, BuildStarted):
                lines.append(Text(f"building {e.dockerfile} ({e.stages} stage(s), {e.steps} step(s))", "bold"))
            elif isinstance(e, StageStarted):
                lines.append(Text(stage_label(e), "bold"))
            elif isinstance(e, StepStarted):
                self._running[e.step] = _Running(step_label(e), e.time, Spinner("dots", style="cyan"),
                                                 deque(maxlen=self.TAIL_LINES))
            elif isinstance(e, StepLog):
                if (r := self._running.get(e.step)) is not None:
                    # from_ansi keeps colours but drops cursor control; `\r` progress lines keep their last frame.
                    r.tail.append(Text.from_ansi(e.line, style="dim", no_wrap=True, overflow="ellipsis"))
            elif isinstance(e, StepFinished):
                r = self._running.pop(e.step, None)
                label = r.label if r else f"#{e.step}"
                mark, status = ("✘", "red") if e.failed else ("✔", "green")
                lines.append(Text.assemble((mark + " ", status), label,
                                           (" ERROR" if e.failed else "", "red"),
                                           (" CACHED" if e.cached else "", "cyan"),
                                           (f" from {e.cache_source}" if e.cached and e.cache_source != "local"
                                            and e.cache_source else "", "cyan"),
                                           (f" {format_duration(e.duration)}", "dim")))
            elif isinstance(e, TransferStarted):
                self._transfers.start(e)
                self._task_ids[e.digest] = self._progress.add_task(
                    f"{e.direction} {short_digest(e.digest)}", total=e.total or None)
            elif isinstance(e, TransferProgress):
                self._transfers.progress(e)
                if (task := self._task_ids.get(e.digest)) is not None:
                    self._progress.update(task, completed=e.done)  # Progress has its own lock; no rich I/O
            elif isinstance(e, TransferFinished):
                t = self._transfers.finish(e)
                if (task := self._task_ids.pop(e.digest, None)) is not None:
                    self._progress.remove_task(task)
                lines.append(Text.assemble(("✔ ", "green"), _transfer_finished_text(t, e)))
            elif isinstance(e, ImagePushed):
                lines.append(Text.assemble(("✔ ", "green"), f"pushed {e.reference} ", (e.digest, "dim")))
            elif isinstance(e, Message):
                style = {"warning": "yellow", "error": "red"}.get(e.level, "")
                lines.append(Text(e.text if e.level == "info" else f"{e.level.upper()}: {e.text}", style))
            elif isinstance(e, BuildFinished):
                if e.error is not None:
                    lines.append(Text(f"✘ build failed after {format_duration(e.duration)}", "bold red"))
                else:
                    lines.append(Text.assemble(("✔ ", "bold green"),
                                               (f"built in {format_duration(e.duration)} ", "bold"),
                                               (str(e.digest), "dim")))
        for line in lines:
            self.console.print(line)  # above the live region while it runs

    def __rich__(self) -> Group:
        """The live region, rebuilt on each refresh from a snapshot of the state."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        with self._lock:
            parts: list[RenderableType] = []
            if self._running:
                table = Table.grid(padding=(0, 1), expand=True)
                table.add_column(width=1)
                table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
                table.add_column(justify="right")
                for r in self._running.values():
                    table.add_row(r.spinner, Text(r.label), Text(format_duration(now - r.started), "dim"))
                    for line in r.tail:
                        table.add_row("", line, "")
                parts.append(table)
            if self._task_ids:
                parts.append(self._progress)
        return Group(*parts)

    def _ensure_live(self) -> None:
        if self._live is not None or self._closed:
            return
        from rich.live import Live

        with self._live_lock:
            if self._live is None and not self._closed:
                # transient: the live region is erased on stop; everything worth keeping was printed above it.
                # stdout is not redirected: the CLI may print the image digest there while we draw on stderr.
                live = Live(self, console=self.console, refresh_per_second=10, transient=True,
                            redirect_stdout=False, redirect_stderr=True)
                live.start()
                self._live = live

    def close(self) -> None:
        """Stop the live view (idempotent). Steps still running (the build was interrupted) are reported as
        such, since the transient live region that showed them is gone. Later events print without a live view."""
        from rich.text import Text

        with self._live_lock:
            self._closed = True
            live, self._live = self._live, None
        with self._lock:
            interrupted = [r.label for r in self._running.values()]
            self._running.clear()
            for task in self._task_ids.values():
                self._progress.remove_task(task)
            self._task_ids.clear()
        try:
            if live is not None:
                live.stop()  # restores the cursor and stderr even if the last refresh fails
        finally:
            for label in interrupted:
                self.console.print(Text.assemble(("✘ ", "red"), label, (" interrupted", "red")))
            self.console.file.flush()
