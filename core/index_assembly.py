"""`dockyard manifest create`: images already in registries assembled into one image index, by digest.

The distributed path of multi-platform builds: each platform is built and pushed by digest on a runner of its
own, and this puts their manifests in one index (as `docker buildx imagetools create` does):

* a source that is an image manifest becomes one entry, its platform read from its config;
* a source that is an index contributes all its entries, attestation manifests included (they name the
  platform manifest they describe, and stay in the index as long as it does);
* two sources giving the same platform are an error (an index holds one image per platform); with
  `--append` the index (or single manifest) already at the first target is the starting point, and a source's
  platform replaces the entry it had there;
* the index is an OCI image index, or a Docker manifest list when every entry is a Docker manifest and
  nothing asks for annotations (a manifest list has none);
* a single index as the only source, without annotations, is copied as it is (its digest stays the same).

Pushing copies each entry into every target repository that lacks it (registry/copy.py), then puts the index
by digest everywhere, and moves the tags last: a failure on the way leaves every tag where it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import RegistryError, UsageError
from .events import Events, ImagePushed
from .image.blobs import BlobStore
from .image.index import REFERENCE_DIGEST, ImageIndex, descriptor_platform, is_attestation
from .image.model import (DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEX_TYPES, MANIFEST_TYPES,
                          OCI_CONFIG, OCI_INDEX, Descriptor, Platform, sha256_digest)
from .image.reference import Reference, parse_reference
from .registry.client import SCHEMA1_TYPES, RegistryClient
from .registry.copy import copy_manifest, json_object, manifest_exists, repository_of

if TYPE_CHECKING:
    from .signing.sign import Signer

INDEX_LEVEL = "index"
DESCRIPTOR_LEVEL = "manifest-descriptor"
_LEVEL_RE = re.compile(r"^([a-z-]+)(?:\[([A-Za-z0-9_/.-]+)\])?$")
_DOCKER_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)


# --- annotations -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexAnnotation:
    """One `--annotation`: on the index itself, or on its entries' descriptors (those of `platform`, or all)."""

    level: str  # INDEX_LEVEL or DESCRIPTOR_LEVEL
    key: str
    value: str
    platform: Platform | None = None


def parse_index_annotations(items: Sequence[str]) -> tuple[IndexAnnotation, ...]:
    """`--annotation [LEVELS:]KEY=VALUE` as buildx's imagetools takes it: LEVELS is a comma list of `index` (the
    default) and `manifest-descriptor[OS/ARCH[/VARIANT]]`. `manifest:` is refused: an annotation in a source's
    manifest would change its digest, which is what the index points at."""
    parsed: list[IndexAnnotation] = []
    for item in items:
        head, eq, value = item.partition("=")
        levels, colon, key = head.partition(":")
        if not colon:
            levels, key = INDEX_LEVEL, head
        if not eq or not key:
            raise UsageError(f"invalid --annotation {item!r}: expected [LEVEL:]KEY=VALUE",
                             hint="e.g. --annotation index:org.opencontainers.image.description=My app")
        for level_text in levels.split(","):
            match = _LEVEL_RE.match(level_text)
            level, platform_text = (match.group(1), match.group(2)) if match else (level_text, None)
            if level in ("manifest", "index-descriptor"):
                why = ("annotations of the images themselves are set when they are built (dockyard build "
                       "--annotation manifest:KEY=VALUE): adding one here would change their digests"
                       if level == "manifest" else
                       "an index-descriptor annotation belongs to an OCI layout's index.json, not to a registry")
                raise UsageError(f"invalid --annotation {item!r}: {level!r} annotations cannot be added by "
                                 f"manifest create", hint=why)
            if match is None or level not in (INDEX_LEVEL, DESCRIPTOR_LEVEL):
                raise UsageError(f"invalid --annotation {item!r}: unknown level {level_text!r}",
                                 hint="use index:KEY=VALUE (the default) or manifest-descriptor[PLATFORM]:KEY=VALUE")
            platform = None
            if platform_text:
                if level == INDEX_LEVEL:
                    raise UsageError(f"invalid --annotation {item!r}: an index has no platform",
                                     hint="name a platform only for manifest-descriptor annotations")
                try:
                    platform = Platform.parse(platform_text)
                except ValueError as exc:
                    raise UsageError(f"invalid --annotation {item!r}: {exc}") from None
            parsed.append(IndexAnnotation(level, key, value, platform))
    return tuple(parsed)


# --- sources -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """A manifest or index read from a registry, and the index entries it contributes."""

    reference: Reference  # as given
    digest: str
    media_type: str
    body: bytes = field(repr=False)  # the exact bytes (a carbon copy pushes these)
    entries: tuple[Descriptor, ...]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def repository(self) -> Reference:
        return repository_of(self.reference)


