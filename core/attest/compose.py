"""A build's attestations: for each platform image as written, the in-toto statements asked for (the SBOM of
the image, and of its intermediate stages with BUILDKIT_SBOM_SCAN_STAGE; the SLSA provenance) put into one
attestation manifest about that image's manifest."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable

from ..image.blobs import BlobStore
from ..image.model import Image, Platform
from ..sbom.layers import BlobSource
from ..sbom.model import Catalog
from .manifest import AttestationImage, attestation_image
from .provenance import BuildRecord, provenance
from .spec import PROVENANCE, SBOM, AttestationSpec, find
from .statement import PREDICATE_NAMES, SPDX_PREDICATE, statement, statement_bytes, subjects

SCAN_STAGE_ARG = "BUILDKIT_SBOM_SCAN_STAGE"
SCAN_CONTEXT_ARG = "BUILDKIT_SBOM_SCAN_CONTEXT"

Cataloger = Callable[[Image, BlobSource, str, str], Catalog]


@dataclass(frozen=True)
class PlatformAttestations:
    """The attestation manifest of one platform image, and what it holds (for the build's metadata)."""

    platform: Platform
    subject: str  # the platform manifest's digest
    image: AttestationImage
    predicate_types: tuple[str, ...]

    @property
    def summary(self) -> str:
        """What it holds, in words: `sbom, provenance v0.2`."""
        return ", ".join(PREDICATE_NAMES.get(t, t) for t in self.predicate_types)

    def metadata(self) -> dict[str, Any]:
        return {"platform": str(self.platform), "digest": self.image.digest, "subject": self.subject,
                "predicateTypes": list(self.predicate_types)}


@dataclass(frozen=True)
class StageImage:
    """An intermediate stage's image, which BUILDKIT_SBOM_SCAN_STAGE puts into the SBOM."""

    name: str
    image: Image


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def scanned_stages(value: str | None, stages: tuple[StageImage, ...],
                   declared: frozenset[str] = frozenset()) -> tuple[StageImage, ...]:
    """The intermediate stages the SBOM covers, as BuildKit's Dockerfile frontend chooses them: with the build
    arg BUILDKIT_SBOM_SCAN_STAGE true every stage, a comma-separated list the stages it names, false none; without
    it the stages that declare `ARG BUILDKIT_SBOM_SCAN_STAGE=true` themselves (`declared`)."""
    if value is None:
        return tuple(s for s in stages if s.name in declared)
    if not value.strip() or value.strip().lower() in ("0", "false", "no", "off"):
        return ()
    if is_true(value):
        return stages
    wanted = {n.strip() for n in value.split(",") if n.strip()}
    return tuple(s for s in stages if s.name in wanted)


def declares_scan(instructions: tuple[object, ...]) -> bool:
    """Whether a stage's instructions hold `ARG BUILDKIT_SBOM_SCAN_STAGE=true`."""
    from ..dockerfile.instructions import Arg

    return any(isinstance(inst, Arg) and any(a.name == SCAN_STAGE_ARG and is_true(a.default) for a in inst.args)
               for inst in instructions)


def sbom_statements(image: Image, *, names: tuple[str, ...], stages: tuple[StageImage, ...],
                    subject: list[dict[str, Any]], store: BlobStore, cataloger: Cataloger,
                    created: dt.datetime, context: Catalog | None = None) -> list[tuple[str, bytes]]:
    """The SPDX statement of the image, then one per scanned intermediate stage (BuildKit's scanner writes a
    document per stage; each is a statement about the final image)."""
    from ..sbom.spdx import spdx_document

    name = names[0] if names else ""
    found = []
    documents = [spdx_document(cataloger(image, store, name, image.digest), created=created)]
    for stage in stages:
        stage_name = f"{name or 'image'} (stage {stage.name})"
        documents.append(spdx_document(cataloger(stage.image, store, stage_name, stage.image.digest),
                                       created=created))
    if context is not None:  # BUILDKIT_SBOM_SCAN_CONTEXT
        documents.append(spdx_document(context, created=created))
    for document in documents:
        found.append((SPDX_PREDICATE, statement_bytes(statement(SPDX_PREDICATE, document, subject))))
    return found


def platform_attestations(image: Image, *, specs: tuple[AttestationSpec, ...], names: tuple[str, ...],
                          record: BuildRecord | None, stages: tuple[StageImage, ...], store: BlobStore,
                          cataloger: Cataloger, created: dt.datetime,
                          context: Catalog | None = None) -> PlatformAttestations:
    """The attestation manifest of `image` (a platform image as written, OCI media types)."""
    subject = subjects(names, image.platform, image.digest)
    statements: list[tuple[str, bytes]] = []
    if find(specs, SBOM) is not None:
        statements += sbom_statements(image, names=names, stages=stages, subject=subject, store=store,
                                      cataloger=cataloger, created=created, context=context)
    wanted = find(specs, PROVENANCE)
    if wanted is not None and record is not None:
        predicate_type, predicate = provenance(record, mode=wanted.mode, version=wanted.version)
        statements.append((predicate_type, statement_bytes(statement(predicate_type, predicate, subject))))
    attestation = attestation_image(statements, store)
    return PlatformAttestations(image.platform, image.digest, attestation,
                                tuple(dict.fromkeys(p for p, _ in statements)))


def default_cataloger(image: Image, blobs: BlobSource, name: str, digest: str) -> Catalog:
    from ..sbom.catalog import catalog

    return catalog(image, blobs, name=name, digest=digest)


def dumps(attestations: list[PlatformAttestations]) -> str:
    return json.dumps([a.metadata() for a in attestations])
