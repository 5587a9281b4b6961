"""index_assembly's merging rules on sources given as values (no registry: tests/e2e/test_manifest_cli.py pushes
and reads back through the real one)."""

from __future__ import annotations

import json

import pytest

from core.errors import UsageError
from core.events import Events, Message
from core.image.index import ATTESTATION_MANIFEST, REFERENCE_DIGEST, REFERENCE_TYPE, ImageIndex
from core.image.model import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Descriptor, Platform,
                              canonical_json, sha256_digest)
from core.image.reference import parse_reference
from core.index_assembly import (DESCRIPTOR_LEVEL, INDEX_LEVEL, IndexAnnotation, Source, assemble, config_platform,
                                 parse_index_annotations, source_reference)

HOST = "registry.example"


def digest(name: str) -> str:
    return sha256_digest(name.encode())


def image(name: str, platform: str, media_type: str = OCI_MANIFEST) -> Descriptor:
    p = Platform.parse(platform)
    fields = [("architecture", p.architecture), ("os", p.os)] + ([("variant", p.variant)] if p.variant else [])
    return Descriptor(media_type, digest(name), 100, platform=tuple(fields))


def attestation(name: str, subject: Descriptor) -> Descriptor:
    return Descriptor(OCI_MANIFEST, digest(name), 50, platform=(("architecture", "unknown"), ("os", "unknown")),
                      annotations=((REFERENCE_DIGEST, subject.digest), (REFERENCE_TYPE, ATTESTATION_MANIFEST)))


def manifest_source(repo: str, entry: Descriptor) -> Source:
    return Source(parse_reference(f"{HOST}/{repo}@{entry.digest}"), entry.digest, entry.media_type, b"{}", (entry,))


def index_source(repo: str, entries: list[Descriptor], annotations: dict[str, str] | None = None,
                 media_type: str = OCI_INDEX) -> Source:
    body = canonical_json({"schemaVersion": 2, "mediaType": media_type, "manifests": [e.to_json() for e in entries],
                           **({"annotations": annotations} if annotations else {})})
    index = ImageIndex.from_bytes(body)
    return Source(parse_reference(f"{HOST}/{repo}:1"), sha256_digest(body), media_type, body, index.manifests)


def test_images_become_one_entry_each_in_source_order_with_their_repositories():
    amd, arm = image("amd", "linux/amd64"), image("arm", "linux/arm64")
    assembled = assemble([manifest_source("src/a", amd), manifest_source("src/b", arm)])
    assert assembled.index.manifests == (amd, arm)
    assert assembled.media_type == OCI_INDEX
    assert assembled.body == assembled.index.to_bytes() and assembled.digest == sha256_digest(assembled.body)
    assert {d: r.name for d, r in assembled.origins} == {amd.digest: f"{HOST}/src/a", arm.digest: f"{HOST}/src/b"}


def test_two_images_of_one_platform_are_refused_naming_both():
    one, two = image("one", "linux/arm/v7"), image("two", "linux/arm/v7")
    with pytest.raises(UsageError) as caught:
        assemble([manifest_source("a", one), manifest_source("b", two)])
    assert "two sources give platform linux/arm/v7" in caught.value.message
    assert one.digest in caught.value.message and two.digest in caught.value.message


def test_variants_are_distinct_platforms_and_a_repeated_digest_is_one_entry():
    v6, v7 = image("v6", "linux/arm/v6"), image("v7", "linux/arm/v7")
    assembled = assemble([manifest_source("a", v6), manifest_source("a", v7), manifest_source("b", v7)])
    assert assembled.index.manifests == (v6, v7)


def test_an_index_source_brings_its_attestations_which_follow_the_images_in_their_subjects_order():
    amd, arm = image("amd", "linux/amd64"), image("arm", "linux/arm64")
    att_amd, att_arm = attestation("att-amd", amd), attestation("att-arm", arm)
    built = index_source("app", [arm, att_arm])  # one matrix job's output, with provenance
    other = index_source("app", [amd, att_amd])
    assembled = assemble([built, other])
    assert assembled.index.manifests == (arm, amd, att_arm, att_amd)


def test_append_replaces_a_platform_in_place_and_drops_the_replaced_images_attestation():
    amd, arm = image("amd", "linux/amd64"), image("arm", "linux/arm64")
    existing = index_source("app", [amd, arm, attestation("att-amd", amd), attestation("att-arm", arm)],
                            annotations={"org.opencontainers.image.version": "1"})
    new_amd = image("amd2", "linux/amd64")
    events: list[Message] = []
    assembled = assemble([manifest_source("app", new_amd)], existing=existing,
                         events=Events(lambda e: events.append(e) if isinstance(e, Message) else None))
    assert assembled.index.manifests == (new_amd, arm, attestation("att-arm", arm))
    assert assembled.index.annotations == (("org.opencontainers.image.version", "1"),)
    assert any("dropped attestation manifest " + digest("att-amd") in e.text for e in events)
    # The appended index's entries are in the target's repository already; new ones in their source's.
    assert dict(assembled.origins)[arm.digest].name == f"{HOST}/app"


def test_append_to_a_single_image_makes_an_index_of_both():
    amd, arm = image("amd", "linux/amd64"), image("arm", "linux/arm64")
    assembled = assemble([manifest_source("app", arm)], existing=manifest_source("app", amd))
    assert assembled.index.manifests == (amd, arm)