def read_source(client: RegistryClient, ref: Reference, store: BlobStore) -> Source:
    """Read `ref` (by tag or digest): an index gives its entries, an image manifest one entry whose platform
    is its config's. Anything else (an artifact, a schema 1 manifest) is an error naming it."""
    body, media_type, digest = client.get_manifest(ref)
    if media_type in SCHEMA1_TYPES:
        raise RegistryError(f"{ref} is a Docker schema 1 manifest, which an index cannot list",
                            hint="re-push the image with a current tool (docker, skopeo, dockyard): they write "
                                 "schema 2 or OCI manifests")
    if media_type in INDEX_TYPES:
        try:
            index = ImageIndex.from_bytes(body)
        except ValueError as exc:
            raise RegistryError(f"the index {ref} ({digest}) is malformed: {exc}") from None
        return Source(ref, digest, media_type, body, index.manifests)
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{ref} is not a container image: its manifest has media type {media_type!r}",
                            hint="an index lists images (OCI or Docker schema 2 manifests, or other indexes)")
    doc = json_object(body, f"the manifest of {ref}")
    config = doc.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise RegistryError(f"the manifest of {ref} ({digest}) is malformed: it has no config")
    if config.get("mediaType") not in (OCI_CONFIG, DOCKER_CONFIG):
        raise RegistryError(f"{ref} is not a container image: its config has media type "
                            f"{config.get('mediaType')!r}",
                            hint="it may be an artifact (a signature, a helm chart, an SBOM): an index of "
                                 "platforms lists images")
    client.fetch_blob(repository_of(ref), config["digest"], store, config.get("size"))
    image_config = json_object(store.read_bytes(config["digest"]), f"the config of {ref}")
    platform = config_platform(image_config)
    if platform is None:
        raise RegistryError(f"the config of {ref} ({config['digest']}) names no os and architecture, so it has "
                            "no platform to list it under", hint="rebuild the image with a current builder")
    return Source(ref, digest, media_type, body, (Descriptor(media_type, digest, len(body), platform=platform),))


