"""`dockyard build --scan`: each platform image scanned once it is assembled, before anything is pushed or
written, so that `--fail-on-vuln` keeps a vulnerable image from being tagged (as a CI job that runs Trivy between
build and push does). A package's origin is the Dockerfile instruction whose step made its layer, or the final
stage's FROM for a layer of the base image."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..display import display_path
from ..errors import OutputError
from ..events import Events, ScanFinished
from ..files import replace_file
from ..image.model import Image
from ..sbom.layers import BlobSource
from ..sbom.model import Catalog, Package
from ..stage.services import StepRecord
from .model import Origin, ScanReport, report_to_json
from .scanner import database_lines, scan_catalog, summary, write_scan_reports

if TYPE_CHECKING:
    from ..options import BuildOptions

Cataloger = Callable[[Image, BlobSource, str, str], Catalog]


def step_origins(image: Image, steps: Sequence[StepRecord], dockerfile: str) -> Callable[[Package], Origin | None]:
    """The origin of a package of `image` built by `steps`: the step that made its layer (matched by diff_id),
    else (a layer of the base image) the last FROM of the build, the final stage's."""
    made = {s.layer.diff_id: s for s in steps if s.layer is not None}
    from_step = next((s for s in reversed(steps) if s.instruction.split(None, 1)[:1] == ["FROM"]), None)

    def origin(package: Package) -> Origin | None:
        layer = package.layer
        if layer is None:
            return None
        step = made.get(layer.diff_id) or from_step
        if step is None:
            return Origin(layer.digest, layer.position, layer.created_by)
        return Origin(layer.digest, layer.position, instruction=step.instruction, file=step.file or dockerfile,
                      line=step.line, end_line=None)
    return origin


def scan_images(options: BuildOptions, *, images: Sequence[Image], steps: Sequence[Sequence[StepRecord]],
                names: Sequence[str], blobs: BlobSource, cataloger: Cataloger, events: Events) -> list[ScanReport]:
    """One report per image (in --platform order), announced with ScanFinished, written to --scan-report files."""
    from .database import open_database
    from .ignores import load_ignore_file
    from .matching import ecosystems_needed

    settings = options.scan
    assert settings is not None
    name = names[0] if names else ""
    catalogs = [cataloger(image, blobs, name, image.digest) for image in images]
    database = open_database(ecosystems_needed(catalogs), cache_root=options.cache_root, db=settings.db,
                             url=settings.db_url, notify=events.warning)
    ignores = load_ignore_file(settings.ignore_file) if settings.ignore_file else ()
    dockerfile = display_path(options.dockerfile_path)
    today = dt.datetime.now(dt.UTC).date()
    reports = []
    for index, (image, catalog) in enumerate(zip(images, catalogs)):
        origin = step_origins(image, steps[index] if index < len(steps) else (), dockerfile)
        report = scan_catalog(catalog, database, settings, image=name or image.digest, ignores=ignores, today=today,
                              origin=origin)
        reports.append(report)
        if index == 0:
            for line in database_lines(report):
                events.info(line)
        for warning in report.warnings:
            events.warning(warning)
        events.info(summary(report))
        events.emit(ScanFinished(platform=report.platform, report=report_to_json(report)))
    write_scan_reports(reports, settings.reports)
    return reports


def write_failed_metadata(path: Path | None, reports: Sequence[ScanReport]) -> None:
    """A build the gate stopped still writes --metadata-file, with only `dockyard.scan`: the CI adapters read
    the vulnerabilities from it."""
    if path is None:
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        replace_file(Path(path), (json.dumps({"dockyard.scan": [report_to_json(r) for r in reports]}, indent=2)
                                  + "\n").encode())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", subject=str(path)) from None
