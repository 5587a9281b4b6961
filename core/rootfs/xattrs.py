"""The extended attributes of a file that belong to the image (layers, COPY, cache keys), in a fixed order.

overlayfs bookkeeping (trusted.overlay.*, or user.overlay.* for mounts made in a user namespace), dockyard's
own (user.dockyard.*, see ownership.py) and SELinux labels belong to this machine, not to the image;
listxattr's order is the filesystem's, and nothing derived from it may depend on that.
"""

from __future__ import annotations

import os


def image_xattrs(path: str | int) -> dict[str, bytes]:
    """Name -> value of the image xattrs of `path` (not following a symlink) or of an open descriptor, sorted by
    name; {} if it has none or the filesystem has no xattrs."""
    nofollow = {"follow_symlinks": False} if isinstance(path, str) else {}
    try:
        names = os.listxattr(path, **nofollow)
    except OSError:
        return {}
    found: dict[str, bytes] = {}
    for name in sorted(names):
        if name.startswith(("trusted.overlay.", "user.overlay.", "user.dockyard.")) or name == "security.selinux":
            continue
        try:
            found[name] = os.getxattr(path, name, **nofollow)
        except OSError:
            continue  # removed meanwhile, or not readable: as if absent
    return found
