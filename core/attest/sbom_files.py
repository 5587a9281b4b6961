"""`--sbom-output FORMAT=FILE`: the SBOM of the built image written to a file as well (or instead of an
attestation): `spdx-json` or `cyclonedx-json` (CycloneDX 1.5, the alternative format the attestation does not
carry: BuildKit's attestation predicate is SPDX). With several platforms each gets a file of its own: FILE's
`{platform}` replaced by `linux-amd64`, or, without it, `.linux-amd64` put before FILE's extension."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import TYPE_CHECKING

from ..errors import OutputError
from ..sbom.model import Catalog

if TYPE_CHECKING:
    from .spec import SbomOutput


def write_sbom_files(outputs: tuple[SbomOutput, ...], catalogs: list[Catalog], created: dt.datetime) -> None:
    """Each output's document of each catalog (one per platform), each file replaced whole."""
    from ..sbom.cyclonedx import cyclonedx_document
    from ..sbom.spdx import spdx_document

    several = len(catalogs) > 1
    for output in outputs:
        for catalog in catalogs:
            document = (spdx_document(catalog, created=created) if output.format == "spdx-json"
                        else cyclonedx_document(catalog, created=created))
            path = output.path_for(catalog.platform, several)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
                os.replace(temporary, path)
            except OSError as exc:
                temporary.unlink(missing_ok=True)
                raise OutputError(f"cannot write the SBOM to {path}: {exc.strerror}", subject=str(path)) from None