def test_a_single_index_source_without_annotations_is_a_carbon_copy():
    source = index_source("app", [image("amd", "linux/amd64"), image("arm", "linux/arm64")],
                          media_type=DOCKER_MANIFEST_LIST)
    pretty = json.dumps(json.loads(source.body), indent=3).encode()  # bytes as another tool wrote them
    source = Source(source.reference, sha256_digest(pretty), source.media_type, pretty, source.entries)
    assembled = assemble([source])
    assert assembled.body == pretty and assembled.digest == source.digest
    annotated = assemble([source], [IndexAnnotation(INDEX_LEVEL, "k", "v")])
    assert annotated.body != pretty and annotated.index.annotations == (("k", "v"),)


def test_docker_manifests_make_a_manifest_list_until_something_needs_annotations():
    amd = image("amd", "linux/amd64", DOCKER_MANIFEST)
    arm = image("arm", "linux/arm64", DOCKER_MANIFEST)
    sources = [manifest_source("a", amd), manifest_source("a", arm)]
    assert assemble(sources).media_type == DOCKER_MANIFEST_LIST
    assert assemble(sources, [IndexAnnotation(INDEX_LEVEL, "k", "v")]).media_type == OCI_INDEX
    mixed = [manifest_source("a", amd), manifest_source("a", image("oci", "linux/arm64"))]
    assert assemble(mixed).media_type == OCI_INDEX


def test_descriptor_annotations_go_to_the_named_platform_or_every_image():
    amd, arm = image("amd", "linux/amd64"), image("arm", "linux/arm64")
    att = attestation("att", amd)
    sources = [index_source("a", [amd, arm, att])]
    assembled = assemble(sources, parse_index_annotations(["manifest-descriptor[linux/arm64]:note=arm",
                                                           "manifest-descriptor:all=yes"]))
    by_digest = {d.digest: dict(d.annotations) for d in assembled.index.manifests}
    assert by_digest[arm.digest] == {"note": "arm", "all": "yes"}
    assert by_digest[amd.digest] == {"all": "yes"}
    assert by_digest[att.digest] == dict(att.annotations)
    with pytest.raises(UsageError, match="no image for platform linux/s390x"):
        assemble(sources, parse_index_annotations(["manifest-descriptor[linux/s390x]:k=v"]))


def test_annotation_syntax_as_imagetools_takes_it():
    assert parse_index_annotations(["a=1", "index:b=2=3", "index,manifest-descriptor[linux/arm/v7]:c="]) == (
        IndexAnnotation(INDEX_LEVEL, "a", "1"), IndexAnnotation(INDEX_LEVEL, "b", "2=3"),
        IndexAnnotation(INDEX_LEVEL, "c", ""),
        IndexAnnotation(DESCRIPTOR_LEVEL, "c", "", Platform("linux", "arm", "v7")))
    for bad, says in (("novalue", "expected [LEVEL:]KEY=VALUE"), ("=v", "expected"), ("manifest:k=v", "digests"),
                      ("index-descriptor:k=v", "index.json"), ("foo:k=v", "unknown level 'foo'"),
                      ("index[linux/amd64]:k=v", "an index has no platform"),
                      ("manifest-descriptor[a/b/c/d]:k=v", "invalid platform")):
        with pytest.raises(UsageError) as caught:
            parse_index_annotations([bad])
        assert says in caught.value.render(), bad


def test_a_config_gives_the_platform_imagetools_would_list():
    assert config_platform({"os": "linux", "architecture": "arm", "variant": "v7"}) == (
        ("architecture", "arm"), ("os", "linux"), ("variant", "v7"))
    assert config_platform({"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2227"}) == (
        ("architecture", "amd64"), ("os", "windows"), ("os.version", "10.0.20348.2227"))
    assert config_platform({"architecture": "amd64"}) is None


def test_a_bare_digest_source_is_in_the_first_targets_repository():
    targets = (parse_reference(f"{HOST}/team/app:1.0"), parse_reference(f"{HOST}/other:1"))
    bare = "sha256:" + "a" * 64
    assert str(source_reference(bare, targets)) == f"{HOST}/team/app@{bare}"
    assert str(source_reference(f"{HOST}/x@{bare}", targets)) == f"{HOST}/x@{bare}"
    with pytest.raises(UsageError, match="no -t"):
        source_reference(bare, ())


def test_one_index_source_with_two_entries_of_a_platform_is_taken_as_it_is():
    ltsc2019 = Descriptor(OCI_MANIFEST, digest("2019"), 100, platform=(
        ("architecture", "amd64"), ("os", "windows"), ("os.version", "10.0.17763.5329")))
    ltsc2022 = Descriptor(OCI_MANIFEST, digest("2022"), 100, platform=(
        ("architecture", "amd64"), ("os", "windows"), ("os.version", "10.0.20348.2227")))
    linux = image("linux", "linux/amd64")
    assembled = assemble([index_source("win", [ltsc2019, ltsc2022]), manifest_source("linux", linux)])
    assert assembled.index.manifests == (ltsc2019, ltsc2022, linux)
    with pytest.raises(UsageError, match="two sources give platform windows/amd64"):
        assemble([index_source("win", [ltsc2019]), index_source("win2", [ltsc2022])])
