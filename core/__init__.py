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
from types import ModuleType

from .version import __version__

# Each public name and the module (`_module`'s key) it is defined in.
_MODULE_OF = {
    "build": "api",
    "check": "api",
    **dict.fromkeys(["BuildOptions", "OutputSpec", "RegistryCache", "ReportSpec", "SecretSource", "SshSource"],
                    "options"),
    "NamedContext": "named_contexts",
    "parse_build_context": "named_contexts",
    "BuildResult": "builder",
    "Finding": "findings",
    "Severity": "findings",
    "Platform": "image_model",
    "Reference": "reference",
    "parse_reference": "reference",
    **dict.fromkeys(["Event", "Events", "BuildStarted", "StageStarted", "StepStarted", "StepLog", "StepFinished",
                     "TransferStarted", "TransferProgress", "TransferFinished", "ImagePushed", "Message",
                     "BuildFinished", "BuildFailed"], "events"),
    **dict.fromkeys(["DockyardError", "UsageError", "DockerfileError", "ContextError", "StepFailed", "RegistryError",
                     "AuthenticationError", "IsolationError", "OutputError", "ChecksFailed", "Interrupted",
                     "SourceLocation"], "errors"),
}

__all__ = [
    "__version__",
    # the two entry points
    "build", "check",
    # what a build is asked to do, and the value types of its fields
    "BuildOptions", "OutputSpec", "RegistryCache", "ReportSpec", "SecretSource", "SshSource", "NamedContext",
    "parse_build_context",
    # what a build makes, and what the checks find
    "BuildResult", "Finding", "Severity",
    # images
    "Platform", "Reference", "parse_reference",
    # events (dockyard.events)
    "Event", "Events", "BuildStarted", "StageStarted", "StepStarted", "StepLog", "StepFinished", "TransferStarted",
    "TransferProgress", "TransferFinished", "ImagePushed", "Message", "BuildFinished", "BuildFailed",
    # errors (dockyard.errors)
    "DockyardError", "UsageError", "DockerfileError", "ContextError", "StepFailed", "RegistryError",
    "AuthenticationError", "IsolationError", "OutputError", "ChecksFailed", "Interrupted", "SourceLocation",
    # the public modules
    "events", "errors",
]


def __getattr__(name: str) -> object:
    if name in ("events", "errors"):
        # Not `from . import events`: that looks the name up on this package first, which lands here again.
        return import_module(f".{name}", __name__)
    key = _MODULE_OF.get(name)
    if key is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_module(key), name)
    globals()[name] = value  # looked up once
    return value


def _module(key: str) -> ModuleType:
    """The module a public name is defined in, imported now (plain import statements, so that tools and the
    architecture test see what this package depends on)."""
    if key == "api":
        from . import api as module
    elif key == "options":
        from . import options as module
    elif key == "named_contexts":
        from . import named_contexts as module
    elif key == "builder":
        from . import builder as module
    elif key == "findings":
        from .diagnostics import model as module
    elif key == "image_model":
        from .image import model as module
    elif key == "reference":
        from .image import reference as module
    elif key == "events":
        from . import events as module
    elif key == "errors":
        from . import errors as module
    else:
        raise AssertionError(key)
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