def config_platform(config: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """An index entry's `platform` from an image config (architecture, os, variant, os.version), as
    imagetools fills it in for a single-platform source."""
    if not isinstance(config.get("os"), str) or not isinstance(config.get("architecture"), str) \
            or not config["os"] or not config["architecture"]:
        return None
    fields = [("architecture", config["architecture"]), ("os", config["os"])]
    for key in ("os.version", "variant"):
        if isinstance(config.get(key), str) and config[key]:
            fields.append((key, config[key]))
    return tuple(fields)


# --- the index ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AssembledIndex:
    """The index to push: its exact bytes (a carbon copy keeps its source's), and each entry's repository."""

    index: ImageIndex
    body: bytes = field(repr=False)
    # entry digest → the repository that holds it (a source's, or the appended target's)
    origins: tuple[tuple[str, Reference], ...] = ()

    @property
    def digest(self) -> str:
        return sha256_digest(self.body)

    @property
    def media_type(self) -> str:
        return self.index.media_type


def assemble(sources: Sequence[Source], annotations: Sequence[IndexAnnotation] = (), *,
             existing: Source | None = None, events: Events | None = None) -> AssembledIndex:
    """The index of `sources` (merged into `existing` when appending), with `annotations`."""
    origins: dict[str, Reference] = {}
    if existing is not None:
        origins.update((d.digest, existing.repository) for d in existing.entries)
    for source in sources:
        for descriptor in source.entries:
            origins.setdefault(descriptor.digest, source.repository)
    if existing is None and len(sources) == 1 and sources[0].is_index and not annotations:
        index = ImageIndex.from_bytes(sources[0].body)
        return AssembledIndex(index, sources[0].body, tuple(origins.items()))

    new = _new_entries(sources)
    if existing is None:
        merged = ImageIndex(tuple(new))
    else:
        merged = ImageIndex.from_bytes(existing.body) if existing.is_index else ImageIndex(existing.entries)
        for descriptor in new:
            if descriptor.digest in {d.digest for d in merged.manifests} and _slot(descriptor) is None:
                continue  # an entry without a platform that is there already
            merged = merged.with_manifest(descriptor)  # a platform it had is replaced where it stood
    entries = _with_attestations_last(merged.manifests, events)
    entries = _annotate_entries(entries, [a for a in annotations if a.level == DESCRIPTOR_LEVEL])
    index_annotations = dict(merged.annotations) | {a.key: a.value for a in annotations if a.level == INDEX_LEVEL}
    index = ImageIndex(entries, tuple(sorted(index_annotations.items())), _media_type(entries, index_annotations,
                                                                                       events))
    return AssembledIndex(index, index.to_bytes(), tuple(origins.items()))


def _slot(descriptor: Descriptor) -> str | None:
    """The platform an image entry occupies (os/architecture/variant: what ImageIndex.with_manifest replaces)."""
    platform = descriptor_platform(descriptor)
    return None if is_attestation(descriptor) or platform is None else str(platform)


def _new_entries(sources: Sequence[Source]) -> list[Descriptor]:
    """The sources' entries in order: one per digest (a digest given twice merges its annotations, as
    imagetools does), and an error for two sources giving images of one platform (one index source may list
    several, e.g. Windows images of several os.versions: it is taken as it is)."""
    entries: dict[str, Descriptor] = {}
    claimed: dict[str, tuple[str, Source]] = {}
    for source in sources:
        for descriptor in source.entries:
            seen = entries.get(descriptor.digest)
            if seen is not None:
                merged = dict(seen.annotations) | dict(descriptor.annotations)
                entries[descriptor.digest] = Descriptor(seen.media_type, seen.digest, seen.size,
                                                        tuple(sorted(merged.items())),
                                                        descriptor.platform or seen.platform)
                continue
            slot = _slot(descriptor)
            if slot is not None and slot in claimed and claimed[slot][1] is not source:
                other_digest, other = claimed[slot]
                platform = descriptor_platform(descriptor)
                raise UsageError(
                    f"two sources give platform {platform}: {other.reference} ({other_digest}) and "
                    f"{source.reference} ({descriptor.digest}); an index holds one image per platform",
                    hint="drop one of them; to replace a platform in an existing index, name the index as the "
                         "first -t with --append and give only the new image")
            if slot is not None:
                claimed[slot] = (descriptor.digest, source)
            entries[descriptor.digest] = descriptor
    return list(entries.values())


def _with_attestations_last(entries: Sequence[Descriptor], events: Events | None) -> tuple[Descriptor, ...]:
    """Image entries in order, then the attestation manifests in their subjects' order (as BuildKit lays an
    index out). An attestation whose image left the index (a replaced platform's) leaves with it."""
    images = [d for d in entries if not is_attestation(d)]
    position = {d.digest: i for i, d in enumerate(images)}
    attestations = []
    for descriptor in entries:
        if not is_attestation(descriptor):
            continue
        subject = dict(descriptor.annotations).get(REFERENCE_DIGEST)
        if subject is not None and subject not in position:
            if events is not None:
                events.info(f"dropped attestation manifest {descriptor.digest}: the image it describes "
                            f"({subject}) is no longer in the index")
            continue
        attestations.append(descriptor)
    attestations.sort(key=lambda d: position.get(dict(d.annotations).get(REFERENCE_DIGEST, ""), len(images)))
    return tuple(images) + tuple(attestations)


def _annotate_entries(entries: tuple[Descriptor, ...],
                      annotations: Sequence[IndexAnnotation]) -> tuple[Descriptor, ...]:
    if not annotations:
        return entries
    out = list(entries)
    for annotation in annotations:
        matched = False
        for i, descriptor in enumerate(out):
            if is_attestation(descriptor) or descriptor_platform(descriptor) is None:
                continue
            if annotation.platform is not None and not _same_platform(annotation.platform, descriptor):
                continue
            matched = True
            merged = dict(descriptor.annotations) | {annotation.key: annotation.value}
            out[i] = Descriptor(descriptor.media_type, descriptor.digest, descriptor.size,
                                tuple(sorted(merged.items())), descriptor.platform)
        if not matched:
            where = f"platform {annotation.platform}" if annotation.platform else "any platform"
            raise UsageError(f"--annotation {DESCRIPTOR_LEVEL}: the index has no image for {where}",
                             hint="its platforms: " + ", ".join(
                                 str(descriptor_platform(d)) for d in out
                                 if not is_attestation(d) and descriptor_platform(d) is not None))
    return tuple(out)


def _same_platform(platform: Platform, descriptor: Descriptor) -> bool:
    found = descriptor_platform(descriptor)
    return found is not None and (found.os, found.architecture, found.variant or None) == (
        platform.os, platform.architecture, platform.variant or None)


def _media_type(entries: Sequence[Descriptor], annotations: dict[str, str], events: Events | None) -> str:
    """A Docker manifest list when it can be one (every entry a Docker manifest, no annotations anywhere),
    else an OCI index, which may list Docker manifests too (imagetools does the same for mixed sources)."""
    docker = bool(entries) and all(d.media_type in _DOCKER_TYPES for d in entries)
    if not docker:
        return OCI_INDEX
    if annotations or any(d.annotations for d in entries):
        if events is not None:
            events.info("the sources are Docker manifests, but a Docker manifest list cannot carry annotations: "
                        "writing an OCI image index that lists them")
        return OCI_INDEX
    return DOCKER_MANIFEST_LIST


# --- the command -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateRequest:
    sources: tuple[Reference, ...]
    targets: tuple[Reference, ...]
    append: bool = False
    annotations: tuple[IndexAnnotation, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class Created:
    assembled: AssembledIndex
    pushed: tuple[str, ...] = ()  # every reference the index was put under, tags last
    signatures: tuple[dict[str, str], ...] = ()  # --sign: each signature stored (signing/sign.py's Signature)

    @property
    def digest(self) -> str:
        return self.assembled.digest


_BARE_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def source_reference(text: str, targets: Sequence[Reference]) -> Reference:
    """A SOURCE argument: NAME:TAG, NAME@DIGEST, or a bare `sha256:...` digest of the first target's repository
    (as imagetools takes it: the matrix jobs pushed by digest to the repository the index goes to)."""
    if _BARE_DIGEST_RE.match(text):
        if not targets:
            raise UsageError(f"source {text} is a bare digest, but there is no -t to say which repository holds it",
                             hint="write it as NAME@sha256:..., or give the target with -t NAME:TAG")
        return repository_of(targets[0]).with_digest(text)
    return parse_reference(text)


def check_request(request: CreateRequest) -> None:
    """What is wrong with the command line itself, before any request."""
    if not request.sources:
        raise UsageError("manifest create needs at least one SOURCE image",
                         hint="e.g. dockyard manifest create -t registry.example.com/app:1 "
                              "registry.example.com/app@sha256:... registry.example.com/app@sha256:...")
    if not request.targets and not request.dry_run:
        raise UsageError("manifest create needs a target: -t NAME[:TAG] (or --dry-run to only print the index)")
    if request.append and not request.targets:
        raise UsageError("--append merges into the index at the first -t: give one")
    for target in request.targets:
        if target.digest and target.tag:
            raise UsageError(f"invalid target {target}: give a tag or a digest, not both")


def create_index(client: RegistryClient, request: CreateRequest, store: BlobStore,
                 signer: Signer | None = None) -> Created:
    """Read the sources (and the index to append to), assemble the index, and push it unless a dry run; with
    `signer`, the index (and the attestation manifests it lists) is signed before the tags move."""
    check_request(request)
    events = client.events
    existing = None
    if request.append:
        first = request.targets[0]
        if manifest_exists(client, repository_of(first), first.identifier, actions="pull"):
            existing = read_source(client, first, store)
            events.info(f"appending to {first} ({existing.digest}, {len(existing.entries)} entries)")
        else:
            events.info(f"{first} does not exist yet: --append creates it")
    sources = [read_source(client, ref, store) for ref in request.sources]
    for source in sources:
        if not source.reference.digest:
            events.info(f"{source.reference} is {source.digest}")
    assembled = assemble(sources, request.annotations, existing=existing, events=events)
    if request.dry_run:
        return Created(assembled)
    for target in request.targets:
        if target.digest and target.digest != assembled.digest:
            raise UsageError(f"cannot push the index to {target}: its digest is {assembled.digest}")
    if signer is None:
        return Created(assembled, push_index(client, assembled, request.targets, store))
    from .signing.sign import SignatureHook

    subject = Descriptor(assembled.media_type, assembled.digest, len(assembled.body))
    hook = SignatureHook(signer, client, store, subject, assembled.index)
    pushed = push_index(client, assembled, request.targets, store, before_tags=hook)
    return Created(assembled, pushed, tuple(s.to_json() for s in hook.signatures))


def push_index(client: RegistryClient, assembled: AssembledIndex, targets: Sequence[Reference],
               store: BlobStore, before_tags: Callable[[str, list[Reference]], None] | None = None) -> tuple[str, ...]:
    """Every entry into every target repository, then the index by digest, then `before_tags` (the signer's),
    then the tags."""
    repositories: dict[tuple[str, str], Reference] = {}
    for target in targets:
        repositories.setdefault((target.registry, target.repository), repository_of(target))
    origins = dict(assembled.origins)
    for repo in repositories.values():
        for entry in assembled.index.manifests:
            origin = origins.get(entry.digest)
            if origin is not None and copy_manifest(client, origin, repo, entry.digest, store):
                client.events.info(f"copied {entry.digest} from {origin.name} to {repo.name}")
    pushed: list[str] = []
    digest = assembled.digest
    for repo in repositories.values():
        client.put_manifest(repo, digest, assembled.body, assembled.media_type)
        pushed.append(str(repo.with_digest(digest)))
        client.events.emit(ImagePushed(reference=pushed[-1], digest=digest))
    if before_tags is not None:
        before_tags(digest, list(repositories.values()))
    for target in targets:
        if target.tag:
            client.put_manifest(repository_of(target), target.tag, assembled.body, assembled.media_type)
            pushed.append(str(target.with_tag(target.tag)))
            client.events.emit(ImagePushed(reference=pushed[-1], digest=digest))
    return tuple(pushed)
