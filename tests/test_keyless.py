"""`--sign keyless`: a Fulcio certificate for the CI job's OIDC identity, the signatures logged in Rekor, through
sigstore-python, stored as cosign stores them, and verified by sigstore-js against the trusted root.

Fulcio, Rekor and the timestamp authority are @sigstore/mock's (the sigstore-js project's stand-ins; the real
services cannot be reached from here) served on loopback by tests/support/sigstore_mock_server.cjs, which
writes the trusted root naming their keys. The OIDC token is made here: the mock Fulcio, like the real one for
an unknown issuer, does not check its signature, only reads its claims (issuer, subject, audience). The verifier
is sigstore-js (@sigstore/verify), through tests/support/sigstore_verify_keyless.cjs (tests/support/sigstore_mock.py
drives both)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from dockyard.errors import SigningError
from dockyard.events import Events
from dockyard.image.blobs import BlobStore
from dockyard.image.index import ATTESTATION_MANIFEST, REFERENCE_DIGEST, REFERENCE_TYPE, ImageIndex
from dockyard.image.model import Descriptor
from dockyard.image.reference import parse_reference
from dockyard.options import BuildOptions
from dockyard.outputs import CachedLayers, OutputWriter, finalize
from dockyard.registry import RegistryClient
from dockyard.registry.push import push_index
from dockyard.signing.formats import signing_statement
from dockyard.signing.keyless import keyless_signer, with_subject_names
from dockyard.signing.sign import SignatureHook
from dockyard.signing.spec import SigningSpec
from tests.support import signatures
from tests.support.images import one_layer_image
from tests.support.registry import free_port
from tests.support.sigstore_mock import (IDENTITY, ISSUER, image_verifies, oidc_token, running_sigstore_mock,
                                         sigstore_js)

@pytest.fixture(scope="module")
def sigstore_mock(tmp_path_factory):
    with running_sigstore_mock(tmp_path_factory.mktemp("sigstore-mock")) as mock:
        yield mock.url, mock.trusted_root


def keyless_spec(sigstore_mock, **overrides: str) -> SigningSpec:
    url, root = sigstore_mock
    attributes = {"oidc-token-env": "CI_SIGSTORE_TOKEN", "trusted-root": str(root), "fulcio-url": url,
                  "rekor-url": url, **overrides}
    return SigningSpec.parse(",".join(["keyless"] + [f"{k}={v}" for k, v in attributes.items() if v]))


def verify(bundle: bytes, root: Path, digest: str, identity: str = IDENTITY, issuer: str = ISSUER) -> str:
    return sigstore_js(bundle, root, digest, identity=identity, issuer=issuer)


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def writer(options: BuildOptions, store: BlobStore, events: Events | None = None) -> OutputWriter:
    client = RegistryClient(environ={"HOME": "/nonexistent"}, backoff=0.01, retries=0)
    return OutputWriter(options, events or Events(), client=lambda: client, store=store,
                        cached_layers=CachedLayers(lambda: client, store))


def keyless_options(tmp_path: Path, ref: str, spec: SigningSpec, environ: dict[str, str]) -> BuildOptions:
    return BuildOptions(context=tmp_path, environ={"HOME": "/nonexistent", **environ}, tags=(ref,), push=True,
                        signing=spec)


# --- the signed image, read back and verified ------------------------------------------------------------------


def test_a_keyless_signed_image_verifies_and_others_do_not(registry, store, tmp_path, sigstore_mock):
    _url, root = sigstore_mock
    ref = f"{registry.host}/keyless/app:1"
    options = keyless_options(tmp_path, ref, keyless_spec(sigstore_mock), {"CI_SIGSTORE_TOKEN": oidc_token()})
    image = finalize(one_layer_image(store), options)
    written = writer(options, store).write([image], options.tags, frozenset())
    assert signatures.manifest_digest(registry.host, "keyless/app", "1") == image.digest
    assert {s["kind"] for s in written.signatures} == {"keyless"}

    # cosign v3's form: a bundle v0.3 referrer (Debian's registry has no referrers API: the fallback tag).
    assert [s["stored"] for s in written.signatures if "referrer" in s] == ["fallback-tag"]
    assert signatures.get(registry.host, "keyless/app", "manifests/" + image.digest.replace(":", "-"))
    assert image_verifies(registry.host, "keyless/app", image.digest, root)
    [bundle] = signatures.referrer_bundles(registry.host, "keyless/app", image.digest)
    doc = json.loads(bundle)
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"]["tlogEntries"][0]["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    assert statement["subject"][0]["digest"] == {"sha256": image.digest.split(":")[1]}

    # Another identity or issuer is refused: the certificate names the job's.
    assert not image_verifies(registry.host, "keyless/app", image.digest, root,
                              identity="https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main")
    assert not image_verifies(registry.host, "keyless/app", image.digest, root, issuer="https://gitlab.com")

    # An image pushed without signing has no signature to verify.
    unsigned_options = replace(options, tags=(f"{registry.host}/keyless/app:unsigned",), signing=None)
    unsigned = finalize(one_layer_image(store, {"other": b"content"}), unsigned_options)
    writer(unsigned_options, store).write([unsigned], unsigned_options.tags, frozenset())
    assert unsigned.digest != image.digest
    assert not signatures.referrer_bundles(registry.host, "keyless/app", unsigned.digest)
    assert not image_verifies(registry.host, "keyless/app", unsigned.digest, root)
    # The signed image's bundle offered for another manifest digest: its statement names the signed one.
    assert "not " + unsigned.digest in verify(bundle, root, unsigned.digest)


def test_a_tampered_keyless_bundle_does_not_verify(registry, store, tmp_path, sigstore_mock):
    _url, root = sigstore_mock
    options = keyless_options(tmp_path, f"{registry.host}/keyless/tamper:1", keyless_spec(sigstore_mock),
                              {"CI_SIGSTORE_TOKEN": oidc_token()})
    image = finalize(one_layer_image(store), options)
    writer(options, store).write([image], options.tags, frozenset())
    [bundle] = signatures.referrer_bundles(registry.host, "keyless/tamper", image.digest)
    assert verify(bundle, root, image.digest) == "verified"
    other = "sha256:" + "0" * 64
    # The statement rewritten to name another image: the envelope's signature (and the log entry) fail.
    doc = json.loads(bundle)
    statement = base64.b64decode(doc["dsseEnvelope"]["payload"])
    doc["dsseEnvelope"]["payload"] = base64.b64encode(
        statement.replace(image.digest.split(":")[1].encode(), other.split(":")[1].encode())).decode()
    assert verify(json.dumps(doc).encode(), root, other).startswith("not verified")
    # Another trusted root (another Fulcio and Rekor): nothing chains to it.
    foreign = json.loads(root.read_text())
    foreign["certificateAuthorities"] = []
    foreign_root = root.parent / "foreign_root.json"
    foreign_root.write_text(json.dumps(foreign))
    assert verify(bundle, foreign_root, image.digest).startswith("not verified")


def test_the_classic_signature_carries_the_certificate_and_the_rekor_entry(registry, store, tmp_path,
                                                                            sigstore_mock):
    _url, root = sigstore_mock
    options = keyless_options(tmp_path, f"{registry.host}/keyless/classic:1", keyless_spec(sigstore_mock),
                              {"CI_SIGSTORE_TOKEN": oidc_token()})
    image = finalize(one_layer_image(store), options)
    writer(options, store).write([image], options.tags, frozenset())
    [classic] = signatures.classic_signatures(registry.host, "keyless/classic", image.digest)
    assert json.loads(classic.payload)["critical"]["image"]["docker-manifest-digest"] == image.digest
    certificate = classic.annotations["dev.sigstore.cosign/certificate"]
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")
    # The chain: the certificate's issuer up to the root, here the mock Fulcio's one root.
    chain = classic.annotations["dev.sigstore.cosign/chain"]
    [ca_root] = json.loads(root.read_text())["certificateAuthorities"][0]["certChain"]["certificates"]
    assert chain.count("-----BEGIN CERTIFICATE-----") == 1
    assert base64.b64decode("".join(chain.strip().splitlines()[1:-1])) == base64.b64decode(ca_root["rawBytes"])
    rekor = json.loads(classic.annotations["dev.sigstore.cosign/bundle"])
    assert set(rekor) == {"SignedEntryTimestamp", "Payload"}
    assert json.loads(base64.b64decode(rekor["Payload"]["body"]))["kind"] == "hashedrekord"
    # The layer's parts, put into a message-signature bundle, verify with sigstore-js: the signature over the
    # payload by the certificate's key, the certificate from the trusted Fulcio, the entry's promise by Rekor.
    # (Bundle v0.1: the version whose log entries may carry the promise alone, as cosign's annotation does.)
    der = base64.b64decode("".join(certificate.strip().splitlines()[1:-1]))
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
              "verificationMaterial": {
                  "x509CertificateChain": {"certificates": [{"rawBytes": base64.b64encode(der).decode()}]},
                  "tlogEntries": [{"logIndex": str(rekor["Payload"]["logIndex"]),
                                   "logId": {"keyId": base64.b64encode(bytes.fromhex(rekor["Payload"]["logID"]))
                                             .decode()},
                                   "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                                   "integratedTime": str(rekor["Payload"]["integratedTime"]),
                                   "inclusionPromise": {"signedEntryTimestamp": rekor["SignedEntryTimestamp"]},
                                   "canonicalizedBody": rekor["Payload"]["body"]}]},
              "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(
                  hashlib.sha256(classic.payload).digest()).decode()},
                  "signature": classic.annotations["dev.cosignproject.cosign/signature"]}}
    assert verify_message(json.dumps(bundle).encode(), root, classic.payload) == "verified"
    assert verify_message(json.dumps(bundle).encode(), root, classic.payload + b" ").startswith("not verified")


def verify_message(bundle: bytes, root: Path, artifact: bytes) -> str:
    return sigstore_js(bundle, root, "-", artifact=artifact)


# --- where the token comes from ----------------------------------------------------------------------------------


class _TokenRequests(BaseHTTPRequestHandler):
    """GitHub Actions' OIDC token endpoint, as the runner serves it: GET with the request token as bearer and
    the audience as a query parameter; answers {"value": JWT}."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:  # http.server's name
        type(self).seen.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization", "").lower() != "bearer runner-request-token":
            self.send_response(401)
            self.end_headers()
            return
        audience = self.path.partition("audience=")[2]
        body = json.dumps({"value": oidc_token(audience=audience)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_github_actions_token_is_requested_with_the_sigstore_audience(registry, store, tmp_path, sigstore_mock):
    _url, root = sigstore_mock
    server = HTTPServer(("127.0.0.1", 0), _TokenRequests)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        environ = {"ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{server.server_port}/token?api-version=2.0",
                   "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token"}
        options = keyless_options(tmp_path, f"{registry.host}/keyless/github:1",
                                  keyless_spec(sigstore_mock, **{"oidc-token-env": ""}), environ)
        image = finalize(one_layer_image(store), options)
        writer(options, store).write([image], options.tags, frozenset())
    finally:
        server.shutdown()
    assert _TokenRequests.seen == [("/token?api-version=2.0&audience=sigstore", "bearer runner-request-token")]
    assert image_verifies(registry.host, "keyless/github", image.digest, root)


def test_no_oidc_token_is_an_error_naming_what_the_ci_needs(sigstore_mock):
    spec = keyless_spec(sigstore_mock, **{"oidc-token-env": ""})
    with pytest.raises(SigningError) as caught:
        keyless_signer(spec, {"HOME": "/nonexistent"}, Events())
    assert "OIDC" in caught.value.message
    assert "id-token: write" in (caught.value.hint or "") and "id_tokens" in (caught.value.hint or "")
    with pytest.raises(SigningError) as caught:
        keyless_signer(keyless_spec(sigstore_mock), {}, Events())
    assert "CI_SIGSTORE_TOKEN is not set" in caught.value.message
    # GitLab's conventional variable is found without naming it.
    assert keyless_signer(spec, {"SIGSTORE_ID_TOKEN": oidc_token()}, Events()).kind == "keyless"


def test_unusable_tokens_and_options_are_refused_before_anything_is_built(sigstore_mock):
    spec = keyless_spec(sigstore_mock)
    with pytest.raises(SigningError) as caught:
        keyless_signer(spec, {"CI_SIGSTORE_TOKEN": oidc_token(audience="something-else")}, Events())
    assert "not usable" in caught.value.message and "aud: sigstore" in (caught.value.hint or "")
    with pytest.raises(SigningError) as caught:
        keyless_signer(spec, {"CI_SIGSTORE_TOKEN": oidc_token(lifetime=-60)}, Events())
    assert "not usable" in caught.value.message
    with pytest.raises(SigningError) as caught:
        keyless_signer(keyless_spec(sigstore_mock, color="blue"), {"CI_SIGSTORE_TOKEN": oidc_token()}, Events())
    assert "unknown keyless attribute 'color'" in caught.value.message
    with pytest.raises(SigningError) as caught:
        keyless_signer(keyless_spec(sigstore_mock, **{"trusted-root": ""}), {"CI_SIGSTORE_TOKEN": oidc_token()},
                       Events())
    assert "trusted-root=FILE" in (caught.value.hint or "")
    with pytest.raises(SigningError) as caught:
        keyless_signer(keyless_spec(sigstore_mock, **{"fulcio-url": "", "rekor-url": ""}),
                       {"CI_SIGSTORE_TOKEN": oidc_token()}, Events())
    assert "does not say where Fulcio and Rekor are" in caught.value.message


# --- unreachable services: no tag moves --------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["fulcio-url", "rekor-url"])
def test_an_unreachable_service_is_a_clear_error_and_moves_no_tag(registry, store, tmp_path, sigstore_mock,
                                                                  service):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    ref = f"{registry.host}/keyless/unreachable-{service}:1"
    options = keyless_options(tmp_path, ref, keyless_spec(sigstore_mock, **{service: closed}),
                              {"CI_SIGSTORE_TOKEN": oidc_token()})
    image = finalize(one_layer_image(store), options)
    with pytest.raises(SigningError) as caught:
        writer(options, store).write([image], options.tags, frozenset())
    expected = "signing certificate from Fulcio" if service == "fulcio-url" else "in Rekor at"
    assert expected in caught.value.message and closed in caught.value.message
    assert "no tag was moved" in (caught.value.hint or "")
    repo = f"keyless/unreachable-{service}"
    # The image went up by digest; no tag, no signature.
    assert signatures.get(registry.host, repo, f"manifests/{image.digest}") is not None
    assert signatures.get(registry.host, repo, "manifests/1") is None
    assert not signatures.referrer_bundles(registry.host, repo, image.digest)


def test_a_nameless_subject_gets_an_empty_name():
    statement = signing_statement("sha256:" + "ab" * 32)
    named = json.loads(with_subject_names(statement))
    assert named["subject"] == [{"name": "", "digest": {"sha256": "ab" * 32}, "annotations": {}}]
    assert with_subject_names(with_subject_names(statement)) == with_subject_names(statement)


def test_a_client_trust_config_names_the_services_and_the_urls_override_it(registry, store, tmp_path,
                                                                          sigstore_mock):
    url, root = sigstore_mock
    closed = f"http://127.0.0.1:{free_port()}"

    def service(where: str) -> dict:
        return {"url": where, "majorApiVersion": 1, "validFor": {"start": "2020-01-01T00:00:00Z"},
                "operator": "test"}

    def config(fulcio: str) -> Path:
        path = tmp_path / f"trust-{len(list(tmp_path.glob('trust-*')))}.json"
        path.write_text(json.dumps({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": json.loads(root.read_text()),
            "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                              "caUrls": [service(fulcio)], "oidcUrls": [], "rekorTlogUrls": [service(url)],
                              "tsaUrls": [], "rekorTlogConfig": {"selector": "ANY"},
                              "tsaConfig": {"selector": "ANY"}}}))
        return path

    environ = {"CI_SIGSTORE_TOKEN": oidc_token()}
    # The services the config names, no URLs given.
    spec = keyless_spec(sigstore_mock, **{"trusted-root": str(config(url)), "fulcio-url": "", "rekor-url": ""})
    options = keyless_options(tmp_path, f"{registry.host}/keyless/trust-config:1", spec, environ)
    image = finalize(one_layer_image(store), options)
    writer(options, store).write([image], options.tags, frozenset())
    assert image_verifies(registry.host, "keyless/trust-config", image.digest, root)
    # A config naming a Fulcio that is not there, corrected by fulcio-url=.
    spec = keyless_spec(sigstore_mock, **{"trusted-root": str(config(closed)), "rekor-url": ""})
    options = keyless_options(tmp_path, f"{registry.host}/keyless/trust-config:2", spec, environ)
    image = finalize(one_layer_image(store, {"second": b"image"}), options)
    writer(options, store).write([image], options.tags, frozenset())
    assert image_verifies(registry.host, "keyless/trust-config", image.digest, root)
    # Without the override, that Fulcio is the one asked.
    spec = keyless_spec(sigstore_mock, **{"trusted-root": str(config(closed)), "fulcio-url": "", "rekor-url": ""})
    options = keyless_options(tmp_path, f"{registry.host}/keyless/trust-config:3", spec, environ)
    image = finalize(one_layer_image(store, {"third": b"image"}), options)
    with pytest.raises(SigningError) as caught:
        writer(options, store).write([image], options.tags, frozenset())
    assert "signing certificate" in caught.value.message and closed.split("//")[1] in caught.value.message


def test_an_index_and_its_attestation_manifests_are_signed_keyless(registry, store, tmp_path, sigstore_mock):
    _url, root = sigstore_mock
    ref = f"{registry.host}/keyless/index:1"
    spec = keyless_spec(sigstore_mock)
    options = keyless_options(tmp_path, ref, spec, {"CI_SIGSTORE_TOKEN": oidc_token()})
    amd = finalize(one_layer_image(store, {"arch": b"amd64"}), options)
    arm = finalize(one_layer_image(store, {"arch": b"arm64"}, arch="arm64"), options)
    # An attestation manifest as BuildKit lists it.
    statement = finalize(one_layer_image(store, {"statement.json": b"{}"}), options)
    index = ImageIndex.of_images([amd, arm]).with_manifest(Descriptor(
        statement.manifest_media_type, statement.digest, len(statement.manifest_bytes()),
        annotations=((REFERENCE_DIGEST, amd.digest), (REFERENCE_TYPE, ATTESTATION_MANIFEST)),
        platform=(("architecture", "unknown"), ("os", "unknown"))))
    client = RegistryClient(environ={"HOME": "/nonexistent"}, backoff=0.01, retries=0)
    signer = keyless_signer(spec, options.environ, Events())
    hook = SignatureHook(signer, client, store, index.descriptor(), index)
    assert push_index(client, index, [amd, arm, statement], store, [parse_reference(ref)],
                      before_tags=hook) == index.digest
    for signed in (index.digest, statement.digest):
        assert image_verifies(registry.host, "keyless/index", signed, root), signed
    # One certificate for the whole push: both bundles carry the same one.
    certificates = {json.loads(b)["verificationMaterial"]["certificate"]["rawBytes"]
                    for d in (index.digest, statement.digest)
                    for b in signatures.referrer_bundles(registry.host, "keyless/index", d)}
    assert len(certificates) == 1
    assert not signatures.referrer_bundles(registry.host, "keyless/index", amd.digest)
