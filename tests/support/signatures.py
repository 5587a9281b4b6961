"""Reading an image's signatures back from a registry and verifying them with verifiers written elsewhere:
sigstore-js (@sigstore/verify, through sigstore_verify.cjs) and `openssl dgst -verify`.

Independent of dockyard's own code: the registry is read with urllib, the documents with json, and the cosign
layouts followed as cosign's own verifier follows them (the `sha256-<hex>.sig` manifest's simple-signing
layers; the referrers of the digest, from the referrers API or the `sha256-<hex>` fallback tag's index)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".ci" / "node" / "node_modules"
VERIFY_SCRIPT = Path(__file__).with_name("sigstore_verify.cjs")
MANIFEST_TYPES = ", ".join(["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                            "application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json"])
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def get(host: str, repo: str, path: str, accept: str = MANIFEST_TYPES) -> bytes | None:
    """GET /v2/REPO/PATH from the loopback registry; None for a 404."""
    request = urllib.request.Request(f"http://{host}/v2/{repo}/{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def must_get(host: str, repo: str, path: str, accept: str = MANIFEST_TYPES) -> bytes:
    body = get(host, repo, path, accept)
    assert body is not None, f"{host}/{repo}: {path} does not exist"
    return body


def manifest_digest(host: str, repo: str, tag: str) -> str:
    body = get(host, repo, f"manifests/{tag}")
    assert body is not None, f"{host}/{repo}:{tag} does not exist"
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class ClassicSignature:
    payload: bytes
    signature: bytes
    annotations: dict


def classic_signatures(host: str, repo: str, digest: str) -> list[ClassicSignature]:
    """The simple-signing layers of REPO:sha256-<hex>.sig (none when the tag does not exist)."""
    body = get(host, repo, "manifests/" + digest.replace(":", "-") + ".sig")
    if body is None:
        return []
    found = []
    for layer in json.loads(body)["layers"]:
        assert layer["mediaType"] == SIMPLE_SIGNING, layer
        payload = must_get(host, repo, f"blobs/{layer['digest']}", accept="*/*")
        annotations = layer.get("annotations") or {}
        found.append(ClassicSignature(payload, base64.b64decode(annotations["dev.cosignproject.cosign/signature"]),
                                      annotations))
    return found


def referrer_bundles(host: str, repo: str, digest: str) -> list[bytes]:
    """The bundle layers of the digest's sigstore referrers: from the referrers API when the registry has it,
    else from the referrers tag schema's index at sha256-<hex>."""
    index = get(host, repo, f"referrers/{digest}", accept="application/vnd.oci.image.index.v1+json")
    if index is None:
        index = get(host, repo, "manifests/" + digest.replace(":", "-"))
    if index is None:
        return []
    bundles = []
    for entry in json.loads(index)["manifests"]:
        if entry.get("artifactType") != BUNDLE:
            continue
        manifest = json.loads(must_get(host, repo, f"manifests/{entry['digest']}"))
        assert manifest["subject"]["digest"] == digest, manifest
        for layer in manifest["layers"]:
            if layer["mediaType"] == BUNDLE:
                bundles.append(must_get(host, repo, f"blobs/{layer['digest']}", accept="*/*"))
    return bundles


def sigstore_js(bundle: bytes, public_key: Path, artifact: bytes | None = None) -> dict:
    """sigstore-js's verdict on `bundle` with `public_key` ({"verified": bool, "payload"|"error": ...})."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp, "bundle.json")
        bundle_path.write_bytes(bundle)
        args = ["node", str(VERIFY_SCRIPT), str(bundle_path), str(public_key)]
        if artifact is not None:
            Path(tmp, "artifact").write_bytes(artifact)
            args.append(str(Path(tmp, "artifact")))
        done = subprocess.run(args, capture_output=True, text=True, timeout=120,
                              env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def message_bundle(payload: bytes, signature: bytes) -> bytes:
    """A classic signature as the bundle v0.3 message signature sigstore-js verifies (the public key named by
    a hint the key finder ignores)."""
    return json.dumps({"mediaType": BUNDLE,
                       "verificationMaterial": {"publicKey": {"hint": "classic"}, "tlogEntries": []},
                       "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(
                           hashlib.sha256(payload).digest()).decode()},
                           "signature": base64.b64encode(signature).decode()}}).encode()


def openssl_verifies(public_key: Path, signature: bytes, payload: bytes) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "sig").write_bytes(signature)
        Path(tmp, "payload").write_bytes(payload)
        done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public_key), "-signature",
                               str(Path(tmp, "sig")), str(Path(tmp, "payload"))], capture_output=True, text=True)
    return done.returncode == 0 and "Verified OK" in done.stdout


def classic_verifies(signature: ClassicSignature, digest: str, public_key: Path) -> bool:
    """cosign's check of a classic signature: the payload names `digest` as the image and is a cosign container
    image signature, and the signature over it verifies with the key, by sigstore-js and by openssl alike."""
    try:
        critical = json.loads(signature.payload)["critical"]
    except (ValueError, KeyError):
        return False
    if critical.get("image", {}).get("docker-manifest-digest") != digest or \
            critical.get("type") != "cosign container image signature":
        return False
    by_sigstore = sigstore_js(message_bundle(signature.payload, signature.signature), public_key,
                              signature.payload)["verified"]
    by_openssl = openssl_verifies(public_key, signature.signature, signature.payload)
    assert by_sigstore == by_openssl, "the two verifiers disagree"
    return by_sigstore


def bundle_verifies(bundle: bytes, digest: str, public_key: Path) -> bool:
    """cosign v3's check: sigstore-js verifies the DSSE envelope with the key, and its in-toto statement is
    cosign's signing statement about `digest`."""
    verdict = sigstore_js(bundle, public_key)
    if not verdict["verified"]:
        return False
    statement = json.loads(base64.b64decode(verdict["payload"]))
    algorithm, _, hex_digest = digest.partition(":")
    return statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1" and \
        any(s["digest"].get(algorithm) == hex_digest for s in statement["subject"])


def image_verifies(host: str, repo: str, digest: str, public_key: Path) -> bool:
    """Whether `digest` in REPO carries a classic signature and a bundle that verify with `public_key`."""
    classic = any(classic_verifies(s, digest, public_key) for s in classic_signatures(host, repo, digest))
    bundled = any(bundle_verifies(b, digest, public_key) for b in referrer_bundles(host, repo, digest))
    return classic and bundled
