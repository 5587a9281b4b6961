"""Fixtures of the end-to-end tests that several modules share because they are costly to make."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def image_debian_repo(tmp_path_factory):
    """A loopback Debian repository of the packages the builder image installs (tests/support/builder_image.py)."""
    from tests.support.builder_image import debian_repository

    with debian_repository(tmp_path_factory.mktemp("debian-repo")) as url:
        yield url


@pytest.fixture(scope="session")
def builder_images(registry, image_debian_repo, tmp_path_factory):
    """dockyard's builder image, both targets, built once per session (tests/support/builder_image.py)."""
    from tests.support import podman
    from tests.support.builder_image import build_builder_images

    if podman.available() is not None:
        pytest.skip(str(podman.available()))
    return build_builder_images(registry.host, tmp_path_factory.mktemp("builder-image"), image_debian_repo)
