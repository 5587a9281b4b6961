"""A build's attestations, made once its platform images are finalized: the provenance record of each platform
from what the build did, the SBOM from the image (and its scanned stages), one attestation manifest per image."""

from __future__ import annotations

import datetime as dt
import platform as host
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..image.blobs import BlobStore
from ..image.model import Image, Platform
from ..sbom.layers import BlobSource
from ..sbom.model import Catalog
from .compose import (SCAN_CONTEXT_ARG, SCAN_STAGE_ARG, Cataloger, PlatformAttestations, StageImage,
                      default_cataloger, is_true, platform_attestations, scanned_stages)
from .provenance import BaseImage, BuildRecord, Download, GitSource
from .records import build_time, dockerfile_name, git_source
from .spec import PROVENANCE, SBOM, find

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..events import Events
    from .prefetch import LayerPrefetch
    from ..options import BuildOptions


def builder_platform() -> str:
    """This machine's platform, as BuildKit's provenance names the builder's (environment.platform)."""
    from ..sbom.command import host_platform

    try:
        return str(host_platform())
    except ValueError:
        return f"linux/{host.machine().lower()}"


def cached_cataloger(cache_root: Path, prefetched: LayerPrefetch | None = None) -> Cataloger:
    """The catalog of an image, its layers' records kept in the cache directory (a base layer is read once);
    with `prefetched`, the records and the memo of the base layers read while the steps ran."""
    from ..sbom.catalog import CatalogMemo, catalog
    from ..sbom.record_cache import LayerRecordCache, records_dir

    if prefetched is not None:
        records, memo = prefetched.records, prefetched.memo
    else:
        records, memo = LayerRecordCache(records_dir(cache_root), keep=True), CatalogMemo()
    made: dict[tuple[str, str, str], Catalog] = {}  # an image's catalog is made once per build

    def cataloger(image: Image, blobs: BlobSource, name: str, digest: str) -> Catalog:
        key = (image.digest, name, digest)
        if key not in made:
            made[key] = catalog(image, blobs, name=name, digest=digest, records=records, memo=memo)
        return made[key]
    return cataloger


def attest_build(options: BuildOptions, *, images: Sequence[Image], stages: Sequence[tuple[tuple[str, Image], ...]],
                 names: tuple[str, ...], build_args: dict[str, str], bases: Sequence[tuple[str, Platform, str]],
                 downloads: Sequence[tuple[str, str]], started: dt.datetime, store: BlobStore, events: Events,
                 declared: frozenset[str] = frozenset(), prefetched: LayerPrefetch | None = None,
                 git: Future[GitSource | None] | None = None,
                 cataloger: Cataloger = default_cataloger) -> list[PlatformAttestations]:
    """One attestation manifest per image of `images` (finalized, OCI media types, in --platform order);
    `stages[i]` are the intermediate stages of image i; `names` the image's names (the statements' subjects);
    `declared` the stages that declare ARG BUILDKIT_SBOM_SCAN_STAGE=true; `prefetched` what was read for the
    SBOM while the steps ran (attest/prefetch.py); `git` the context's git checkout, looked up then."""
    specs = options.attestations
    epoch = options.source_date_epoch
    record: BuildRecord | None = None
    provenance_spec = find(specs, PROVENANCE)
    finished = build_time(epoch)
    if provenance_spec is not None:
        dockerfile = options.dockerfile_path.read_bytes()
        checkout = git.result() if git is not None else git_source(Path(options.context))
        record = BuildRecord(
            platform=images[0].platform, builder_platform=builder_platform(),
            dockerfile_name=dockerfile_name(options.dockerfile_path, Path(options.context)),
            dockerfile=dockerfile, target=options.target, build_args=tuple(sorted(build_args.items())),
            labels=tuple(options.labels), secret_ids=tuple(s.id for s in options.secrets),
            ssh_ids=tuple(s.id for s in options.ssh), bases=(), git=checkout,
            downloads=tuple(Download(url, digest) for url, digest in dict(downloads).items()),
            started=build_time(epoch, started), finished=finished, reproducible=epoch is not None,
            builder_id=provenance_spec.builder_id)
    scan_stage = build_args.get(SCAN_STAGE_ARG)
    context_catalog = None
    if find(specs, SBOM) is not None and is_true(build_args.get(SCAN_CONTEXT_ARG)):
        from .context_scan import context_catalog as scan_context

        context_catalog = scan_context(Path(options.context), options.dockerfile_path,
                                       f"{names[0] if names else 'image'} (build context)")
    generator = find(specs, SBOM)
    if generator is not None and generator.attr("generator"):
        events.info(f"--sbom generator={generator.attr('generator')}: dockyard catalogs the image itself "
                    "(no scanner image is run)")
    if cataloger is default_cataloger:
        cataloger = cached_cataloger(options.cache_root, prefetched)
    if options.sbom_outputs:
        from .sbom_files import write_sbom_files

        named = names[0] if names else ""
        catalogs = [cataloger(image, store, named, image.digest) for image in images]
        write_sbom_files(options.sbom_outputs, catalogs, build_time(epoch, finished))
    if not specs:
        return []
    made = []
    for index, image in enumerate(images):
        platform_record = None
        if record is not None:
            from dataclasses import replace

            # The bases pulled for this target (a variant the image's config leaves out still matches).
            platform_bases = tuple(BaseImage(ref, p, digest) for ref, p, digest in dict.fromkeys(bases)
                                   if (p.os, p.architecture) == (image.platform.os, image.platform.architecture))
            platform_record = replace(record, platform=image.platform, bases=platform_bases)
        stage_images = tuple(StageImage(name, stage) for name, stage in (stages[index] if index < len(stages) else ()))
        made.append(platform_attestations(
            image, specs=specs, names=names, record=platform_record,
            stages=scanned_stages(scan_stage, stage_images, declared), store=store, cataloger=cataloger,
            created=build_time(epoch, finished), context=context_catalog))
    return made
