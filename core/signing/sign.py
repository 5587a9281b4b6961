"""Signing a pushed image: what is signed, with which signer, and the record of what was stored.

The push calls `SignatureHook` once every manifest and the index are stored by digest and before any tag is put
(registry/push.py's `before_tags`). It signs the digest that was pushed (the index of a multi-platform build,
as `cosign sign` does when given the index digest; the platform manifests themselves are not signed, as
without cosign's --recursive) and every attestation manifest the index lists. Each signature is stored twice,
in both of cosign's forms: the classic `sha256-<hex>.sig` simple-signing layer, and cosign v3's bundle v0.3 (a
DSSE in-toto statement of predicate type https://sigstore.dev/cosign/sign/v1) as an OCI 1.1 referrer, or under
the referrers fallback tag where the registry has no referrers API. Any failure is a SigningError: the push
stops before its tags."""

from __future__ import annotations

import base64
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import DockyardError, SigningError
from ..events import Events
from ..image.blobs import BlobStore
from ..image.index import ImageIndex, is_attestation
from ..image.model import Descriptor
from ..image.reference import Reference
from ..registry.client import RegistryClient
from .formats import (IN_TOTO_PAYLOAD_TYPE, SIGN_PREDICATE_TYPE, SIGNATURE_ANNOTATION, docker_reference, key_bundle,
                      pae, signing_statement, simple_signing_payload)
from .keys import SigningKey, load_signing_key
from .spec import KEY, KEYLESS, SigningSpec
from .store import push_classic_signature, push_referrer, referrers_api


class Signer(Protocol):
    """What signs: a key here, a Fulcio certificate's ephemeral key in keyless.py. Each call signs (a keyless
    signer cannot sign apart from logging the signature in Rekor and bundling it: sigstore-python does the
    three in one call)."""

    @property
    def kind(self) -> str:
        """"key" or "keyless" (the metadata's `kind`)."""

    def classic_annotations(self, payload: bytes) -> dict[str, str]:
        """The annotations of a `.sig` layer carrying this signer's signature of `payload`."""

    def already_signed(self, payload: bytes, annotations: dict[str, str]) -> bool:
        """Whether a `.sig` layer of `payload` with `annotations` is this signer's signature already."""

    def bundle(self, statement: bytes) -> bytes:
        """The bundle v0.3 of a DSSE envelope of `statement` (in-toto) signed by this signer."""


@dataclass(frozen=True)
class KeySigner:
    """Signs with a private key (the verifier is given the public key: no certificate, no transparency log)."""

    key: SigningKey
    kind: str = KEY

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def classic_annotations(self, payload: bytes) -> dict[str, str]:
        return {SIGNATURE_ANNOTATION: base64.b64encode(self.sign(payload)).decode()}

    def already_signed(self, payload: bytes, annotations: dict[str, str]) -> bool:
        try:
            signature = base64.b64decode(annotations.get(SIGNATURE_ANNOTATION, ""), validate=True)
        except ValueError:
            return False
        return bool(signature) and self.key.verifies(signature, payload)

    def bundle(self, statement: bytes) -> bytes:
        return key_bundle(statement, self.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement)), self.key.hint)


def signer_for(spec: SigningSpec, environ: Mapping[str, str], events: Events) -> Signer:
    """The signer `spec` asks for; a key is read (and decrypted) now, so that a bad key or passphrase fails
    before anything is built or pushed."""
    if spec.kind == KEY:
        return KeySigner(load_signing_key(spec, dict(environ)))
    if spec.kind == KEYLESS:
        try:
            keyless: Any = importlib.import_module(f"{__package__}.keyless")
        except ImportError:
            raise SigningError("keyless signing is not available in this dockyard",
                               hint="sign with a key: --sign key=PATH") from None
        signer: Signer = keyless.keyless_signer(spec, environ, events)
        return signer
    raise SigningError(f"unknown signing kind {spec.kind!r}")


@dataclass(frozen=True)
class Signature:
    """One signature stored: the digest signed, in which repository, in which form (`tag`: the classic `.sig`
    tag; `referrer`: the bundle's manifest digest and how it is found)."""

    digest: str
    repository: str
    kind: str
    tag: str | None = None
    referrer: str | None = None
    stored: str | None = None  # a referrer's: "referrers-api" or "fallback-tag"

    def to_json(self) -> dict[str, str]:
        doc = {"digest": self.digest, "repository": self.repository, "kind": self.kind}
        if self.tag is not None:
            doc.update(tag=self.tag, format="simple-signing")
        if self.referrer is not None:
            doc.update(referrer=self.referrer, format="bundle-v0.3", stored=self.stored or "")
        return doc


class SignatureHook:
    """The push's `before_tags`: signs the pushed digest and the attestation manifests `index` lists, in every
    repository pushed to. `subject` describes the pushed manifest or index (media type and size, for the
    referrer's `subject`). `signatures` is what was stored, in order."""

    def __init__(self, signer: Signer, client: RegistryClient, store: BlobStore, subject: Descriptor,
                 index: ImageIndex | None = None):
        self.signer = signer
        self.client = client
        self.store = store
        self.subject = subject
        self.index = index
        self.signatures: list[Signature] = []

    def subjects(self) -> list[Descriptor]:
        attestations = [d for d in self.index.manifests if is_attestation(d)] if self.index is not None else []
        return [self.subject] + attestations

    def __call__(self, digest: str, repositories: list[Reference]) -> None:
        if digest != self.subject.digest:
            raise ValueError(f"pushed {digest}, but the signer was made for {self.subject.digest}")
        for repo in repositories:
            api = None
            for subject in self.subjects():
                try:
                    if api is None:
                        api = referrers_api(self.client, repo, subject.digest)
                    self.signatures.extend(self._sign(repo, subject, api))
                except SigningError:
                    raise
                except DockyardError as exc:
                    raise SigningError(f"cannot store the signature of {repo.name}@{subject.digest}: {exc.message}",
                                       hint=(exc.hint + "; " if exc.hint else "") +
                                       "the image was pushed by digest only: no tag was moved",
                                       subject=repo.name) from None
                self.client.events.info(f"signed {repo.name}@{subject.digest} ({self.signer.kind})")

    def _sign(self, repo: Reference, subject: Descriptor, api: bool) -> list[Signature]:
        payload = simple_signing_payload(docker_reference(repo.registry, repo.repository), subject.digest)
        tag = push_classic_signature(self.client, repo, subject.digest, payload,
                                     self.signer.classic_annotations(payload), self.store,
                                     already_signed=self.signer.already_signed)
        statement = signing_statement(subject.digest)
        bundle = self.signer.bundle(statement)
        stored = push_referrer(self.client, repo, subject, bundle, SIGN_PREDICATE_TYPE, "dsse-envelope",
                               self.store, api=api)
        return [Signature(subject.digest, repo.name, self.signer.kind, tag=f"{repo.name}:{tag}"),
                Signature(subject.digest, repo.name, self.signer.kind, referrer=stored.digest,
                          stored=stored.stored)]
