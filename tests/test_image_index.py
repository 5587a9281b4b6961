"""The image index value (core/image/index.py): made from images, merged, read back, serialized canonically."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dockyard.image.blobs import BlobStore
from dockyard.image.index import (ATTESTATION_MANIFEST, REFERENCE_DIGEST, REFERENCE_TYPE, ImageIndex,
                                  descriptor_platform, image_descriptor, is_attestation, platform_json)
from dockyard.image.model import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Descriptor,
                                  Platform, sha256_digest)
from tests.support.images import one_layer_image


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "store")


def arm_v7(store: BlobStore):
    return one_layer_image(store, arch="arm").with_meta(variant="v7")


def attestation_for(digest: str) -> Descriptor:
    return Descriptor(OCI_MANIFEST, sha256_digest(digest.encode()), 100,
                      annotations=((REFERENCE_DIGEST, digest), (REFERENCE_TYPE, ATTESTATION_MANIFEST)),
                      platform=(("architecture", "unknown"), ("os", "unknown")))


def test_index_of_images_lists_each_platform_in_order(store):
    amd, arm, v7 = one_layer_image(store), one_layer_image(store, arch="arm64"), arm_v7(store)
    index = ImageIndex.of_images([amd, arm, v7], (("org.example.b", "2"), ("org.example.a", "1")))

    doc = json.loads(index.to_bytes())
    assert doc["mediaType"] == OCI_INDEX and doc["schemaVersion"] == 2
    assert [m["digest"] for m in doc["manifests"]] == [amd.digest, arm.digest, v7.digest]
    assert [m["size"] for m in doc["manifests"]] == [len(i.manifest_bytes()) for i in (amd, arm, v7)]
    assert doc["manifests"][2]["platform"] == {"architecture": "arm", "os": "linux", "variant": "v7"}
    assert doc["annotations"] == {"org.example.a": "1", "org.example.b": "2"}
    assert index.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "arm", "v7"))
    # The digest is of the canonical bytes: what a registry and a layout store.
    assert index.digest == sha256_digest(index.to_bytes()) and index.size == len(index.to_bytes())
    assert index.descriptor() == Descriptor(OCI_INDEX, index.digest, index.size)


def test_docker_manifests_make_a_manifest_list(store):
    images = [one_layer_image(store, manifest_type=DOCKER_MANIFEST),
              one_layer_image(store, arch="arm64", manifest_type=DOCKER_MANIFEST)]
    index = ImageIndex.of_images(images)
    assert index.media_type == DOCKER_MANIFEST_LIST
    assert {d.media_type for d in index.manifests} == {DOCKER_MANIFEST}
    assert "annotations" not in index.to_json()
    # One OCI manifest among them: the index is OCI's.
    assert ImageIndex.of_images(images + [one_layer_image(store, arch="s390x")]).media_type == OCI_INDEX


def test_for_platform_and_descriptor_platform(store):
    amd, v7 = one_layer_image(store), arm_v7(store)
    index = ImageIndex.of_images([amd, v7]).with_manifest(attestation_for(amd.digest))
    assert index.for_platform(Platform("linux", "arm", "v7")).digest == v7.digest
    assert index.for_platform(Platform("linux", "arm")).digest == v7.digest  # no variant asked: any variant
    assert index.for_platform(Platform("linux", "arm", "v6")) is None
    assert index.for_platform(Platform("linux", "arm64")) is None
    # The attestation entry (unknown/unknown) is no platform of the index.
    assert index.platforms == (Platform("linux", "amd64"), Platform("linux", "arm", "v7"))
    assert descriptor_platform(index.manifests[2]) is None and is_attestation(index.manifests[2])
    assert platform_json(Platform("linux", "arm64")) == (("architecture", "arm64"), ("os", "linux"))


def test_with_manifest_replaces_the_same_platform_where_it_stood(store):
    amd, arm, amd2 = one_layer_image(store), one_layer_image(store, arch="arm64"), one_layer_image(store)
    index = ImageIndex.of_images([amd, arm])
    merged = index.with_manifest(image_descriptor(amd2))
    assert [d.digest for d in merged.manifests] == [amd2.digest, arm.digest]
    assert [d.digest for d in index.manifests] == [amd.digest, arm.digest], "the original is unchanged"

    # Attestations: one per subject; a new one for the same subject replaces it, another subject's is added.
    first = merged.with_manifest(attestation_for(amd2.digest))
    again = first.with_manifest(replace(attestation_for(amd2.digest), size=5))
    assert len(again.manifests) == 3 and again.manifests[2].size == 5
    assert len(again.with_manifest(attestation_for(arm.digest)).manifests) == 4


def test_with_annotations_merges_and_sorts(store):
    index = ImageIndex.of_images([one_layer_image(store)], (("b", "1"),))
    updated = index.with_annotations({"a": "x", "b": "2"})
    assert updated.annotations == (("a", "x"), ("b", "2"))
    assert updated.digest != index.digest


def test_round_trip_from_bytes(store):
    index = ImageIndex.of_images([one_layer_image(store), arm_v7(store)], (("k", "v"),)).with_manifest(
        attestation_for("sha256:" + "1" * 64))
    again = ImageIndex.from_bytes(index.to_bytes())
    assert again == index and again.digest == index.digest
    # An index written by another tool with whitespace and other key order reads the same.
    pretty = json.dumps(json.loads(index.to_bytes()), indent=3).encode()
    assert ImageIndex.from_bytes(pretty) == index


@pytest.mark.parametrize("body, message", [
    (b"not json", "not JSON"),
    (b"[]", "not an image index"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}}).encode(), "not an image index"),
    (json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST}]}).encode(), "not a valid descriptor"),
])
def test_from_bytes_refuses_what_is_no_index(body, message):
    with pytest.raises(ValueError, match=message):
        ImageIndex.from_bytes(body)
