"""dockyard: build container images from Dockerfiles without a daemon.

The public API is `build(options) -> BuildResult`; everything the CLI and the CI adapters do goes through it.
Imports are lazy so that `import dockyard` (and `dockyard --version`) stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "build", "BuildOptions", "OutputSpec"]


def __getattr__(name):
    if name == "build":
        from .builder import build

        return build
    if name in ("BuildOptions", "OutputSpec"):
        from . import options

        return getattr(options, name)
    raise AttributeError(name)
