"""dockyard's declared public surface (`dockyard.__all__`, `dockyard.events`, `dockyard.errors`): every name
resolves to what it claims to be, nothing public is missing from it, and `import dockyard` stays light."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dockyard
import dockyard.errors
import dockyard.events

EVENTS = ["Event", "BuildStarted", "StageStarted", "StepStarted", "StepLog", "StepFinished", "TransferStarted",
          "TransferProgress", "TransferFinished", "ImagePushed", "Message", "BuildFinished", "BuildFailed",
          "ScanFinished"]
ERRORS = ["DockyardError", "UsageError", "DockerfileError", "ContextError", "StepFailed", "RegistryError",
          "AuthenticationError", "IsolationError", "OutputError", "ChecksFailed", "Interrupted", "LayerError",
          "SigningError", "VulnerabilitiesFound", "VulnerabilityDatabaseError"]
VALUE_TYPES = ["BuildOptions", "Annotation", "OutputSpec", "RegistryCache", "ReportSpec", "SecretSource", "SshSource",
               "NamedContext", "SigningSpec", "BuildResult", "Finding", "Platform", "Reference", "SourceLocation"]
# The scan's reports (core/scan/model.py) and their renderer (core/scan/reports.py).
SCAN = ["ScanReport", "Vulnerability", "VulnSeverity", "report_from_json", "report_to_json", "render_scan"]
FUNCTIONS = ["build", "check", "parse_reference", "parse_build_context", "credential_source", "read_docker_config",
             "format_duration", "format_size", "is_loopback_registry", "replace_file"]


def test_every_public_name_resolves_and_is_listed_once() -> None:
    assert len(dockyard.__all__) == len(set(dockyard.__all__))
    for name in dockyard.__all__:
        assert getattr(dockyard, name) is not None, name
    assert set(dockyard.__all__) <= set(dir(dockyard))
    with pytest.raises(AttributeError):
        dockyard.no_such_name  # noqa: B018 (the lookup is the test)
    assert set(EVENTS + ERRORS + VALUE_TYPES + FUNCTIONS + SCAN + ["Events", "Severity", "PlainRenderer", "events",
                                                              "errors", "__version__"]) == set(dockyard.__all__)


def test_each_name_is_what_it_claims() -> None:
    for name in EVENTS:
        cls = getattr(dockyard, name)
        assert cls is getattr(dockyard.events, name) and issubclass(cls, dockyard.Event), name
    for name in ERRORS:
        cls = getattr(dockyard, name)
        assert cls is getattr(dockyard.errors, name) and issubclass(cls, dockyard.DockyardError), name
        assert isinstance(cls.exit_code, int) and cls.exit_code > 0, name
    for name in VALUE_TYPES:
        cls = getattr(dockyard, name)
        assert inspect.isclass(cls) and dataclasses.is_dataclass(cls), name
        # frozen: the dataclass's own __setattr__ refuses every assignment
        assert dataclasses.fields(cls) and cls.__setattr__ is not object.__setattr__, f"{name}: immutable"
    for name in FUNCTIONS:
        assert inspect.isfunction(getattr(dockyard, name)), name
    assert issubclass(dockyard.Severity, __import__("enum").Enum)
    assert callable(dockyard.Events().emit)
    assert inspect.isclass(dockyard.PlainRenderer) and callable(dockyard.PlainRenderer(io.StringIO()))
    assert dockyard.events is sys.modules["dockyard.events"] and dockyard.errors is sys.modules["dockyard.errors"]
    assert dockyard.__version__.count(".") == 2
    assert list(inspect.signature(dockyard.build).parameters) == ["options", "events"]
    assert inspect.signature(dockyard.build).parameters["events"].kind is inspect.Parameter.KEYWORD_ONLY


def test_the_public_modules_list_every_event_and_error_class() -> None:
    """An event or error class added to events.py or errors.py is public: it must be in their `__all__` and in
    the package's (the CI adapters read every event kind, and catch every error)."""
    events = {n for n, v in vars(dockyard.events).items()
              if inspect.isclass(v) and issubclass(v, dockyard.events.Event) and v.__module__ == "dockyard.events"}
    errors = {n for n, v in vars(dockyard.errors).items()
              if inspect.isclass(v) and issubclass(v, dockyard.errors.DockyardError)}
    assert events == set(EVENTS) and events <= set(dockyard.events.__all__)
    assert errors == set(ERRORS) and errors <= set(dockyard.errors.__all__)
    for module in (dockyard.events, dockyard.errors):
        assert all(hasattr(module, name) for name in module.__all__)
    assert "SourceLocation" in dockyard.errors.__all__


def test_importing_dockyard_imports_nothing_else() -> None:
    code = ("import json, sys, dockyard\n"
            "print(json.dumps(sorted(m for m in sys.modules\n"
            "                        if m.split('.')[0] in ('dockyard', 'rich', 'requests', 'typing'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                       text=True).stdout)
    assert loaded == ["dockyard", "dockyard.version"]


def test_build_failed_round_trips_through_json() -> None:
    error = dockyard.StepFailed("RUN exited with 1", hint="read its output",
                                location=dockyard.SourceLocation("Dockerfile", 3, 4), details="boom")
    event = dockyard.BuildFailed.from_error(error)
    assert (event.exit_code, event.error, event.message, event.file, event.line, event.end_line) == (
        5, "StepFailed", "RUN exited with 1", "Dockerfile", 3, 4)
    record = json.loads(json.dumps(event.to_json()))
    assert record["event"] == "build_failed" and record["hint"] == "read its output" and record["details"] == "boom"
    assert dockyard.events.event_from_json(record) == event
    internal = dockyard.BuildFailed.from_exception(ValueError("bad"))
    assert (internal.error, internal.exit_code, internal.message) == ("InternalError", 1, "ValueError: bad")


def test_the_api_page_shows_every_public_name() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    missing = [name for name in dockyard.__all__ if not re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", page)]
    assert not missing, f"docs/api.md does not mention {missing}"
