"""The registry client, pull and push, against a real docker-registry (distribution 2.8) on loopback.

skopeo is the independent reader: what dockyard pushes must be what skopeo sees. A tiny http.server stands in
for the registry only where the real one cannot be made to misbehave the way a test needs (token auth,
cross-host redirects, relative upload locations, schema 1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from dockyard.errors import AuthenticationError, RegistryError
from dockyard.events import Events, ImagePushed, TransferFinished
from dockyard.image.blobs import BlobStore
from dockyard.image.model import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
                                  Platform, canonical_json, sha256_digest)
from dockyard.image.reference import parse_reference
from tests.support.images import one_layer_image
from dockyard.registry import RegistryClient, pull_image, push_image
from dockyard.registry.push import EarlyUploads
from dockyard.registry.auth import (DockerConfigProvider, default_credential_store, docker_config_path,
                                    parse_www_authenticate)


# --- helpers -----------------------------------------------------------------------------------------------

make_image = one_layer_image



def skopeo(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr}"
    return result


def skopeo_inspect(image: str, raw: bool = False) -> dict:
    args = ["inspect", "--tls-verify=false"] + (["--raw"] if raw else []) + [f"docker://{image}"]
    return json.loads(skopeo(*args).stdout)


@pytest.fixture
def client() -> RegistryClient:
    # An empty environment: no credentials from the machine running the tests.
    return RegistryClient(environ={"HOME": "/nonexistent"})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def store_is_clean(store: BlobStore, digest: str) -> bool:
    tmp = store.root / "tmp"
    return not store.has(digest) and (not tmp.exists() or not any(tmp.iterdir()))


# --- push --------------------------------------------------------------------------------------------------

def test_push_two_tags_is_what_skopeo_sees(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store, {"hello.txt": b"hello\n"})
    events: list = []
    client.events = Events(events.append)
    refs = [parse_reference(f"{registry.host}/push/app:1.0"), parse_reference(f"{registry.host}/push/app:latest")]

    digest = push_image(client, image, store, refs)

    assert digest == image.digest
    for ref in refs:
        info = skopeo_inspect(str(ref))
        assert info["Digest"] == digest
        assert info["Architecture"] == "amd64"
        assert info["Layers"] == [image.layers[0].digest]
        assert skopeo_inspect(str(ref), raw=True) == image.manifest_json()
    assert sorted(skopeo_inspect(str(refs[0]))["RepoTags"]) == ["1.0", "latest"]
    assert [e.reference for e in events if isinstance(e, ImagePushed)] == [str(r) for r in refs]

    # skopeo can copy it out, byte for byte.
    skopeo("copy", "--src-tls-verify=false", f"docker://{refs[0]}", f"oci:{tmp_path / 'copy'}:t")
    copied = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'copy'}:t").stdout)
    assert copied == image.manifest_json()
    assert (tmp_path / "copy/blobs/sha256" / image.layers[0].digest.split(":")[1]).read_bytes() == \
        store.read_bytes(image.layers[0].digest)

    # Pushing again uploads nothing, nor checks a blob: the repository has the manifest, hence its blobs.
    events.clear()
    assert push_image(client, image, store, refs[:1]) == digest
    assert not [e for e in events if isinstance(e, TransferFinished)]
    # A new tag for it is still put: the tag names the image.
    moved = parse_reference(f"{registry.host}/push/app:again")
    assert push_image(client, image, store, [moved]) == digest
    assert skopeo_inspect(str(moved))["Digest"] == digest
    # In a repository without the manifest, every blob is checked (HEAD) and found, or mounted.
    events.clear()
    assert push_image(client, image, store, [parse_reference(f"{registry.host}/push/other:1")]) == digest
    finished = [e for e in events if isinstance(e, TransferFinished)]
    assert finished and all(e.skipped in ("exists", "mounted") for e in finished)


def test_push_to_several_repositories_uploads_per_repository(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store)
    refs = [parse_reference(f"{registry.host}/multi/one:a"), parse_reference(f"{registry.host}/multi/two:b")]
    digest = push_image(client, image, store, refs)
    for ref in refs:
        assert skopeo_inspect(str(ref))["Digest"] == digest


def test_early_uploads_leave_the_push_only_the_rest(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store)
    refs = [parse_reference(f"{registry.host}/early/one:a"), parse_reference(f"{registry.host}/early/two:b")]
    early = EarlyUploads(client, store, refs)
    for layer in image.layers:
        early.add(layer)
    uploaded = early.finish()
    assert uploaded == {layer.digest for layer in image.layers}
    for ref in refs:  # every repository has the blobs, and nothing is tagged yet
        assert client.blob_exists(ref, image.layers[0].digest)
        assert requests.head(f"http://{registry.host}/v2/{ref.repository}/manifests/{ref.tag}").status_code == 404
    events = []
    client.events = Events(events.append)
    digest = push_image(client, image, store, refs, uploaded)
    checked = {e.digest for e in events if isinstance(e, TransferFinished)}
    assert image.layers[0].digest not in checked and image.config_descriptor().digest in checked
    for ref in refs:
        assert skopeo_inspect(str(ref))["Digest"] == digest


def test_a_failed_early_upload_is_sent_again_by_the_push(registry, tmp_path):
    class FailsOnce(RegistryClient):
        """The real client, except that its first upload fails (a registry cannot be made to fail on cue)."""
        failed = False

        def upload_blob(self, *args, **kwargs):
            if not self.failed:
                self.failed = True
                raise RegistryError("the connection dropped")
            return super().upload_blob(*args, **kwargs)

    client = FailsOnce(environ={"HOME": "/nonexistent"})
    store = BlobStore(tmp_path / "store")
    image = make_image(store)
    ref = parse_reference(f"{registry.host}/early/retried:1")
    early = EarlyUploads(client, store, [ref])
    early.add(image.layers[0])
    assert early.finish() == frozenset()
    assert push_image(client, image, store, [ref], early.finish()) == image.digest
    assert skopeo_inspect(str(ref))["Digest"] == image.digest


def test_push_and_pull_docker_schema2(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store, manifest_type=DOCKER_MANIFEST)
    ref = parse_reference(f"{registry.host}/docker/schema2:v1")
    digest = push_image(client, image, store, [ref])
    raw = skopeo_inspect(str(ref), raw=True)
    assert raw["mediaType"] == DOCKER_MANIFEST

    pulled = pull_image(client, ref, Platform(), BlobStore(tmp_path / "pulled"))
    assert pulled.digest == digest
    assert pulled.image.manifest_media_type == DOCKER_MANIFEST
    assert pulled.image.digest == digest


# --- pull --------------------------------------------------------------------------------------------------

def test_pull_round_trip(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store, {"a": b"A" * 3000, "b": b"B"})
    ref = parse_reference(f"{registry.host}/pull/app:v1")
    digest = push_image(client, image, store, [ref])

    target = BlobStore(tmp_path / "pulled")
    pulled = pull_image(client, ref, Platform(), target)

    assert pulled.digest == digest
    assert pulled.index_digest is None
    assert pulled.reference == ref
    assert pulled.image.layers == image.layers
    assert pulled.image.container_config == image.container_config
    assert pulled.image.digest == digest  # the model reproduces the manifest exactly
    for layer in image.layers:
        assert target.read_bytes(layer.digest) == store.read_bytes(layer.digest)
    assert target.read_bytes(image.config_descriptor().digest) == image.config_bytes()

    # By digest too.
    by_digest = pull_image(client, ref.with_digest(digest), Platform(), BlobStore(tmp_path / "pulled2"))
    assert by_digest.digest == digest


@pytest.mark.parametrize("index_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_pull_selects_platform_from_index(registry, client, tmp_path, index_type):
    store = BlobStore(tmp_path / "store")
    manifest_type = OCI_MANIFEST if index_type == OCI_INDEX else DOCKER_MANIFEST
    repo = parse_reference(f"{registry.host}/platforms/{'oci' if index_type == OCI_INDEX else 'docker'}:latest")
    images = {arch: make_image(store, arch=arch, manifest_type=manifest_type) for arch in ("amd64", "arm64")}
    for arch, image in images.items():
        push_image(client, image, store, [repo.with_tag(arch)])
    entries = [{"mediaType": manifest_type, "digest": image.digest, "size": len(image.manifest_bytes()),
                "platform": {"architecture": arch, "os": "linux", **({"variant": "v8"} if arch == "arm64" else {})}}
               for arch, image in images.items()]
    # An attestation-style entry (buildx attaches these): never selected, never listed as a platform.
    entries.append({"mediaType": manifest_type, "digest": images["amd64"].digest,
                    "size": len(images["amd64"].manifest_bytes()),
                    "platform": {"architecture": "unknown", "os": "unknown"}})
    index = canonical_json({"schemaVersion": 2, "mediaType": index_type, "manifests": entries})
    index_digest = client.put_manifest(repo, "latest", index, index_type)
    assert index_digest == sha256_digest(index)

    for arch in ("arm64", "amd64"):
        pulled = pull_image(client, repo, Platform("linux", arch), BlobStore(tmp_path / f"pull-{arch}"))
        assert pulled.digest == images[arch].digest
        assert pulled.index_digest == index_digest
        assert pulled.image.platform.architecture == arch
        assert pulled.image.layers == images[arch].layers

    with pytest.raises(RegistryError) as err:
        pull_image(client, repo, Platform("linux", "s390x"), BlobStore(tmp_path / "none"))
    text = str(err.value)
    assert "linux/s390x" in text and "linux/amd64" in text and "linux/arm64/v8" in text
    assert "unknown" not in text
    assert "--platform" in text


def test_pull_missing_image(registry, client, tmp_path):
    ref = parse_reference(f"{registry.host}/does/not-exist:nope")
    with pytest.raises(RegistryError) as err:
        pull_image(client, ref, Platform(), BlobStore(tmp_path / "s"))
    assert f"image not found: {ref}" in str(err.value)
    assert err.value.hint
    assert not isinstance(err.value, AuthenticationError)


def test_unreachable_registry(tmp_path):
    port = closed_port()
    ref = parse_reference(f"127.0.0.1:{port}/some/image:tag")
    client = RegistryClient(environ={}, timeout=(5, 5))
    with pytest.raises(RegistryError) as err:
        pull_image(client, ref, Platform(), BlobStore(tmp_path / "s"))
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text and "some/image" in text
    assert "connection refused" in text
    assert "is the registry running" in text


def test_insecure_registries_use_plain_http():
    client = RegistryClient(environ={}, insecure_registries=["reg.internal:5000", "other.internal"])
    assert client.scheme("registry.example.com") == "https"
    assert client.scheme("reg.internal:5000") == "http"
    assert client.scheme("reg.internal:5001") == "https"
    assert client.scheme("other.internal:443") == "http"
    assert client.scheme("localhost:5000") == "http"
    assert client.scheme("127.0.0.1:5000") == "http"


def test_https_to_a_plain_http_registry_hints_insecure(registry):
    # 0.0.0.0 reaches the loopback registry but is not a loopback name, so the client speaks https to it.
    # (No proxies from the environment: a proxy would answer for 0.0.0.0 instead of the registry.)
    session = requests.Session()
    session.trust_env = False
    client = RegistryClient(environ={}, timeout=(5, 5), session=session)
    ref = parse_reference(f"0.0.0.0:{registry.port}/x:y")
    assert client.scheme(ref.registry) == "https"
    with pytest.raises(RegistryError) as err:
        client.get_manifest(ref)
    text = str(err.value)
    assert "TLS" in text and f"--insecure-registry 0.0.0.0:{registry.port}" in text
    # Named insecure, the same registry works.
    insecure = RegistryClient(environ={}, insecure_registries=[f"0.0.0.0:{registry.port}"], session=session)
    with pytest.raises(RegistryError, match="image not found"):
        insecure.get_manifest(ref)


def _registry_blob_file(registry, digest: str) -> Path:
    path = registry.blob_data_path(digest)
    assert path.exists(), path
    return path


@pytest.mark.parametrize("tamper", ["flip", "grow"])
def test_corrupted_layer_is_rejected_and_not_stored(registry, client, tmp_path, tamper):
    store = BlobStore(tmp_path / "store")
    image = make_image(store)
    ref = parse_reference(f"{registry.host}/corrupt/{tamper}:v1")
    push_image(client, image, store, [ref])
    layer = image.layers[0]
    blob_file = _registry_blob_file(registry, layer.digest)
    data = bytearray(blob_file.read_bytes())
    if tamper == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data += b"extra"
    blob_file.write_bytes(bytes(data))

    target = BlobStore(tmp_path / "pulled")
    with pytest.raises(RegistryError) as err:
        pull_image(client, ref, Platform(), target)
    assert layer.digest in str(err.value)
    assert store_is_clean(target, layer.digest)


def test_tampered_manifest_is_rejected(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store)
    ref = parse_reference(f"{registry.host}/corrupt/manifest:v1")
    digest = push_image(client, image, store, [ref])
    manifest_file = _registry_blob_file(registry, digest)
    manifest_file.write_bytes(manifest_file.read_bytes() + b"\n")  # still valid JSON, different digest

    with pytest.raises(RegistryError) as err:
        client.get_manifest(ref.with_digest(digest))
    assert "hashes to" in str(err.value)
    with pytest.raises(RegistryError) as err:
        client.get_manifest(ref)  # by tag: checked against Docker-Content-Digest
    assert "hashes to" in str(err.value)


def test_config_and_manifest_layer_counts_must_agree(registry, client, tmp_path):
    store = BlobStore(tmp_path / "store")
    image = make_image(store)
    repo = parse_reference(f"{registry.host}/broken/counts:v1")
    # A config that lists no diff_ids for the manifest's one layer.
    config = canonical_json({**image.config_json(), "rootfs": {"type": "layers", "diff_ids": []}})
    config_digest = store.put_bytes(config)
    for digest, size in ((config_digest, len(config)), (image.layers[0].digest, image.layers[0].size)):
        client.upload_blob(repo, digest, size, store)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config_digest, "size": len(config)},
                               "layers": [image.layers[0].descriptor.to_json()]})
    client.put_manifest(repo, "v1", manifest, OCI_MANIFEST)
    with pytest.raises(RegistryError) as err:
        pull_image(client, repo, Platform(), BlobStore(tmp_path / "pulled"))
    assert "1 layers" in str(err.value) and "0 diff_ids" in str(err.value)


# --- auth, redirects and odd registries (a tiny fake, where the real registry can't be made to do this) -------

class FakeRegistry:
    """A token-authenticated registry: /v2/ needs a Bearer token from /token (Basic alice:s3cret); blob GETs
    redirect to another host name (localhost vs 127.0.0.1); uploads answer with a relative Location."""

    USER, PASSWORD = "alice", "s3cret"

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _authorized(self, url) -> bool:
                match = re.match(r"^/v2/(.+?)/(?:manifests|blobs)/", url.path)
                repo = match.group(1) if match else ""
                token_ok = self.headers.get("Authorization", "").startswith(f"Bearer tok:repository:{repo}:")
                if not token_ok:
                    realm = f"http://127.0.0.1:{fake.port}/token"
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                               {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",'
                                                    f'scope="repository:{repo}:pull"'})
                return token_ok

            def _handle(self):
                url = urlsplit(self.path)
                fake.seen.append((self.command, url.path, self.headers.get("Authorization")))
                if url.path == "/token":
                    expected = "Basic " + base64.b64encode(f"{fake.USER}:{fake.PASSWORD}".encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        return self._send(401, b"{}")
                    scope = parse_qs(url.query)["scope"][0]
                    return self._send(200, json.dumps({"access_token": f"tok:{scope}", "expires_in": 300}).encode())
                if url.path.startswith("/cdn/"):
                    return self._send(200, fake.blobs[url.path[len("/cdn/"):]])
                if url.path.startswith("/upload/"):
                    query = parse_qs(url.query)
                    assert query["_state"] == ["xyz"], query
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    digest = query["digest"][0]
                    if sha256_digest(body) != digest:
                        return self._send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"bad"}]}')
                    fake.blobs[digest] = body
                    return self._send(201, headers={"Docker-Content-Digest": digest})
                if not self._authorized(url):
                    return
                parts = url.path.split("/")
                kind, ident = parts[-2], parts[-1]
                if kind == "manifests" and self.command == "GET":
                    if ident not in fake.manifests:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"nope"}]}')
                    body, media = fake.manifests[ident]
                    return self._send(200, body, {"Content-Type": media})
                if kind == "blobs" and self.command == "HEAD":
                    return self._send(200 if ident in fake.blobs else 404)
                if kind == "blobs":
                    location = f"http://localhost:{fake.port}/cdn/{ident}"
                    return self._send(307, headers={"Location": location})
                if kind == "uploads" and self.command == "POST":
                    return self._send(202, headers={"Location": "/upload/u1?_state=xyz"})
                self._send(405)

            do_GET = do_HEAD = do_PUT = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_registry():
    fake = FakeRegistry()
    yield fake
    fake.close()


def _docker_config(tmp_path: Path, host: str, user: str, password: str) -> dict[str, str]:
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {f"http://{host}": {"auth": auth}}}))
    return {"DOCKER_CONFIG": str(config_dir)}


def test_token_auth_and_redirect_without_credentials(fake_registry, tmp_path):
    data = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fake_registry.blobs[digest] = data
    manifest = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    fake_registry.manifests["v1"] = (manifest, OCI_MANIFEST)
    client = RegistryClient(environ=_docker_config(tmp_path, fake_registry.host, "alice", "s3cret"))
    repo = parse_reference(f"{fake_registry.host}/team/app:v1")

    body, media_type, got_digest = client.get_manifest(repo)
    assert (body, media_type, got_digest) == (manifest, OCI_MANIFEST, sha256_digest(manifest))

    store = BlobStore(tmp_path / "store")
    client.fetch_blob(repo, digest, store, size=len(data))
    assert store.read_bytes(digest) == data
    token_requests = [s for s in fake_registry.seen if s[1] == "/token"]
    assert token_requests and all(auth and auth.startswith("Basic ") for _, _, auth in token_requests)
    cdn = [s for s in fake_registry.seen if s[1].startswith("/cdn/")]
    assert cdn and all(auth is None for _, _, auth in cdn), "Authorization leaked to the redirect target"

    # Upload: a relative Location with its own query string.
    upload = b"uploaded"
    upload_digest = store.put_bytes(upload)
    assert client.upload_blob(repo, upload_digest, len(upload), store) is True
    assert fake_registry.blobs[upload_digest] == upload
    assert client.upload_blob(repo, upload_digest, len(upload), store) is False  # HEAD finds it now


def test_refused_credentials_name_their_source_not_the_secret(fake_registry, tmp_path):
    environ = _docker_config(tmp_path, fake_registry.host, "alice", "wrong-password")
    client = RegistryClient(environ=environ)
    with pytest.raises(AuthenticationError) as err:
        client.get_manifest(parse_reference(f"{fake_registry.host}/team/app:v1"))
    text = str(err.value)
    assert fake_registry.host in text and "alice" in text
    assert str(Path(environ["DOCKER_CONFIG"]) / "config.json") in text
    assert "wrong-password" not in text

    anonymous = RegistryClient(environ={"HOME": str(tmp_path / "nohome")})
    with pytest.raises(AuthenticationError) as err:
        anonymous.get_manifest(parse_reference(f"{fake_registry.host}/team/app:v1"))
    assert "no credentials" in str(err.value)


def test_schema1_is_refused_clearly(fake_registry, tmp_path):
    schema1 = json.dumps({"schemaVersion": 1, "name": "old", "tag": "latest", "fsLayers": []}).encode()
    fake_registry.manifests["latest"] = (schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws")
    client = RegistryClient(environ=_docker_config(tmp_path, fake_registry.host, "alice", "s3cret"))
    with pytest.raises(RegistryError) as err:
        pull_image(client, parse_reference(f"{fake_registry.host}/old:latest"), Platform(),
                   BlobStore(tmp_path / "s"))
    assert "schema 1" in str(err.value)


# --- small units -------------------------------------------------------------------------------------------

def test_parse_www_authenticate():
    [bearer] = parse_www_authenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push"')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                             "scope": "repository:a/b:pull,push"}
    basic, bearer = parse_www_authenticate('Basic realm="a \\"quoted\\" realm", Bearer realm=http://x/t')
    assert basic.scheme == "basic" and basic.params == {"realm": 'a "quoted" realm'}
    assert bearer.params == {"realm": "http://x/t"}
    assert parse_www_authenticate("") == []


def test_docker_config_credentials(tmp_path):
    hub = base64.b64encode(b"hubuser:hubpass").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": hub},
        "https://registry.example.com": {"username": "u", "password": "p"},
        "other.example.com:5000": {},  # a credsStore placeholder: no secret here
    }}))
    environ = {"DOCKER_CONFIG": str(tmp_path)}
    assert docker_config_path(environ) == tmp_path / "config.json"
    assert docker_config_path({"HOME": "/home/x"}) == Path("/home/x/.docker/config.json")
    store = default_credential_store(environ)
    hub_creds = store.lookup("docker.io")
    assert (hub_creds.username, hub_creds.password) == ("hubuser", "hubpass")
    assert "hubpass" not in repr(hub_creds)
    assert store.lookup("registry.example.com").username == "u"
    assert store.lookup("registry.example.com:5000") is None  # host matching is exact
    assert store.lookup("other.example.com:5000") is None
    assert DockerConfigProvider(tmp_path / "missing.json").lookup("docker.io") is None
