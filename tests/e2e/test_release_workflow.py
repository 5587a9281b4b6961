"""The release workflow (.github/workflows/release.yml) under act, on a push of the tag v<pyproject's version>, from
a copy of this repository and nothing else: it must push a two-platform builder image and its debug variant with
attestations, signed, under every version tag; publish the sdist and the wheel; and create the release with the
changelog's section and the images' digests.

Stand-ins (what cannot be reached from a test), each on loopback:
- ghcr.io: the test registry (the `RELEASE_IMAGE` variable names it; the login step is then skipped);
- PyPI: pypiserver (`RELEASE_PYPI_URL`), which takes uploads with PyPI's upload API; trusted publishing's token
  exchange has no stand-in (the stand-in publish action requests the job's OIDC token, as the real one does first);
- GitHub's OIDC token service: a server answering ACTIONS_ID_TOKEN_REQUEST_URL with tokens for Fulcio, and Fulcio,
  Rekor and the timestamp authority: @sigstore/mock (`RELEASE_SIGN_OPTIONS`), as the keyless tests use them;
- GitHub's release API: a server recording the "create a release" call (`RELEASE_API_URL`);
- actions from GitHub (checkout, upload/download-artifact, pypa/gh-action-pypi-publish): the local actions in
  tests/support/release_actions, through act's --local-repository;
- the arm64 runner (`ubuntu-24.04-arm`) is this amd64 host, and the arm64 base image is the amd64 Debian base
  relabeled linux/arm64 (no arm64 Debian system can be made here offline): the arm64 image is built and attested
  as a real one would be, but its programs are amd64's;
- the test job's steps are skipped (`RELEASE_TESTS=skip`): the suite includes this test.
The signature is checked with sigstore-js (@sigstore/verify), a verifier no one here wrote.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import tomllib
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.repository_copy import copy_repository
from tests.support.wheelhouse import build_wheelhouse

REPO = Path(__file__).resolve().parents[2]
ACT = Path(sys.executable).parent / "act"
PYPI_SERVER = Path(sys.executable).parent / "pypi-server"
STAND_IN_ACTIONS = REPO / "tests" / "support" / "release_actions"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, "
                  f"{OCI_INDEX}")

pytestmark = pytest.mark.skipif(not ACT.exists() or not PYPI_SERVER.exists(),
                                reason="act or pypiserver is not installed (the test extra)")


def relabeled_two_platform_base(base: str) -> str:
    """An index of `base` (an amd64 image) for linux/amd64 and, the same layers under a config saying arm64, for
    linux/arm64: the stand-in for a Debian base of both CPUs."""
    host, rest = base.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    api = f"http://{host}/v2/{repo}"
    got = requests.get(f"{api}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}, timeout=60)
    got.raise_for_status()
    manifest, media_type = got.json(), got.headers["Content-Type"]
    config = requests.get(f"{api}/blobs/{manifest['config']['digest']}", timeout=60).json()
    arm_config = json.dumps({**config, "architecture": "arm64"}).encode()
    arm_config_digest = f"sha256:{hashlib.sha256(arm_config).hexdigest()}"
    upload = requests.post(f"{api}/blobs/uploads/", timeout=60)
    location = urllib.parse.urljoin(f"http://{host}", upload.headers["Location"])
    requests.put(location, params={"digest": arm_config_digest}, data=arm_config,
                 headers={"Content-Type": "application/octet-stream"}, timeout=60).raise_for_status()
    arm_manifest = json.dumps({**manifest, "config": {**manifest["config"], "digest": arm_config_digest,
                                                      "size": len(arm_config)}}).encode()
    arm_digest = f"sha256:{hashlib.sha256(arm_manifest).hexdigest()}"
    requests.put(f"{api}/manifests/{arm_digest}", data=arm_manifest, headers={"Content-Type": media_type},
                 timeout=60).raise_for_status()
    entries = [{"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(got.content).hexdigest()}",
                "size": len(got.content), "platform": {"architecture": "amd64", "os": "linux"}},
               {"mediaType": media_type, "digest": arm_digest, "size": len(arm_manifest),
                "platform": {"architecture": "arm64", "os": "linux"}}]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    requests.put(f"{api}/manifests/two-platforms", data=index, headers={"Content-Type": OCI_INDEX},
                 timeout=60).raise_for_status()
    return f"{host}/{repo}:two-platforms"


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering with `answer(handler) -> (status, JSON)` and keeping every request."""

    def __init__(self, answer) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.command, self.path, dict(self.headers), body))
                status, document = answer(self.path, body)
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@contextmanager
def pypiserver(packages: Path) -> Iterator[str]:
    """pypiserver on loopback taking uploads without authentication; yields its base URL."""
    from tests.support.registry import free_port

    packages.mkdir()
    port = free_port()
    process = subprocess.Popen([str(PYPI_SERVER), "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", ".",
                                str(packages)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeError(f"pypiserver exited: {process.stderr.read() if process.stderr else ''}") \
                        from None
                threading.Event().wait(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def release_base(registry, image_debian_repo, tmp_path_factory) -> str:
    """The builder image's base as tests/support/builder_image.py makes it (the same image, so the builder image
    tests' cached steps serve this build too), as a two-platform index."""
    from tests.support.debian_apt_base import push_debian_apt_base

    base = push_debian_apt_base(registry.host, tmp_path_factory.mktemp("release-base"),
                                f"deb [trusted=yes] {image_debian_repo} ./\n")
    return relabeled_two_platform_base(base)


def test_a_tag_push_releases_images_packages_and_notes(registry, release_base, tmp_path):
    from tests.support import signatures
    from tests.support.sigstore_mock import image_verifies, oidc_token, running_sigstore_mock

    repo = copy_repository(tmp_path / "repo", tag=f"v{VERSION}")
    image = f"{registry.host}/dockyard-build/dockyard"
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": f"refs/tags/v{VERSION}", "ref_name": f"v{VERSION}",
                                 "repository": {"full_name": "dockyard-build/dockyard"}}))

    def token(path: str, body: bytes) -> tuple[int, dict]:
        audience = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)["audience"][0]
        subject = f"https://github.com/dockyard-build/dockyard/.github/workflows/release.yml@refs/tags/v{VERSION}"
        return 200, {"value": oidc_token(audience=audience, subject=subject)}

    releases = Recorder(lambda path, body: (201, {"html_url": f"https://github.test/releases/v{VERSION}"}))
    tokens = Recorder(token)
    wheelhouse = build_wheelhouse(tmp_path / "wheelhouse")
    try:
        (tmp_path / "sigstore").mkdir()
        with running_sigstore_mock(tmp_path / "sigstore") as mock, pypiserver(tmp_path / "packages") as index_url:
            args = [str(ACT), "push", "-e", str(event), "-P", "ubuntu-latest=-self-hosted",
                    "-P", "ubuntu-24.04-arm=-self-hosted", "--action-cache-path", str(tmp_path / "act-cache"),
                    "-s", "GITHUB_TOKEN=job-token"]
            for name, path in (("actions/checkout@v4", "checkout"), ("actions/upload-artifact@v4", "upload-artifact"),
                               ("actions/download-artifact@v4", "download-artifact"),
                               ("pypa/gh-action-pypi-publish@release/v1", "pypi-publish")):
                args += ["--local-repository", f"{name}={STAND_IN_ACTIONS / path}"]
            variables = {"RELEASE_IMAGE": image, "RELEASE_BUILDER_BASE": release_base, "RELEASE_TESTS": "skip",
                         "RELEASE_PYPI_URL": index_url, "RELEASE_SIGN_OPTIONS": mock.sign_attributes(),
                         "RELEASE_API_URL": releases.url}
            for name, value in variables.items():
                args += ["--var", f"{name}={value}"]
            env = {"SRC": str(repo), "ARTIFACTS": str(tmp_path / "artifacts"), "PIP_NO_INDEX": "1",
                   "PIP_FIND_LINKS": str(wheelhouse), "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME",
                                                                                   str(tmp_path / "cache")),
                   "ACTIONS_ID_TOKEN_REQUEST_URL": f"{tokens.url}/token?api-version=2.0",
                   "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "job-request-token"}
            for name, value in env.items():
                args += ["--env", f"{name}={value}"]
            result = subprocess.run(args, cwd=repo, env={**os.environ, "CI": "true"}, capture_output=True,
                                    text=True, timeout=3000)
            log = result.stdout + result.stderr
            (tmp_path / "act.log").write_text(log)
            assert result.returncode == 0, log[-10000:]

            # The images: one index per variant under every version tag, both platforms, each attested.
            from tests.support.index_readback import read_index

            digests = {}
            for variant, tags in (("executor", [VERSION, VERSION.rsplit(".", 1)[0], VERSION.split(".")[0], "latest"]),
                                  ("debug", [f"{VERSION}-debug", f"{VERSION.rsplit('.', 1)[0]}-debug",
                                             f"{VERSION.split('.')[0]}-debug", "debug"])):
                found = {signatures.manifest_digest(registry.host, "dockyard-build/dockyard", tag) for tag in tags}
                assert len(found) == 1, (variant, found)
                digests[variant] = found.pop()
                index = read_index(f"{image}:{tags[0]}")
                platforms = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}"
                                   for m in index["manifests"] if m["platform"]["architecture"] != "unknown")
                assert platforms == ["linux/amd64", "linux/arm64"], index
                attestations = [m for m in index["manifests"]
                                if m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"]
                assert len(attestations) == 2, index
                # Signed keyless for the release workflow's identity, as sigstore-js verifies it.
                assert image_verifies(registry.host, "dockyard-build/dockyard", digests[variant], mock.trusted_root,
                                      identity=f"https://github.com/dockyard-build/dockyard/.github/workflows/"
                                               f"release.yml@refs/tags/v{VERSION}")
            assert digests["executor"] != digests["debug"]

            # The packages, on the index as pip finds them.
            assert sorted(p.name for p in (tmp_path / "packages").iterdir()) == [
                f"dockyard-{VERSION}-py3-none-any.whl", f"dockyard-{VERSION}.tar.gz"]
            listing = requests.get(f"{index_url}simple/dockyard/", timeout=30).text
            assert f"dockyard-{VERSION}-py3-none-any.whl" in listing
    finally:
        releases.shutdown()
        tokens.shutdown()

    # The release: the tag, the changelog's section, the digests of both images.
    [(method, path, headers, body)] = releases.requests
    assert (method, path) == ("POST", "/repos/dockyard-build/dockyard/releases")
    assert headers["Authorization"] == "Bearer job-token"
    release = json.loads(body)
    notes = subprocess.run([sys.executable, str(REPO / "scripts" / "release.py"), "notes", VERSION],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    assert release["tag_name"] == f"v{VERSION}" and release["body"].startswith(notes)
    assert f"`{image}@{digests['executor']}`" in release["body"]
    assert f"`{image}@{digests['debug']}`" in release["body"]
    # Every token the jobs asked for was asked with the job's request token: Sigstore's for the signatures,
    # PyPI's for trusted publishing.
    audiences = {urllib.parse.parse_qs(urllib.parse.urlparse(p).query)["audience"][0] for _, p, _, _ in tokens.requests}
    assert audiences == {"sigstore", "pypi"}
    assert all(h["Authorization"] == "bearer job-request-token" for _, _, h, _ in tokens.requests)
