"""binfmt_misc registrations the emulation tests need, made as dockyard makes them (isolation/emulation.py:
Debian's qemu-user-static definitions, with the F flag), so that the namespaces mode's builds and the buildah
oracle can run foreign programs.

Registration is global to the machine: an entry already registered (by another test, another build, the
host's own setup) is used as it is, and nothing is ever unregistered (others may be using it).
"""

from __future__ import annotations

from dockyard.errors import IsolationError
from dockyard.events import NULL_EVENTS
from dockyard.image.model import Platform
from dockyard.isolation import emulation


def ensure_registered(platforms: tuple[str, ...]) -> str | None:
    """Registers the emulators `platforms` need where none serves yet; None when every one runs here through
    binfmt_misc, else why not (for a skip)."""
    try:
        emulation.require_emulation([Platform.parse(p) for p in platforms], "namespaces", events=NULL_EVENTS)
    except IsolationError as exc:
        return exc.render()
    return None
