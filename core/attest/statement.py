"""in-toto statements as BuildKit writes them into attestation manifests (exporter/attestation/make.go): the
statement type, the predicate type, and the subject: the platform manifest, named by each image name as a
package URL (util/purl/image.go's RefToPURL: pkg:docker/NAMESPACE/NAME@TAG?platform=OS%2FARCH) with the
manifest's digest, or `_` when the image has no name."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from packageurl import PackageURL

from ..image.model import Platform
from ..image.reference import parse_reference

# in-toto-golang's StatementInTotoV1, as BuildKit's exporter/attestation/make.go writes it today (its releases
# before that wrote https://in-toto.io/Statement/v0.1; readers take both).
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SPDX_PREDICATE = "https://spdx.dev/Document"
SLSA_V02_PREDICATE = "https://slsa.dev/provenance/v0.2"
SLSA_V1_PREDICATE = "https://slsa.dev/provenance/v1"
PREDICATE_NAMES = {SPDX_PREDICATE: "sbom", SLSA_V02_PREDICATE: "provenance v0.2", SLSA_V1_PREDICATE: "provenance v1"}


def image_purl(name: str, platform: Platform | None = None, digest: str | None = None) -> str:
    """An image reference as BuildKit's RefToPURL writes it: docker.io's names short (library/ dropped), the
    tag as the version (`latest` when there is none), a digest as the `digest` qualifier, the platform as
    `platform`."""
    ref = parse_reference(name)
    path = ref.repository
    if ref.registry == "docker.io":
        path = path.removeprefix("library/")
    else:
        path = f"{ref.registry}/{path}"
    namespace, _, base = path.rpartition("/")
    qualifiers: dict[str, str] = {}
    if ref.digest or digest:
        qualifiers["digest"] = ref.digest or digest or ""
    if platform is not None:
        qualifiers["platform"] = str(platform)
    version = ref.tag or (None if ref.digest else "latest")
    purl = PackageURL(type="docker", namespace=namespace or None, name=base, version=version).to_string()
    if not qualifiers:
        return purl
    # Qualifier values escaped as packageurl-go's url.PathEscape does (linux%2Famd64), as BuildKit writes them.
    return purl + "?" + "&".join(f"{k}={urllib.parse.quote(v, safe=':')}" for k, v in sorted(qualifiers.items()))


def subjects(names: list[str] | tuple[str, ...], platform: Platform, digest: str) -> list[dict[str, Any]]:
    """The statement's subject: the platform manifest under each image name (`_` without one)."""
    algorithm, _, hex_digest = digest.partition(":")
    found = [image_purl(n, platform) for n in names] or ["_"]
    return [{"name": n, "digest": {algorithm: hex_digest}} for n in dict.fromkeys(found)]


def statement(predicate_type: str, predicate: dict[str, Any], subject: list[dict[str, Any]]) -> dict[str, Any]:
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": predicate_type, "predicate": predicate}


def statement_bytes(doc: dict[str, Any]) -> bytes:
    """A statement as stored: compact JSON (Go's json.Marshal), keys in the order written."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
