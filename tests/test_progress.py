"""Renderers (dockyard.progress) fed a realistic event sequence, writing to StringIO."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading

import pytest

from dockyard.errors import UsageError
from dockyard.events import (BuildFailed, BuildFinished, BuildStarted, Events, ImagePushed, Message, StageStarted,
                             StepFinished, StepLog, StepStarted, TransferFinished, TransferProgress,
                             TransferStarted, event_from_json)
from dockyard.progress import (JsonRenderer, NullRenderer, PlainRenderer, RichRenderer, format_size,
                               make_renderer, short_digest)

T0 = 1_700_000_000.0
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def _transfer(events: Events, direction: str, digest: str, total: int, t: float) -> None:
    events.emit(TransferStarted(direction=direction, image="127.0.0.1:5000/app", digest=digest, total=total, time=t))
    for i in range(1, 5):
        events.emit(TransferProgress(digest=digest, done=total * i // 4, time=t + 0.1 * i))
    events.emit(TransferFinished(digest=digest, time=t + 0.5))


def feed_build(renderer, *, fail: bool = False) -> None:
    """A two-stage build: pulls in parallel (two worker threads), three steps, a warning, the end."""
    events = Events(renderer)
    events.emit(BuildStarted(dockerfile="Dockerfile", context=".", stages=2, steps=3, time=T0))
    events.emit(StageStarted(stage="build", base="alpine:3.19", time=T0 + 0.01))
    workers = [threading.Thread(target=_transfer, args=(events, "pull", d, 3_100_000, T0 + 0.02))
               for d in (DIGEST_A, DIGEST_B)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    events.emit(StepStarted(step=1, total=3, stage="build", text="RUN make", file="Dockerfile", line=2,
                            time=T0 + 1))
    events.emit(StepLog(step=1, line="cc -o app main.c", time=T0 + 1.1))
    events.emit(StepLog(step=1, line="\x1b[32mbuilt [app]\x1b[0m", time=T0 + 1.2))  # colours, rich markup chars
    events.emit(StepFinished(step=1, duration=1.23, layer_digest=DIGEST_A, layer_size=1234, time=T0 + 2.23))
    events.emit(Message(level="warning", text="base image has no platform; assuming linux/amd64", time=T0 + 2.3))
    events.emit(StageStarted(stage="final", base="build", time=T0 + 2.4))
    events.emit(StepStarted(step=2, total=3, stage="final", text="COPY --from=build /app /app",
                            file="Dockerfile", line=5, time=T0 + 2.5))
    events.emit(StepFinished(step=2, duration=0.1, time=T0 + 2.6))
    events.emit(StepStarted(step=3, total=3, stage="final", text="RUN /app --selftest", file="Dockerfile",
                            line=6, time=T0 + 2.7))
    events.emit(StepLog(step=3, line="selftest failed" if fail else "ok", time=T0 + 2.8))
    events.emit(StepFinished(step=3, duration=0.3, failed=fail, time=T0 + 3.0))
    if fail:
        events.emit(BuildFinished(digest=None, duration=3.0, error="RUN failed", time=T0 + 3.0))
    else:
        _transfer(events, "push", DIGEST_B, 3_100_000, T0 + 3.1)
        events.emit(ImagePushed(reference="127.0.0.1:5000/app:latest", digest=DIGEST_B, time=T0 + 3.7))
        events.emit(BuildFinished(digest=DIGEST_B, duration=3.7, time=T0 + 3.7))
    renderer.close()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- choosing a renderer ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream, environ, expected", [
    (FakeTTY(), {"TERM": "xterm"}, RichRenderer),
    (io.StringIO(), {"TERM": "xterm"}, PlainRenderer),  # not a terminal
    (FakeTTY(), {"TERM": "xterm", "CI": "true"}, PlainRenderer),  # CI runners with a pty
    (FakeTTY(), {"TERM": "dumb"}, PlainRenderer),
    (FakeTTY(), {"TERM": "xterm", "CI": "false"}, RichRenderer),
])
def test_auto_picks_live_view_only_on_interactive_terminals(stream, environ, expected):
    renderer = make_renderer("auto", stream=stream, environ=environ)
    try:
        assert type(renderer) is expected
    finally:
        renderer.close()


def test_explicit_modes_and_quiet():
    tty = FakeTTY()
    assert type(make_renderer("plain", stream=tty, environ={})) is PlainRenderer
    assert type(make_renderer("json", stream=tty, environ={})) is JsonRenderer
    for mode in ("auto", "plain", "json"):
        assert type(make_renderer(mode, stream=tty, quiet=True, environ={})) is NullRenderer
    with pytest.raises(UsageError):
        make_renderer("fancy", stream=tty)


def test_quiet_prints_nothing():
    out = io.StringIO()
    feed_build(make_renderer("plain", stream=out, quiet=True))
    assert out.getvalue() == ""


def test_importing_progress_does_not_import_rich():
    code = "import sys, dockyard.progress; assert 'rich' not in sys.modules, 'rich imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- plain ---------------------------------------------------------------------------------------------------

def test_plain_lines():
    out = io.StringIO()
    feed_build(PlainRenderer(out))
    lines = out.getvalue().splitlines()
    assert all(line.startswith("[") and "s] " in line for line in lines), lines
    text = "\n".join(line.split("s] ", 1)[1] for line in lines)  # without the timestamps
    assert lines[0].startswith("[  0.00s] building Dockerfile")
    assert "[  1.00s] #1 [build 1/3] RUN make" in lines
    assert "#1 cc -o app main.c" in text
    assert "#1 DONE 1.2s" in text
    assert "#2 [final 2/3] COPY --from=build /app /app" in text
    assert "#3 DONE 0.3s" in text
    assert "WARNING: base image has no platform; assuming linux/amd64" in text
    assert "pushed 127.0.0.1:5000/app:latest " + DIGEST_B in text
    assert text.endswith("build done in 3.7s: " + DIGEST_B)
    # Transfers: a line at the start and one at the end, none per chunk.
    assert f"pull {short_digest(DIGEST_A)} 3.1 MB from 127.0.0.1:5000/app" in text
    assert f"pull {short_digest(DIGEST_A)} done 3.1 MB in 0.5s (6.2 MB/s)" in text
    assert sum("pull " in line for line in lines) == 4
    assert sum("push " in line for line in lines) == 2


def test_plain_failure():
    out = io.StringIO()
    feed_build(PlainRenderer(out), fail=True)
    text = out.getvalue()
    assert "#3 selftest failed\n" in text
    assert "#3 ERROR 0.3s\n" in text
    assert "build failed after 3.0s" in text


def test_plain_lines_stay_whole_under_threads():
    out = io.StringIO()
    events = Events(PlainRenderer(out))
    threads = [threading.Thread(target=_transfer, args=(events, "push", f"sha256:{i:064x}", 1000, T0))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 16
    assert all(line.startswith("[") and " push sha256:" in line for line in lines)


# --- json ----------------------------------------------------------------------------------------------------

def test_json_lines():
    out = io.StringIO()
    feed_build(JsonRenderer(out))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [r["event"] for r in records]
    assert kinds[0] == "build_started" and kinds[-1] == "build_finished"
    assert kinds.count("transfer_progress") == 12  # json keeps every event: it is for machines
    step = next(r for r in records if r["event"] == "step_started")
    assert step == {"event": "step_started", "step": 1, "total": 3, "stage": "build", "text": "RUN make",
                    "file": "Dockerfile", "line": 2, "time": T0 + 1}
    assert records[-1]["digest"] == DIGEST_B


def test_json_lines_read_back_render_as_the_events_did():
    """event_from_json inverts to_json: a consumer of `--progress json` (the GitHub adapter) can feed the plain
    renderer and get the very lines a direct plain build prints."""
    direct, via_json, lines = io.StringIO(), io.StringIO(), io.StringIO()
    feed_build(PlainRenderer(direct))
    feed_build(JsonRenderer(lines))
    replay = PlainRenderer(via_json)
    for line in lines.getvalue().splitlines():
        replay(event_from_json(json.loads(line)))
    assert via_json.getvalue() == direct.getvalue() and direct.getvalue()
    assert event_from_json({"event": "from_the_future", "time": T0}) is None


def test_build_failed_is_written_by_json_and_left_to_the_cli_by_the_others():
    """The failure event is for machines: the terminal renderers leave the error to the CLI, which prints it."""
    event = BuildFailed(exit_code=5, error="StepFailed", message="RUN exited with 1", hint="read its output",
                        file="Dockerfile", line=3, end_line=4, details="the last lines", time=T0)
    out = io.StringIO()
    JsonRenderer(out)(event)
    record = json.loads(out.getvalue())
    assert record == {"event": "build_failed", "time": T0, "exit_code": 5, "error": "StepFailed",
                      "message": "RUN exited with 1", "hint": "read its output", "file": "Dockerfile", "line": 3,
                      "end_line": 4, "subject": None, "details": "the last lines"}
    assert event_from_json(record) == event
    plain, live = io.StringIO(), io.StringIO()
    for renderer in (PlainRenderer(plain), RichRenderer(console=_rich_console(live))):
        renderer(event)
        renderer.close()
    for stream in (plain, live):
        assert "RUN exited with 1" not in stream.getvalue() and "last lines" not in stream.getvalue()


# --- rich ----------------------------------------------------------------------------------------------------

def _plain_text(out: io.StringIO) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # drop colours and cursor control


def _rich_console(out):
    from rich.console import Console

    return Console(file=out, force_terminal=True, width=100, color_system="truecolor")


@pytest.mark.parametrize("fail", [False, True])
def test_rich_renders(fail):
    out = io.StringIO()
    renderer = RichRenderer(console=_rich_console(out))
    assert renderer._live is None  # nothing started (no thread, cursor untouched) before the first event
    feed_build(renderer, fail=fail)
    assert renderer._live is None
    raw = out.getvalue()
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l") >= 0  # the cursor was hidden, and is shown again
    text = _plain_text(out)
    assert "#1 [build 1/3] RUN make" in text
    assert "#2 [final 2/3] COPY --from=build /app /app" in text
    assert "WARNING: base image has no platform" in text
    assert f"pull {short_digest(DIGEST_A)} done 3.1 MB" in text
    if fail:
        assert "ERROR" in text and "build failed after 3.0s" in text
    else:
        assert "built in 3.7s" in text and DIGEST_B in text


def test_rich_live_region_shows_running_step_and_transfers():
    out = io.StringIO()
    renderer = RichRenderer(console=_rich_console(out))
    try:
        renderer(StepStarted(step=4, total=9, stage="build", text="RUN apk add curl", file="Dockerfile", line=3))
        renderer(StepLog(step=4, line="fetch https://dl-cdn.alpinelinux.org/[main]"))
        renderer(TransferStarted(direction="push", image="r/app", digest=DIGEST_A, total=2_000_000))
        renderer(TransferProgress(digest=DIGEST_A, done=1_000_000))
        probe = io.StringIO()
        _rich_console(probe).print(renderer)  # what the live region draws on its next refresh
        region = _plain_text(probe)
        assert "#4 [build 4/9] RUN apk add curl" in region
        assert "fetch https://dl-cdn.alpinelinux.org/[main]" in region  # log text, not rich markup
        assert f"push {short_digest(DIGEST_A)}" in region
        assert "1.0/2.0 MB" in region
    finally:
        renderer.close()
    # Closed mid-step (the build was interrupted): the step is reported, the live view stopped.
    assert "✘ #4 [build 4/9] RUN apk add curl interrupted" in _plain_text(out)
    assert renderer._live is None
    renderer.close()  # idempotent


def test_rich_close_without_events_prints_nothing():
    out = io.StringIO()
    RichRenderer(console=_rich_console(out)).close()
    assert out.getvalue() == ""


# --- helpers -------------------------------------------------------------------------------------------------

def test_formatting_helpers():
    assert format_size(999) == "999 B"
    assert format_size(3_100_000) == "3.1 MB"
    assert format_size(12_500_000_000) == "12.5 GB"
    assert short_digest(DIGEST_A) == "sha256:aaaaaaaaaaaa…"


def test_a_build_of_several_platforms_says_which_platform_each_stage_and_step_is_for():
    """As buildx's plain output: `[linux/arm64 build 2/5]`; a step another target built says so. The JSON has the
    platform field, and reads back."""
    plain, json_out = io.StringIO(), io.StringIO()
    events = Events(PlainRenderer(plain), JsonRenderer(json_out))
    events.emit(BuildStarted(dockerfile="Dockerfile", context=".", stages=2, steps=4, time=T0))
    events.emit(StageStarted(stage="build", base="golang:1.22", platform="linux/arm64", time=T0 + 0.1))
    events.emit(StepStarted(step=4, total=4, stage="build", text="RUN make", file="Dockerfile", line=2,
                            platform="linux/arm64", time=T0 + 0.2))
    events.emit(StepFinished(step=4, duration=0.0, cached=True, cache_source="this build, for linux/amd64",
                             time=T0 + 0.2))
    lines = [line.split("] ", 1)[1] for line in plain.getvalue().splitlines()]
    assert lines[1:] == ["stage build FROM golang:1.22 for linux/arm64", "#4 [linux/arm64 build 4/4] RUN make",
                         "#4 CACHED (from this build, for linux/amd64) 0.0s"]
    records = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert [r.get("platform") for r in records[1:3]] == ["linux/arm64", "linux/arm64"]
    assert event_from_json(records[2]) == StepStarted(step=4, total=4, stage="build", text="RUN make",
                                                      file="Dockerfile", line=2, platform="linux/arm64",
                                                      time=T0 + 0.2)
