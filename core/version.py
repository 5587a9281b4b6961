"""dockyard's version: a module of its own, so that what prints it (`--version`, report headers) imports nothing
else of dockyard's."""

__version__ = "0.1.0"
