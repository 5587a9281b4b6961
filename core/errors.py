"""Every failure a user can cause or meet, as a typed error with an exit code and a location.

The CLI and every adapter render these; nothing user-facing should ever escape as a traceback. Each class
maps to one documented exit code (see `dockyard build --help` and docs/exit-codes.md). A public module of
dockyard's API: callers of `dockyard.build` catch these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EXIT_CODES", "AuthenticationError", "ChecksFailed", "ContextError", "DockerfileError", "DockyardError",
           "Interrupted", "IsolationError", "LayerError", "OutputError", "RegistryError", "SigningError",
           "VulnerabilitiesFound", "VulnerabilityDatabaseError",
           "SourceLocation", "StepFailed", "UsageError"]


@dataclass(frozen=True)
class SourceLocation:
    """A range of lines in a Dockerfile (1-based, inclusive)."""

    file: str
    start_line: int
    end_line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.start_line}"


class DockyardError(Exception):
    """Base class. `message` says what went wrong, `hint` what to do about it."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None, location: SourceLocation | None = None,
                 subject: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location
        # What the error is about when it is not a Dockerfile line: an image reference, a blob, a file.
        self.subject = subject
        # Extra text shown after the message (e.g. the last lines of a failed RUN's output).
        self.details = details

    def render(self) -> str:
        """The one-paragraph text the CLI prints."""
        head = self.message
        if self.location is not None:
            head = f"{self.location}: {head}"
        elif self.subject:
            head = f"{self.subject}: {head}"
        parts = [head]
        if self.details:
            parts.append(self.details.rstrip())
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


class UsageError(DockyardError):
    """Bad command-line options or API arguments."""

    exit_code = 2


class DockerfileError(DockyardError):
    """The Dockerfile cannot be parsed or does not make sense (unknown instruction, bad flag, bad stage)."""

    exit_code = 3

    def __init__(self, message: str, *, rule: str | None = None, **details: Any):
        super().__init__(message, **details)
        # The build check's name when BuildKit reports this problem as one (e.g. DuplicateStageName), so the
        # diagnostics report it under the name users know and can look up.
        self.rule = rule


class ContextError(DockyardError):
    """A file the build reads is missing or unreadable (COPY source, Dockerfile, .dockerignore)."""

    exit_code = 4


class StepFailed(DockyardError):
    """A build step ran and failed (RUN exited non-zero, COPY could not write its destination)."""

    exit_code = 5


class RegistryError(DockyardError):
    """A registry could not be reached, refused us, or sent something wrong."""

    exit_code = 6


class AuthenticationError(RegistryError):
    """A registry refused our credentials (401/403)."""

    exit_code = 7


class LayerError(DockyardError):
    """A layer cannot be unpacked as it is: not a valid tar, an entry outside the image root, a hard link to
    nothing, or content that does not match the diff_id the image claims."""

    # RegistryError's code, which a bad layer has always exited with (most come from a registry; tests and users'
    # scripts rely on it). Not a RegistryError itself, so that handlers of registry failures leave it alone.
    exit_code = RegistryError.exit_code


class IsolationError(DockyardError):
    """This environment does not allow the isolation a build needs (no root, no namespaces, no overlayfs), or
    cannot run a platform's RUN steps (no emulator for its CPU)."""

    exit_code = 8


class OutputError(DockyardError):
    """An output (OCI layout, docker tarball, digest/metadata file) could not be written."""

    exit_code = 9


class ChecksFailed(DockyardError):
    """Build checks (`dockyard lint`, `dockyard build --check`) found problems at or above --fail-on."""

    exit_code = 10


class SigningError(DockyardError):
    """The image could not be signed: the key is missing, unreadable or not usable, its passphrase is wrong, or
    the registry refused the signature. Raised before any tag is moved, so no tag names an unsigned image."""

    exit_code = 11


class VulnerabilitiesFound(DockyardError):
    """The image's vulnerability scan found vulnerabilities at or above --fail-on-vuln. `reports` are the scan's
    ScanReports (core/scan/model.py), one per platform, so that a caller can still report what was found."""

    exit_code = 12

    def __init__(self, message: str, *, reports: tuple[Any, ...] = (), **details: Any):
        super().__init__(message, **details)
        self.reports = reports


class VulnerabilityDatabaseError(DockyardError):
    """No vulnerability database to scan with (none given, none downloadable, none cached), or a broken one."""

    exit_code = 13


class Interrupted(DockyardError):
    exit_code = 130


EXIT_CODES: list[tuple[int, str]] = [
    (0, "success"),
    (1, "internal error (a bug: please report it with the output of --progress=plain)"),
    (UsageError.exit_code, "bad command-line options"),
    (DockerfileError.exit_code, "the Dockerfile is invalid (syntax, unknown instruction, bad flag, unknown stage)"),
    (ContextError.exit_code, "a file the build reads is missing (COPY/ADD source, Dockerfile)"),
    (StepFailed.exit_code, "a build step failed (RUN exited non-zero, a COPY could not be done)"),
    (RegistryError.exit_code, "a registry was unreachable or answered with an error (pull or push)"),
    (AuthenticationError.exit_code, "a registry refused the credentials"),
    (IsolationError.exit_code, "this environment lacks the privileges the build needs, or an emulator for a "
                                "platform's CPU (RUN for linux/arm64 on x86-64)"),
    (OutputError.exit_code, "an output could not be written"),
    (ChecksFailed.exit_code, "checks found problems at or above --fail-on (dockyard lint, build --check)"),
    (SigningError.exit_code, "signing failed (key, passphrase, or the registry refused the signature): the image "
                             "was pushed by digest only, no tag was moved"),
    (VulnerabilitiesFound.exit_code, "the vulnerability scan found vulnerabilities at or above --fail-on-vuln: "
                                     "with a build, nothing was pushed or written"),
    (VulnerabilityDatabaseError.exit_code, "no usable vulnerability database (none given with --vuln-db, none "
                                           "downloadable, none cached), or a broken one"),
    (Interrupted.exit_code, "interrupted (SIGINT; 143 for SIGTERM, 129 for SIGHUP): the RUN in progress was killed "
                            "and the work directory removed"),
]
