"""`dockyard build --push --sign keyless,...` from the command line: a two-platform image pushed to the real
test registry, signed with a Fulcio certificate for the job's OIDC token (Fulcio and Rekor: @sigstore/mock on
loopback, tests/support/sigstore_mock.py); the index digest verifies with sigstore-js against the mock's trusted
root, as does the index `dockyard manifest create --sign keyless` assembles. Without a token in the environment
the build fails at once, exit code 11, naming what the CI must give."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support import signatures
from tests.support.sigstore_mock import image_verifies, oidc_token, running_sigstore_mock

DOCKERFILE = "FROM scratch\nARG TARGETARCH\nCOPY hello /hello\n"
# The runner's own variables, emptied: a test run inside a CI job must not find that job's identity.
NO_CI_TOKEN = {"ACTIONS_ID_TOKEN_REQUEST_URL": "", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "", "SIGSTORE_ID_TOKEN": ""}


@pytest.fixture(scope="module")
def sigstore_mock(tmp_path_factory):
    with running_sigstore_mock(tmp_path_factory.mktemp("sigstore-mock")) as mock:
        yield mock


def test_a_keyless_signed_multi_platform_push_verifies(registry, tmp_path, sigstore_mock):
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "hello": "keyless\n"})
    metadata = tmp_path / "meta.json"
    ref = f"{registry.host}/keyless-cli/app:1"
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain",
                    "--cache-dir", str(tmp_path / "cache"), "-t", ref, "--push",
                    "--sign", f"keyless,oidc-token-env=JOB_TOKEN,{sigstore_mock.sign_attributes()}",
                    "--metadata-file", str(metadata), str(context),
                    env={**NO_CI_TOKEN, "JOB_TOKEN": oidc_token()})
    assert done.returncode == 0, done.stderr
    assert "COPY" in done.stdout + done.stderr  # what the refused build below must not show
    digest = signatures.manifest_digest(registry.host, "keyless-cli/app", "1")
    meta = json.loads(metadata.read_text())
    assert {(s["digest"], s["kind"], s.get("format")) for s in meta["signatures"]} == {
        (digest, "keyless", "simple-signing"), (digest, "keyless", "bundle-v0.3")}
    assert image_verifies(registry.host, "keyless-cli/app", digest, sigstore_mock.trusted_root)


def test_no_token_is_exit_code_11_before_anything_is_built(registry, tmp_path, sigstore_mock):
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "hello": "never\n"})
    done = dockyard("build", "--progress", "plain", "--cache-dir", str(tmp_path / "cache"),
                    "-t", f"{registry.host}/keyless-cli/refused:1", "--push",
                    "--sign", f"keyless,{sigstore_mock.sign_attributes()}", str(context), env=NO_CI_TOKEN)
    assert done.returncode == 11, done.stderr
    assert "OIDC identity token" in done.stderr and "id-token: write" in done.stderr and "id_tokens" in done.stderr
    assert "Traceback" not in done.stderr
    assert "COPY" not in done.stdout + done.stderr  # failed before the build began
    assert signatures.get(registry.host, "keyless-cli/refused", "manifests/1") is None


def test_manifest_create_signs_the_index_it_assembles_keyless(registry, tmp_path, sigstore_mock):
    repo = f"{registry.host}/keyless-cli/assembled"
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
                    "--sign", f"keyless,{sigstore_mock.sign_attributes()}", *digests,
                    env={**NO_CI_TOKEN, "SIGSTORE_ID_TOKEN": oidc_token()})
    assert done.returncode == 0, done.stderr
    index_digest = done.stdout.strip()
    assert signatures.manifest_digest(registry.host, "keyless-cli/assembled", "1") == index_digest
    assert image_verifies(registry.host, "keyless-cli/assembled", index_digest, sigstore_mock.trusted_root)
