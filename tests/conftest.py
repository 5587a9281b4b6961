"""Shared fixtures: a real registry on loopback and base images the tests make themselves.

Nothing here reaches the internet: the registry is Debian's docker-registry on 127.0.0.1, and base images are
assembled from Debian's busybox-static by tests/support/images.py (independently of dockyard, so a bug in
dockyard cannot hide in its own test base).
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """A fresh dockyard cache for the session: the layer cache persists between builds, so steps cached by an
    earlier test run (or by the user's own builds) would otherwise not run, and tests read what RUN prints.
    Tests that give XDG_CACHE_HOME or --cache-dir themselves still get their own."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    from tests.support.registry import RegistryServer

    server = RegistryServer.start(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def busybox_base(registry, tmp_path_factory) -> str:
    """A busybox image (linux/amd64) pushed to the test registry; returns its reference."""
    from tests.support.images import push_busybox_base

    return push_busybox_base(registry.host, tmp_path_factory.mktemp("busybox-base"))


@pytest.fixture(scope="session")
def fidelity_base(registry, tmp_path_factory) -> str:
    """The busybox layer plus layers with special files, xattrs, whiteouts and replacements (see
    tests/support/images.py); returns its reference."""
    from tests.support.images import push_fidelity_base

    return push_fidelity_base(registry.host, tmp_path_factory.mktemp("fidelity-base"))
