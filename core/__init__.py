"""dockyard: build container images from Dockerfiles without a daemon.

The public API is what this package exports (`__all__`): `build(options, *, events=None) -> BuildResult` and
`check(options) -> list[Finding]`, the option types that fill `BuildOptions`, the events a build reports, the
errors it raises, and the image types `Platform`, `Reference` and `parse_reference`. The modules `dockyard.events`
and `dockyard.errors` are public too. Every other module is internal: its names may change in any release.
The `dockyard` command line and the CI adapters go through these names only (docs/api.md).

Imports are lazy, so that `import dockyard` (and `dockyard --version`) stay fast: a name's module is imported
when the name is first used.
"""

from __future__ import annotations

from importlib import import_module

from .version import __version__

# typing.TYPE_CHECKING without importing typing, which `import dockyard` would pay for (type checkers know it).
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on first use (__getattr__)
    from . import errors, events
    from .api import build, check
    from .result import BuildResult
    from .diagnostics.model import Finding, Severity
    from .errors import (AuthenticationError, ChecksFailed, ContextError, DockerfileError, DockyardError, Interrupted,
                         IsolationError, LayerError, OutputError, RegistryError, SigningError, SourceLocation,
                         StepFailed, UsageError, VulnerabilitiesFound, VulnerabilityDatabaseError)
    from .events import (BuildFailed, BuildFinished, BuildStarted, Event, Events, ImagePushed, Message, ScanFinished,
                         StageStarted, StepFinished, StepLog, StepStarted, TransferFinished, TransferProgress,
                         TransferStarted)
    from .image.model import Platform
    from .files import replace_file
    from .image.reference import Reference, is_loopback_registry, parse_reference
    from .progress import PlainRenderer, format_duration, format_size
    from .registry.credentials import credential_source, read_docker_config
    from .named_contexts import NamedContext, parse_build_context
    from .options import Annotation, BuildOptions, OutputSpec, RegistryCache, ReportSpec, SecretSource, SshSource
    from .signing.spec import SigningSpec
    from .scan.model import ScanReport, Vulnerability, VulnSeverity, report_from_json, report_to_json
    from .scan.reports import render_scan

# Each public name and the module (relative to this package) it is defined in.
_MODULE_OF = {
    "build": ".api",
    "check": ".api",
    **dict.fromkeys(["Annotation", "BuildOptions", "OutputSpec", "RegistryCache", "ReportSpec", "SecretSource",
                     "SshSource"], ".options"),
    "NamedContext": ".named_contexts",
    "SigningSpec": ".signing.spec",
    "parse_build_context": ".named_contexts",
    "BuildResult": ".result",
    "Finding": ".diagnostics.model",
    "Severity": ".diagnostics.model",
    "Platform": ".image.model",
    "Reference": ".image.reference",
    "parse_reference": ".image.reference",
    "is_loopback_registry": ".image.reference",
    "replace_file": ".files",
    **dict.fromkeys(["ScanReport", "Vulnerability", "VulnSeverity", "report_from_json", "report_to_json"],
                    ".scan.model"),
    "render_scan": ".scan.reports",
    **dict.fromkeys(["PlainRenderer", "format_duration", "format_size"], ".progress"),
    **dict.fromkeys(["credential_source", "read_docker_config"], ".registry.credentials"),
    **dict.fromkeys(["Event", "Events", "BuildStarted", "StageStarted", "StepStarted", "StepLog", "StepFinished",
                     "TransferStarted", "TransferProgress", "TransferFinished", "ImagePushed", "Message",
                     "BuildFinished", "BuildFailed", "ScanFinished"], ".events"),
    **dict.fromkeys(["DockyardError", "UsageError", "DockerfileError", "ContextError", "StepFailed", "RegistryError",
                     "AuthenticationError", "IsolationError", "OutputError", "ChecksFailed", "Interrupted",
                     "LayerError", "SigningError", "SourceLocation", "VulnerabilitiesFound",
                     "VulnerabilityDatabaseError"], ".errors"),
}

__all__ = [
    "__version__",
    # the two entry points
    "build", "check",
    # what a build is asked to do, and the value types of its fields
    "BuildOptions", "Annotation", "OutputSpec", "RegistryCache", "ReportSpec", "SecretSource", "SshSource",
    "NamedContext", "parse_build_context", "SigningSpec",
    # what a build makes, and what the checks find
    "BuildResult", "Finding", "Severity",
    # images
    "Platform", "Reference", "parse_reference", "is_loopback_registry",
    # a result file written whole or not at all (the CI adapters' reports)
    "replace_file",
    # registry credentials as a build finds them (for a CI job's own login)
    "credential_source", "read_docker_config",
    # events rendered as `--progress plain` writes them
    "PlainRenderer", "format_duration", "format_size",
    # events (dockyard.events)
    "Event", "Events", "BuildStarted", "StageStarted", "StepStarted", "StepLog", "StepFinished", "TransferStarted",
    "TransferProgress", "TransferFinished", "ImagePushed", "Message", "BuildFinished", "BuildFailed", "ScanFinished",
    # errors (dockyard.errors)
    "DockyardError", "UsageError", "DockerfileError", "ContextError", "StepFailed", "RegistryError",
    "AuthenticationError", "IsolationError", "OutputError", "ChecksFailed", "Interrupted", "LayerError",
    "SigningError", "SourceLocation", "VulnerabilitiesFound", "VulnerabilityDatabaseError",
    # a vulnerability scan's reports, their JSON form (the metadata file's `dockyard.scan`) and their renderers
    "ScanReport", "Vulnerability", "VulnSeverity", "report_from_json", "report_to_json", "render_scan",
    # the public modules
    "events", "errors",
]


def __getattr__(name: str) -> object:
    if name in ("events", "errors"):
        return import_module(f".{name}", __name__)
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
