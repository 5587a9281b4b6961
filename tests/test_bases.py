"""Stage bases (core/bases.py): a registry image is pulled once per reference and platform and shared by every
stage, COPY --from and named context naming it; its key and digest come from the manifest it resolved to; a
--from that is no reference is a Dockerfile error at the instruction. Against the test registry on loopback."""

from __future__ import annotations

import pytest

from dockyard.bases import BaseResolver, base_digest, parse_platform
from dockyard.cache.layers import LayerCache
from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.errors import DockerfileError, UsageError
from dockyard.image.blobs import BlobStore
from dockyard.image.model import Platform
from dockyard.outputs import CachedLayers
from dockyard.plan import StagePlan
from dockyard.registry.client import RegistryClient
from dockyard.registry.routing import Routes
from dockyard.rootfs import Workspace

AMD64 = Platform.parse("linux/amd64")


def _resolver(tmp_path, epoch: int | None = None) -> BaseResolver:
    client = RegistryClient(environ={})
    store = BlobStore(tmp_path / "store")
    return BaseResolver(client=lambda: client, routes=Routes.parse(), store=store,
                        workspace=Workspace(tmp_path / "work"), layer_cache=LayerCache(tmp_path / "layers"),
                        layers=CachedLayers(lambda: client, store),
                        compression="gzip", compression_level=None, source_date_epoch=epoch)


def test_an_image_is_pulled_once_per_reference_and_platform(busybox_base, tmp_path):
    resolver = _resolver(tmp_path)
    image, rootfs = resolver.pull(busybox_base, AMD64)
    assert resolver.pull(busybox_base, AMD64) == (image, rootfs)
    assert resolver.pull(busybox_base, AMD64)[1] is rootfs  # the same root: unpacked at most once
    annotations = dict(image.annotations)
    assert annotations["org.opencontainers.image.base.name"] == busybox_base
    assert base_digest(image).startswith("sha256:")
    assert rootfs.pending and len(rootfs.pending) == len(image.layers)  # nothing unpacked yet
    store = BlobStore(tmp_path / "store")  # the resolver's
    assert not any(store.has(layer.digest) for layer in image.layers)  # nor downloaded: a push mounts them


def test_copy_from_an_image_gets_its_manifest_digest_and_root(busybox_base, tmp_path):
    resolver = _resolver(tmp_path)
    inst = parse_dockerfile(f"FROM scratch\nCOPY --from={busybox_base} /bin/sh /sh\n", "Dockerfile") \
        .stages[0].instructions[0]
    image, rootfs = resolver.pull(busybox_base, AMD64)
    assert resolver.image_digest(busybox_base, inst, AMD64) == base_digest(image)
    assert resolver.image_rootfs(busybox_base, inst, AMD64) is rootfs
    with pytest.raises(DockerfileError) as caught:
        resolver.image_digest("Not A Reference", inst, AMD64)
    assert caught.value.message.startswith("--from=Not A Reference is neither a stage nor an image reference")
    assert caught.value.location == inst.location


def test_the_base_key_says_which_image_and_the_build_wide_layer_settings(busybox_base, tmp_path):
    dockerfile = parse_dockerfile(f"FROM {busybox_base}\nFROM scratch\n", "Dockerfile")
    pulled, scratch = (StagePlan(stage, None, text, None)
                       for stage, text in zip(dockerfile.stages, (busybox_base, "scratch"), strict=True))
    plain = _resolver(tmp_path / "plain")
    pinned = _resolver(tmp_path / "pinned", epoch=0)
    keys = {plain.stage_base(pulled, AMD64, {}, None)[2], plain.stage_base(scratch, AMD64, {}, None)[2],
            pinned.stage_base(pulled, AMD64, {}, None)[2], pinned.stage_base(scratch, AMD64, {}, None)[2],
            plain.stage_base(scratch, Platform.parse("linux/arm64"), {}, None)[2]}
    assert len(keys) == 5
    image = plain.stage_base(scratch, Platform.parse("linux/arm64/v8"), {}, None)[0]
    assert (image.platform.architecture, image.platform.variant) == ("arm64", "v8")


def test_a_bad_platform_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_platform("linux/")


def test_the_base_key_has_the_stage_platform_not_the_target(registry, tmp_path):
    """A stage FROM a multi-platform image has a key per target platform (each its own manifest); a stage
    FROM --platform=$BUILDPLATFORM has one key, whatever the target: what lets a build of several platforms
    build it once."""
    from tests.support.images import push_multiplatform_base

    base = push_multiplatform_base(registry.host, tmp_path / "base")
    text = f"FROM {base}\nFROM --platform=linux/amd64 {base}\n"
    per_target, build_platform = (StagePlan(stage, None, base, platform) for stage, platform in
                                  zip(parse_dockerfile(text, "Dockerfile").stages, (None, "linux/amd64"), strict=True))
    resolver = _resolver(tmp_path)
    arm64 = Platform.parse("linux/arm64")
    assert resolver.stage_base(per_target, AMD64, {}, None)[2] != resolver.stage_base(per_target, arm64, {}, None)[2]
    assert resolver.stage_base(build_platform, AMD64, {}, None)[2] == \
        resolver.stage_base(build_platform, arm64, {}, None)[2]
    assert resolver.stage_base(build_platform, arm64, {}, None)[0].platform.architecture == "amd64"
