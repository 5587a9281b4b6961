"""`--sign key=...`: the keys read (PEM in its forms, cosign's encrypted format against published test vectors),
and the signatures stored as cosign stores them, in the real test registry, verified by sigstore-js and openssl
(tests/support/signatures.py), with the ordering promise: signatures before tags, and a signing failure moves
no tag."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.errors import SigningError, UsageError
from dockyard.events import Events
from dockyard.image.blobs import BlobStore
from dockyard.image.index import ATTESTATION_MANIFEST, REFERENCE_DIGEST, REFERENCE_TYPE, ImageIndex
from dockyard.image.model import Descriptor
from dockyard.image.reference import parse_reference
from dockyard.options import BuildOptions
from dockyard.outputs import CachedLayers, OutputWriter, finalize
from dockyard.registry import RegistryClient
from dockyard.signing.keys import cosign_key_pem, decrypt_cosign_key, load_signing_key, parse_signing_key
from dockyard.signing.spec import SigningSpec
from tests.support import signatures
from tests.support.images import one_layer_image

# go-securesystemslib's encrypted package (cosign's key sealing) test vectors, passphrase "supersecret": the bytes
# "reallyimportant" sealed as they are, and sealed as a JSON string (base64) under each scrypt parameter set.
SEALED_RAW = (b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},'
              b'"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},'
              b'"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},'
              b'"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}')
SEALED_VECTORS = [
    b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA="},'
    b'"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},'
    b'"ciphertext":"08n43p5G5yviPEZpO7tPPF4aZQkWiWjkv4taFdhDBA0tamKH4nw="}',
    b'{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},'
    b'"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},'
    b'"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}',
    b'{"kdf":{"name":"scrypt","params":{"N":131072,"r":8,"p":1},"salt":"m38E3kouJTtiheLQN22NQ8DTito5hrjpUIskqcd375k="},'
    b'"cipher":{"name":"nacl/secretbox","nonce":"Y6PM13yA+o44pE/W1ZBwczeGnTV/m9Zc"},'
    b'"ciphertext":"6H8sqj1K6B6yDjtH5AQ6lbFigg/C2yDDJc4rYJ79w9aVPImFIPI="}',
]
# A key `cosign generate-key-pair` wrote with an empty passphrase (published in a project's test suite).
COSIGN_KEY = """\
-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJLYU9OQzduQVJLOVgxM1FoaWFucjAwTTBGYys2Sitr
dnAxN1FuanpiVk9nPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJVOHZqWWtqMlZOUFZGdlZFZWZ3bXZ5VGloUERrelBoaCJ9LCJj
aXBoZXJ0ZXh0IjoidWNWMnQ4TTZVNFJvb29FOXc0d3dkc3E1RDYrS2RKY245dERT
KzFwRDRGN040SVJOWEgzSTBua3h1a3NackFOUHR1emIvTkVYQ201dUp3Zjh3Qzl1
VlprbXdwNU5jRUZ6b3ZNS3JCZmNvdXdjaEkrMzkrQ0NhbVZPbzBucmRnZjhvcmpK
dXdrWDBYL1phY0RUTERGaUxyc1laMWVMMmlqMGU1MVRpZmVQNTl4WXNPK1FnM1Jv
OURRVjNQMk9ndDFDaVFHeGg1VXhUZytGc3c9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
"""


def openssl(*args: str) -> str:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=True)
    return done.stdout


def ec_key(path: Path) -> Path:
    """A P-256 key as `openssl ecparam -genkey` writes it (EC PARAMETERS, then EC PRIVATE KEY), and its public
    key beside it (PATH.pub)."""
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", str(path))
    openssl("ec", "-in", str(path), "-pubout", "-out", str(path) + ".pub")
    return path


def public_key(path: Path) -> Path:
    return Path(str(path) + ".pub")


# --- keys ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sealed", SEALED_VECTORS)
def test_cosign_sealing_test_vectors_open(sealed):
    assert base64.b64decode(json.loads(decrypt_cosign_key(sealed, b"supersecret"))) == b"reallyimportant"
    with pytest.raises(SigningError, match=r"passphrase .* is wrong"):
        decrypt_cosign_key(sealed, b"supersecreT")
    assert decrypt_cosign_key(SEALED_RAW, b"supersecret") == b"reallyimportant"


def test_a_key_cosign_wrote_is_read(tmp_path):
    key = parse_signing_key(COSIGN_KEY, "cosign.key", b"")
    assert key.public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    # The key signs, and openssl verifies the signature with its public key.
    (tmp_path / "pub.pem").write_text(key.public_pem)
    assert signatures.openssl_verifies(tmp_path / "pub.pem", key.sign(b"payload"), b"payload")
    assert not signatures.openssl_verifies(tmp_path / "pub.pem", key.sign(b"payload"), b"payloaD")
    with pytest.raises(SigningError, match=r"passphrase .* is wrong"):
        parse_signing_key(COSIGN_KEY, "cosign.key", b"not-empty")


def test_unsupported_scrypt_parameters_are_refused():
    sealed = SEALED_RAW.replace(b'"N":32768', b'"N":1048576')
    with pytest.raises(SigningError, match="unsupported scrypt parameters N=1048576"):
        decrypt_cosign_key(sealed, b"supersecret")


def test_every_key_form_signs_what_openssl_verifies(tmp_path):
    plain = ec_key(tmp_path / "ec.pem")
    pkcs8 = tmp_path / "pkcs8.pem"
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", str(plain), "-out", str(pkcs8))
    encrypted = tmp_path / "enc.pem"
    openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(plain), "-out", str(encrypted), "-passout",
            "pass:open sesame")
    ours = tmp_path / "cosign.key"
    ours.write_text(cosign_key_pem(parse_signing_key(plain.read_text(), "ec").private_key, b"open sesame"))
    assert ours.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    (tmp_path / "pass").write_text("open sesame\n")  # as `echo` writes it: the newline is no part of it
    env = {"PASS": "open sesame"}
    for spec in (f"key={plain}", f"key={pkcs8}", f"key={encrypted},passphrase-env=PASS",
                 f"key={ours},passphrase-file={tmp_path / 'pass'}", f"key={ours},passphrase-env=PASS"):
        key = load_signing_key(SigningSpec.parse(spec), env)
        assert signatures.openssl_verifies(public_key(plain), key.sign(b"data"), b"data"), spec
    # cosign's own variable, when --sign names none
    assert load_signing_key(SigningSpec.parse(f"key={ours}"), {"COSIGN_PASSWORD": "open sesame"})


def test_bad_keys_and_passphrases_are_clear_errors(tmp_path):
    plain = ec_key(tmp_path / "ec.pem")
    ours = tmp_path / "cosign.key"
    ours.write_text(cosign_key_pem(parse_signing_key(plain.read_text(), "ec").private_key, b"right"))
    rsa = tmp_path / "rsa.pem"
    openssl("genrsa", "-out", str(rsa), "2048")
    cases = [
        (f"key={tmp_path / 'missing.key'}", {}, "does not exist"),
        (f"key={ours}", {}, "is encrypted, and no passphrase was given"),
        (f"key={ours},passphrase-env=NOPE", {}, "passphrase variable NOPE is not set"),
        (f"key={ours},passphrase-env=P", {"P": "wrong"}, "passphrase given for the signing key .* is wrong"),
        (f"key={ours},passphrase-file={tmp_path / 'nofile'}", {}, "cannot read the passphrase file"),
        (f"key={rsa}", {}, "is a RSA key; dockyard signs with ECDSA P-256"),
        (f"key={public_key(plain)}", {}, "holds a PUBLIC KEY, not a private key"),
    ]
    for spec, env, message in cases:
        with pytest.raises(SigningError, match=message):
            load_signing_key(SigningSpec.parse(spec), env)
    assert SigningError.exit_code == 11


def test_payloads_are_the_bytes_cosign_signs():
    from dockyard.signing.formats import docker_reference, signature_tag, signing_statement, simple_signing_payload

    digest = "sha256:" + "ab" * 32
    assert simple_signing_payload(docker_reference("docker.io", "library/alpine"), digest) == (
        b'{"critical":{"identity":{"docker-reference":"index.docker.io/library/alpine"},'
        b'"image":{"docker-manifest-digest":"' + digest.encode() + b'"},"type":"cosign container image signature"},'
        b'"optional":null}')
    assert docker_reference("localhost:5000", "team/app") == "localhost:5000/team/app"
    assert json.loads(signing_statement(digest)) == {
        "_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": "ab" * 32}, "annotations": {}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}
    assert signature_tag(digest) == "sha256-" + "ab" * 32 + ".sig"


def test_sign_option_parsing():
    assert SigningSpec.parse("key=k.pem,passphrase-env=V") == SigningSpec("key", "k.pem", passphrase_env="V")
    assert SigningSpec.parse("keyless,oidc-token-env=T").options == (("oidc-token-env", "T"),)
    for text, message in [("", "needs a value"), ("passphrase-env=V", "no key=PATH"),
                          ("key=k,passphrase-env=V,passphrase-file=F", "not both"), ("key=k,colour=red", "unknown"),
                          ("key=", "needs a value")]:
        with pytest.raises(UsageError, match=message):
            SigningSpec.parse(text)


# --- in the registry -----------------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def writer(options: BuildOptions, store: BlobStore, host: str | None = None) -> OutputWriter:
    client = RegistryClient(environ={"HOME": "/nonexistent"}, backoff=0.01, retries=0)
    return OutputWriter(options, Events(), client=lambda: client, store=store,
                        cached_layers=CachedLayers(lambda: client, store))


def signed_options(tmp_path: Path, ref: str, key: Path, **kwargs) -> BuildOptions:
    return BuildOptions(context=tmp_path, environ={"HOME": "/nonexistent"}, tags=(ref,), push=True,
                        signing=SigningSpec.parse(f"key={key}"), **kwargs)


def test_one_image_signed_in_both_forms_verifies_and_others_do_not(registry, store, tmp_path):
    key = ec_key(tmp_path / "k.pem")
    other = ec_key(tmp_path / "other.pem")
    options = signed_options(tmp_path, f"{registry.host}/signing/one:1", key)
    image = finalize(one_layer_image(store), options)
    written = writer(options, store).write([image], options.tags, frozenset())
    assert written.digest == image.digest and written.index is None
    assert signatures.manifest_digest(registry.host, "signing/one", "1") == image.digest
    assert signatures.image_verifies(registry.host, "signing/one", image.digest, public_key(key))
    assert not signatures.image_verifies(registry.host, "signing/one", image.digest, public_key(other))
    # The classic payload is cosign's, naming the repository and the digest.
    [classic] = signatures.classic_signatures(registry.host, "signing/one", image.digest)
    repository = f"{registry.host}/signing/one"
    assert json.loads(classic.payload) == {"critical": {"identity": {"docker-reference": repository},
                                                        "image": {"docker-manifest-digest": image.digest},
                                                        "type": "cosign container image signature"},
                                           "optional": None}
    # Debian's registry has no referrers API: the bundle is found through the fallback tag sha256-<hex>.
    assert [s["stored"] for s in written.signatures if "referrer" in s] == ["fallback-tag"]
    assert [s["tag"] for s in written.signatures if "tag" in s] == [
        f"{registry.host}/signing/one:{image.digest.replace(':', '-')}.sig"]
    # An image never signed does not verify.
    unsigned_options = replace(options, tags=(f"{registry.host}/signing/one:unsigned",), signing=None)
    unsigned = finalize(one_layer_image(store), unsigned_options)
    writer(unsigned_options, store).write([unsigned], unsigned_options.tags, frozenset())
    assert not signatures.image_verifies(registry.host, "signing/one", unsigned.digest, public_key(key))


def test_tampered_signatures_do_not_verify(registry, store, tmp_path):
    key = ec_key(tmp_path / "k.pem")
    options = signed_options(tmp_path, f"{registry.host}/signing/tamper:1", key)
    image = finalize(one_layer_image(store), options)
    writer(options, store).write([image], options.tags, frozenset())
    [classic] = signatures.classic_signatures(registry.host, "signing/tamper", image.digest)
    [bundle] = signatures.referrer_bundles(registry.host, "signing/tamper", image.digest)
    assert signatures.classic_verifies(classic, image.digest, public_key(key))
    assert signatures.bundle_verifies(bundle, image.digest, public_key(key))
    # The payload changed to name another image: the signature no longer matches it.
    other = "sha256:" + "0" * 64
    forged = replace(classic, payload=classic.payload.replace(image.digest.encode(), other.encode()))
    assert not signatures.classic_verifies(forged, other, public_key(key))
    # The signature checked against a changed manifest (another digest): the payload names the old one.
    assert not signatures.classic_verifies(classic, other, public_key(key))
    assert not signatures.bundle_verifies(bundle, other, public_key(key))
    # The bundle's statement changed: the envelope's signature fails.
    doc = json.loads(bundle)
    doc["dsseEnvelope"]["payload"] = doc["dsseEnvelope"]["payload"][:-8] + "AAAAAAA="
    assert not signatures.sigstore_js(json.dumps(doc).encode(), public_key(key))["verified"]


def test_signatures_of_several_signers_accumulate(registry, store, tmp_path):
    first, second = ec_key(tmp_path / "a.pem"), ec_key(tmp_path / "b.pem")
    options = signed_options(tmp_path, f"{registry.host}/signing/many:1", first)
    image = finalize(one_layer_image(store), options)
    writer(options, store).write([image], options.tags, frozenset())
    writer(replace(options, signing=SigningSpec.parse(f"key={second}")), store).write([image], options.tags,
                                                                                       frozenset())
    # The same key again adds no classic layer (cosign's duplicate detection), a bundle referrer each time.
    writer(options, store).write([image], options.tags, frozenset())
    classic = signatures.classic_signatures(registry.host, "signing/many", image.digest)
    assert len(classic) == 2
    assert [signatures.classic_verifies(s, image.digest, public_key(first)) for s in classic] == [True, False]
    assert [signatures.classic_verifies(s, image.digest, public_key(second)) for s in classic] == [False, True]
    bundles = signatures.referrer_bundles(registry.host, "signing/many", image.digest)
    assert len(bundles) == 3
    assert signatures.image_verifies(registry.host, "signing/many", image.digest, public_key(first))
    assert signatures.image_verifies(registry.host, "signing/many", image.digest, public_key(second))


def test_an_index_and_its_attestation_manifests_are_signed(registry, store, tmp_path):
    key = ec_key(tmp_path / "k.pem")
    ref = f"{registry.host}/signing/index:1"
    options = signed_options(tmp_path, ref, key)
    amd = finalize(one_layer_image(store, {"arch": b"amd64"}), options)
    arm = finalize(one_layer_image(store, {"arch": b"arm64"}, arch="arm64"), options)
    # An attestation manifest as BuildKit lists it (the attest engineer's builder writes real ones).
    statement = finalize(one_layer_image(store, {"statement.json": b"{}"}), options)
    index = ImageIndex.of_images([amd, arm]).with_manifest(Descriptor(
        statement.manifest_media_type, statement.digest, len(statement.manifest_bytes()),
        annotations=((REFERENCE_DIGEST, amd.digest), (REFERENCE_TYPE, ATTESTATION_MANIFEST)),
        platform=(("architecture", "unknown"), ("os", "unknown"))))
    from dockyard.registry.push import push_index
    from dockyard.signing.sign import KeySigner, SignatureHook

    client = RegistryClient(environ={"HOME": "/nonexistent"}, backoff=0.01, retries=0)
    hook = SignatureHook(KeySigner(load_signing_key(options.signing, {})), client, store, index.descriptor(), index)
    digest = push_index(client, index, [amd, arm, statement], store, [parse_reference(ref)], before_tags=hook)
    assert digest == index.digest
    for signed in (index.digest, statement.digest):
        assert signatures.image_verifies(registry.host, "signing/index", signed, public_key(key)), signed
    # The platform manifests are not signed (cosign signs the digest it is given, not recursively).
    assert not signatures.classic_signatures(registry.host, "signing/index", amd.digest)
    assert [s.digest for s in hook.signatures if s.tag] == [index.digest, statement.digest]


def test_a_registry_with_the_referrers_api_gets_no_fallback_tag(registry, store, tmp_path):
    """Debian's registry has no referrers API; the fault proxy stands in for one that has (it answers the
    referrers query with an index, as such a registry does) to test the detection."""
    from tests.support.fault_proxy import FaultProxy

    key = ec_key(tmp_path / "k.pem")
    proxy = FaultProxy(registry.port).start()
    try:
        index = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
        proxy.add("status", method="GET", path="/referrers/sha256:", status=200, times=-1, body=index,
                  headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
        options = signed_options(tmp_path, f"{proxy.host}/signing/api:1", key)
        image = finalize(one_layer_image(store), options)
        written = writer(options, store).write([image], options.tags, frozenset())
        [referrer] = [s for s in written.signatures if "referrer" in s]
        assert referrer["stored"] == "referrers-api"
        # The referrer manifest was put by digest, and no fallback index under sha256-<hex>.
        assert proxy.requests("PUT", "/manifests/" + referrer["referrer"] + "$")
        assert not proxy.requests("PUT", "/manifests/" + image.digest.replace(":", "-") + "$")
        assert proxy.requests("PUT", "/manifests/1$")
    finally:
        proxy.stop()


def test_a_refused_signature_moves_no_tag(registry, store, tmp_path):
    from tests.support.fault_proxy import FaultProxy

    key = ec_key(tmp_path / "k.pem")
    proxy = FaultProxy(registry.port).start()
    try:
        ref = f"{proxy.host}/signing/refused:1"
        options = signed_options(tmp_path, ref, key, platforms=("linux/amd64", "linux/arm64"))
        images = [finalize(one_layer_image(store, {"arch": b"amd64"}), options),
                  finalize(one_layer_image(store, {"arch": b"arm64"}, arch="arm64"), options)]
        proxy.add("status", method="PUT", path=r"/manifests/sha256-[0-9a-f]{64}\.sig$", status=403, times=-1)
        with pytest.raises(SigningError) as caught:
            writer(options, store).write(images, options.tags, frozenset())
        assert "cannot store the signature" in caught.value.message
        assert "no tag was moved" in (caught.value.hint or "")
        # The index went up by digest, the tag was never tried.
        assert proxy.requests("PUT", r"/manifests/sha256:")
        assert not proxy.requests("PUT", "/manifests/1$")
        assert signatures.get(registry.host, "signing/refused", "manifests/1") is None
    finally:
        proxy.stop()


def test_a_tag_holding_something_else_is_not_overwritten(registry, store, tmp_path):
    key = ec_key(tmp_path / "k.pem")
    options = signed_options(tmp_path, f"{registry.host}/signing/occupied:1", key)
    image = finalize(one_layer_image(store), options)
    # An ordinary image sits where the signature manifest would go.
    squatter = finalize(one_layer_image(store), replace(options, signing=None))
    squatter_ref = f"{registry.host}/signing/occupied:{image.digest.replace(':', '-')}.sig"
    writer(replace(options, signing=None, tags=(squatter_ref,)), store).write([squatter], (squatter_ref,),
                                                                            frozenset())
    with pytest.raises(SigningError, match="holds something that is not a signature manifest"):
        writer(options, store).write([image], options.tags, frozenset())
    assert signatures.manifest_digest(registry.host, "signing/occupied",
                                      image.digest.replace(":", "-") + ".sig") == squatter.digest
    assert signatures.get(registry.host, "signing/occupied", "manifests/1") is None


def test_a_bad_passphrase_fails_before_anything_is_pushed(registry, store, tmp_path):
    key = ec_key(tmp_path / "k.pem")
    sealed = tmp_path / "cosign.key"
    sealed.write_text(cosign_key_pem(parse_signing_key(key.read_text(), "k").private_key, b"right"))
    options = replace(signed_options(tmp_path, f"{registry.host}/signing/early:1", key),
                      signing=SigningSpec.parse(f"key={sealed},passphrase-env=P"), environ={"P": "wrong"})
    with pytest.raises(SigningError, match="wrong"):
        writer(options, store)
    with pytest.raises(UsageError, match="--sign signs the image in the registry"):
        writer(replace(options, push=False, environ={"P": "right"}), store).write(
            [finalize(one_layer_image(store), options)], (), frozenset())
