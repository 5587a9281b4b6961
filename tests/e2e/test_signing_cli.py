"""`dockyard build --push --sign key=...` from the command line: a two-platform image (a COPY-only Dockerfile,
so no emulator is needed) pushed to the real test registry, signed with a cosign-format key whose passphrase
comes from the environment; the index digest verifies with sigstore-js and openssl (tests/support/signatures.py),
the same build unsigned does not, and a wrong passphrase fails with exit code 11 before anything is tagged."""

from __future__ import annotations

import json
import subprocess

from dockyard.signing.keys import cosign_key_pem, parse_signing_key
from tests.e2e.helpers import dockyard, write_context
from tests.support import signatures

DOCKERFILE = "FROM scratch\nARG TARGETARCH\nCOPY hello /hello\n"


def make_key(tmp_path):
    pem = tmp_path / "ec.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pem)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(pem), "-pubout", "-out", str(tmp_path / "cosign.pub")],
                   check=True, capture_output=True)
    key = tmp_path / "cosign.key"
    key.write_text(cosign_key_pem(parse_signing_key(pem.read_text(), "ec").private_key, b"s3cret"))
    return key, tmp_path / "cosign.pub"


def test_a_signed_multi_platform_push_verifies(registry, tmp_path):
    key, public = make_key(tmp_path)
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "hello": "signed\n"})
    metadata = tmp_path / "meta.json"
    ref = f"{registry.host}/signing-cli/app:1"
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain",
                    "--cache-dir", str(tmp_path / "cache"), "-t", ref, "--push",
                    "--sign", f"key={key},passphrase-env=KEY_PASSPHRASE", "--metadata-file", str(metadata),
                    str(context), env={"KEY_PASSPHRASE": "s3cret"})
    assert done.returncode == 0, done.stderr
    digest = signatures.manifest_digest(registry.host, "signing-cli/app", "1")
    meta = json.loads(metadata.read_text())
    assert meta["containerimage.digest"] == digest
    assert {(s["digest"], s["kind"], s.get("format")) for s in meta["signatures"]} == {
        (digest, "key", "simple-signing"), (digest, "key", "bundle-v0.3")}
    assert signatures.image_verifies(registry.host, "signing-cli/app", digest, public)

    # The same image pushed without --sign under another tag has the same digest, and so the signature: a
    # different image (other content) pushed unsigned has none.
    unsigned = write_context(tmp_path / "ctx2", {"Dockerfile": DOCKERFILE, "hello": "unsigned\n"})
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain",
                    "--cache-dir", str(tmp_path / "cache"), "-t", f"{registry.host}/signing-cli/app:2", "--push",
                    str(unsigned))
    assert done.returncode == 0, done.stderr
    other = signatures.manifest_digest(registry.host, "signing-cli/app", "2")
    assert other != digest
    assert not signatures.image_verifies(registry.host, "signing-cli/app", other, public)


def test_a_wrong_passphrase_is_exit_code_11_and_nothing_is_tagged(registry, tmp_path):
    key, _public = make_key(tmp_path)
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "hello": "never\n"})
    ref = f"{registry.host}/signing-cli/refused:1"
    done = dockyard("build", "--progress", "plain", "--cache-dir", str(tmp_path / "cache"), "-t", ref, "--push",
                    "--sign", f"key={key},passphrase-env=KEY_PASSPHRASE", str(context),
                    env={"KEY_PASSPHRASE": "wrong"})
    assert done.returncode == 11, done.stderr
    assert "passphrase given for the signing key" in done.stderr and "Traceback" not in done.stderr
    assert signatures.get(registry.host, "signing-cli/refused", "manifests/1") is None


def test_manifest_create_signs_the_index_it_assembles(registry, tmp_path):
    key, public = make_key(tmp_path)
    repo = f"{registry.host}/signing-cli/assembled"
    digests = []
    for arch in ("amd64", "arm64"):
        context = write_context(tmp_path / arch, {"Dockerfile": DOCKERFILE, "hello": f"{arch}\n"})
        digest_file = tmp_path / f"{arch}.digest"
        done = dockyard("build", "--platform", f"linux/{arch}", "--progress", "plain",
                        "--cache-dir", str(tmp_path / "cache"), "--digest-file", str(digest_file),
                        "--output", f"type=registry,name={repo},push-by-digest=true", str(context))
        assert done.returncode == 0, done.stderr
        digests.append(digest_file.read_text().strip())
    done = dockyard("manifest", "create", "--progress", "plain", "-t", f"{repo}:1",
                    "--sign", f"key={key},passphrase-env=KEY_PASSPHRASE", *digests, env={"KEY_PASSPHRASE": "s3cret"})
    assert done.returncode == 0, done.stderr
    index_digest = done.stdout.strip()
    assert signatures.manifest_digest(registry.host, "signing-cli/assembled", "1") == index_digest
    assert signatures.image_verifies(registry.host, "signing-cli/assembled", index_digest, public)
    # A wrong passphrase: exit code 11 before any request, the tag not moved.
    done = dockyard("manifest", "create", "--progress", "plain", "-t", f"{repo}:2",
                    "--sign", f"key={key},passphrase-env=KEY_PASSPHRASE", *digests, env={"KEY_PASSPHRASE": "no"})
    assert done.returncode == 11, done.stderr
    assert signatures.get(registry.host, "signing-cli/assembled", "manifests/2") is None
