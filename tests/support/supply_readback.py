"""An attested and signed image as the CI adapters' end-to-end tests read it back from the registry: the index
at the tag (skopeo), one attestation manifest per platform image as BuildKit lays them out (annotations
`vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest`), its in-toto statements
by predicate type (read from the loopback registry's storage), and cosign's `sha256-<hex>.sig` tag for the
index, whose simple-signing payload names the index and whose signature `openssl dgst -verify` accepts with the
key's public half (the signing tests verify with sigstore-js too). Here: the adapter asked for them and they are
there, with the CI run's identity as the provenance's builder id."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

from dockyard import parse_reference
from tests.support.index_readback import SKOPEO_TIMEOUT, read_index
from tests.support.registry import RegistryServer
from tests.support.signatures import openssl_verifies

SPDX = "https://spdx.dev/Document"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
ATTESTATION_TYPE = "vnd.docker.reference.type"
ATTESTATION_SUBJECT = "vnd.docker.reference.digest"
PREDICATE_TYPE = "in-toto.io/predicate-type"


def signing_key(directory: Path) -> Path:
    """A fresh ECDSA P-256 private key (PEM, PKCS#8), as `openssl genpkey` makes it for cosign-style signing."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "signing.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(key)], check=True, capture_output=True, timeout=60)
    return key


def public_key(private_key: Path) -> Path:
    path = private_key.with_suffix(".pub")
    subprocess.run(["openssl", "pkey", "-in", str(private_key), "-pubout", "-out", str(path)], check=True,
                   capture_output=True, timeout=60)
    return path


def _raw(reference: str, creds: str | None) -> bytes:
    command = ["skopeo", "inspect", "--tls-verify=false", *(["--creds", creds] if creds else []), "--raw",
               f"docker://{reference}"]
    result = subprocess.run(command, capture_output=True, timeout=SKOPEO_TIMEOUT)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def tags_of(repository: str, creds: str | None = None) -> list[str]:
    command = ["skopeo", "list-tags", "--tls-verify=false", *(["--creds", creds] if creds else []),
               f"docker://{repository}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["Tags"]


def check_attested_and_signed(server: RegistryServer, reference: str, private_key: Path, *,
                              creds: str | None = None,
                              predicate_types: tuple[str, ...] = (SPDX, SLSA_V02)) -> dict[str, dict]:
    """Checks the index at `reference` has an attestation manifest for each of its images holding a statement of
    each of `predicate_types`, and a cosign signature tag whose signature of the index verifies with the public
    half of `private_key`; returns the statements of the first attestation manifest by predicate type."""
    repository = parse_reference(reference).name
    index_digest = "sha256:" + hashlib.sha256(_raw(reference, creds)).hexdigest()
    index = read_index(reference, creds=creds)
    entries = index["manifests"]
    attestations = [entry for entry in entries
                    if (entry.get("annotations") or {}).get(ATTESTATION_TYPE) == "attestation-manifest"]
    images = [entry for entry in entries if entry not in attestations]
    assert images and len(attestations) == len(images), json.dumps(index, indent=1)
    assert {entry["annotations"][ATTESTATION_SUBJECT] for entry in attestations} == {e["digest"] for e in images}
    statements: dict[str, dict] = {}
    for number, entry in enumerate(attestations):
        manifest = json.loads(_raw(f"{repository}@{entry['digest']}", creds))
        found = {layer["annotations"][PREDICATE_TYPE]: layer for layer in manifest["layers"]}
        assert set(predicate_types) <= set(found), json.dumps(manifest, indent=1)
        if number == 0:
            for predicate_type, layer in found.items():
                blob = server.blob_data_path(layer["digest"]).read_bytes()
                statements[predicate_type] = json.loads(blob)
    signature_tag = f"sha256-{index_digest.removeprefix('sha256:')}.sig"
    assert signature_tag in tags_of(repository, creds), f"no cosign signature tag for {index_digest}"
    verified = []
    for layer in json.loads(_raw(f"{repository}:{signature_tag}", creds))["layers"]:
        payload = server.blob_data_path(layer["digest"]).read_bytes()
        signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
        names_index = json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == index_digest
        verified.append(names_index and openssl_verifies(public_key(private_key), signature, payload))
    assert any(verified), f"no signature in {signature_tag} verifies with the key"
    return statements


def builder_id(statements: dict[str, dict]) -> str:
    """The provenance's builder id (SLSA v0.2 `builder.id`, v1 `runDetails.builder.id`)."""
    provenance = statements.get(SLSA_V02) or statements["https://slsa.dev/provenance/v1"]
    predicate = provenance["predicate"]
    return (predicate.get("builder") or predicate.get("runDetails", {}).get("builder") or {}).get("id", "")
