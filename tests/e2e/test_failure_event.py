"""The failure event: every failed `dockyard build --progress json` ends its event stream with `build_failed`,
carrying what the error printed on the terminal says (kind, exit code, message, hint, Dockerfile lines), whether
the build failed in a RUN, in the Dockerfile, at a registry or in its command line. The CI adapters read it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import dockyard
from tests.e2e.helpers import CliResult, dockyard as run_dockyard, write_context
from tests.support.registry import RegistryServer


def events_of(result: CliResult) -> list[dict[str, Any]]:
    """The JSON events on standard error (the CLI's own `error: ...` text follows them)."""
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def failure(result: CliResult, exit_code: int) -> dict[str, Any]:
    """The build_failed event, after checking it is the last event, the only one, and says the exit code."""
    assert result.returncode == exit_code, result.stderr
    events = events_of(result)
    assert events and events[-1]["event"] == "build_failed", result.stderr
    assert [e["event"] for e in events].count("build_failed") == 1
    assert "build_finished" not in [e["event"] for e in events]
    event = events[-1]
    assert event["exit_code"] == exit_code
    assert "error: " in result.stderr and event["message"] in result.stderr  # the same error, printed once more
    return event


def test_a_failed_run_ends_with_its_step_and_line(busybox_base: str, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo preparing\n"
                                                             "RUN echo doomed; exit 3\n"})
    result = run_dockyard("build", "--progress", "json", "--no-cache", "--work-dir", str(tmp_path / "work"),
                          str(context))
    event = failure(result, dockyard.StepFailed.exit_code)
    assert event["error"] == "StepFailed"
    assert event["file"].endswith("Dockerfile") and event["line"] == 3 and event["end_line"] in (None, 3)
    assert "doomed" in (event["details"] or "")
    kinds = [e["event"] for e in events_of(result)]
    assert kinds[0] == "build_started" and kinds[-2] == "step_finished"


def test_a_bad_dockerfile_line_ends_with_that_line(tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY a /a\nFROBNICATE now\n",
                                               "a": "a"})
    event = failure(run_dockyard("build", "--progress=json", str(context)), dockyard.DockerfileError.exit_code)
    assert event["error"] == "DockerfileError" and event["line"] == 3
    assert "FROBNICATE" in event["message"].upper()


def test_failed_checks_end_with_checks_failed_and_the_report_is_written(tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch AS a\nFROM scratch AS A\n"})
    report = tmp_path / "findings.json"
    result = run_dockyard("build", "--progress", "json", "--check", "--report", f"json={report}", str(context))
    event = failure(result, dockyard.ChecksFailed.exit_code)
    assert event["error"] == "ChecksFailed" and event["subject"].endswith("Dockerfile")
    warnings = [e["text"] for e in events_of(result) if e["event"] == "message" and e["level"] == "warning"]
    assert any("DuplicateStageName" in text for text in warnings)
    assert json.loads(report.read_text())["findings"][0]["rule"] == "DuplicateStageName"


def test_a_refused_registry_ends_with_the_authentication_error(tmp_path: Path) -> None:
    server = RegistryServer.start(tmp_path / "registry", htpasswd={"builder": "builder-Pa55word"})
    try:
        context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {server.host}/base/busybox:1\nRUN true\n"})
        env = {"DOCKER_CONFIG": str(tmp_path / "no-credentials")}
        result = run_dockyard("build", "--progress", "json", "--work-dir", str(tmp_path / "work"), str(context),
                              env=env)
    finally:
        server.stop()
    event = failure(result, dockyard.AuthenticationError.exit_code)
    assert event["error"] == "AuthenticationError"
    assert server.host in json.dumps(event)


@pytest.mark.parametrize("args", [["--no-such-flag"], ["--output", "type=floppy"], ["--progress", "json"]],
                         ids=["unknown-flag", "bad-output", "missing-context"])
def test_a_usage_error_is_the_only_event(tmp_path: Path, args: list[str]) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    argv = ["build", "--progress=json", *args] + ([] if args == ["--progress", "json"] else [str(context)])
    result = run_dockyard(*argv)
    event = failure(result, dockyard.UsageError.exit_code)
    assert event["error"] == "UsageError" and len(events_of(result)) == 1
    assert event["file"] is None and event["line"] is None


def test_other_progress_modes_print_the_error_once(tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nFROBNICATE now\n"})
    for mode in ("plain", "auto"):
        result = run_dockyard("build", f"--progress={mode}", str(context))
        assert result.returncode == dockyard.DockerfileError.exit_code
        assert result.stderr.count("FROBNICATE") == 1 and "build_failed" not in result.stderr, result.stderr
    quiet = run_dockyard("build", "--progress=json", "-q", "--no-such-flag", str(context))
    assert quiet.returncode == 2 and not events_of(quiet)


# --- the same through the Python API -----------------------------------------------------------------------

def test_the_api_raises_and_ends_the_events_with_build_failed(tmp_path: Path) -> None:
    seen: list[dockyard.Event] = []
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nFROBNICATE now\n"})
    with pytest.raises(dockyard.DockerfileError) as raised:
        dockyard.build(dockyard.BuildOptions(context=context, work_dir=tmp_path / "work"),
                       events=dockyard.Events(seen.append))
    expected = dockyard.BuildFailed.from_error(raised.value)
    assert seen[-1] == dataclasses.replace(expected, time=seen[-1].time)
    assert (expected.error, expected.line, expected.exit_code) == ("DockerfileError", 2, 3)


def test_the_api_reports_an_unexpected_exception_as_an_internal_error(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug cannot be made on purpose: the builder is replaced by one that raises (the only stand-in here)."""
    import dockyard.builder

    def broken(options: dockyard.BuildOptions, *, events: dockyard.Events) -> dockyard.BuildResult:
        raise KeyError("no such thing")

    monkeypatch.setattr(dockyard.builder, "build", broken)
    seen: list[dockyard.Event] = []
    with pytest.raises(KeyError):
        dockyard.build(dockyard.BuildOptions(context=tmp_path), events=dockyard.Events(seen.append))
    assert len(seen) == 1 and isinstance(seen[0], dockyard.BuildFailed)
    assert (seen[0].error, seen[0].exit_code) == ("InternalError", 1)
    assert "no such thing" in seen[0].message and "Traceback" in (seen[0].details or "")
