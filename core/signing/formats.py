"""The documents cosign writes and reads, byte for byte where it matters: the simple-signing payload of a classic
signature, the `sha256-<hex>.sig` and `sha256-<hex>` tag names, cosign v3's signing statement (an in-toto
statement of predicate type https://sigstore.dev/cosign/sign/v1 about the image digest), its DSSE envelope and
the Sigstore bundle v0.3 that carries it."""

from __future__ import annotations

import base64
import json
from typing import Any

# The classic scheme: one layer per signature in the manifest tagged sha256-<hex>.sig.
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
SIMPLE_SIGNING_TYPE = "cosign container image signature"

# cosign v3: a bundle v0.3 stored as an OCI 1.1 referrer of the image.
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def signature_tag(digest: str) -> str:
    """cosign's tag for an image's classic signatures: `sha256-<hex>.sig`."""
    return digest.replace(":", "-", 1) + ".sig"


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema's fallback tag: an index of `digest`'s referrers at `sha256-<hex>`."""
    return digest.replace(":", "-", 1)


def docker_reference(registry: str, repository: str) -> str:
    """The repository as cosign names it in a payload (go-containerregistry's name: Docker Hub is
    `index.docker.io`)."""
    return f"{'index.docker.io' if registry == 'docker.io' else registry}/{repository}"


def simple_signing_payload(repository: str, digest: str) -> bytes:
    """What a classic signature signs, as cosign writes it: the repository (no tag, as `docker_reference`
    names it) and the manifest digest, compact JSON in Go's field order, `optional` null when no annotations
    are given."""
    return _compact({"critical": {"identity": {"docker-reference": repository},
                                  "image": {"docker-manifest-digest": digest},
                                  "type": SIMPLE_SIGNING_TYPE},
                     "optional": None})


def signing_statement(digest: str) -> bytes:
    """cosign v3's statement that signs an image: its digest as the only subject, an empty predicate."""
    algorithm, _, hex_digest = digest.partition(":")
    return _compact({"_type": STATEMENT_TYPE, "subject": [{"digest": {algorithm: hex_digest}, "annotations": {}}],
                     "predicateType": SIGN_PREDICATE_TYPE, "predicate": {}})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_bundle(statement: bytes, signature: bytes, hint: str) -> bytes:
    """A bundle v0.3 of a DSSE envelope signed with a key (named by its hint; no certificate, no transparency
    log entry: verifiers are given the public key, as `cosign verify --key ... --insecure-ignore-tlog`)."""
    return _compact({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(statement).decode(), "payloadType": IN_TOTO_PAYLOAD_TYPE,
                         "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}]},
    })
