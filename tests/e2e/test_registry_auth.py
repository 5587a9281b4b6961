"""Authentication end to end: builds that pull their base from and push to real registries that demand
credentials — distribution's htpasswd auth behind TLS, and its `auth: token` against the token issuer in
tests/support/token_issuer.py — with credentials from a docker config, a credential helper on PATH, and an
identity token; refusals exit 7 naming the registry and the credential source, never the secret."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.errors import AuthenticationError
from dockyard.image.reference import parse_reference
from dockyard.registry import RegistryClient
from dockyard.registry.login import login
from dockyard.registry.tls import TLSSettings
from tests.e2e.helpers import dockyard, write_context
from tests.support.registry import RegistryServer, start_tls_htpasswd_registry, start_token_registry

BUILDER, BUILDER_PASSWORD = "builder", "builder-Pa55word"
READER, READER_PASSWORD = "reader", "reader-Pa55word"
USERS = {BUILDER: BUILDER_PASSWORD, READER: READER_PASSWORD}
BASE_REPO = "base/busybox:1"


def copy_base(source: str, server: RegistryServer) -> str:
    """Copy the open registry's busybox base into an authenticated registry (skopeo, with the builder's
    credentials); returns its reference there."""
    dest = f"{server.host}/{BASE_REPO}"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--dest-creds", f"{BUILDER}:{BUILDER_PASSWORD}", f"docker://{source}", f"docker://{dest}"],
                   check=True, capture_output=True, timeout=120)
    return dest


def pushed_digest(server: RegistryServer, ref: str, tmp_path: Path) -> str:
    """The digest skopeo reads back with the builder's credentials (and the test CA, when the registry has TLS)."""
    args = ["skopeo", "inspect", "--creds", f"{BUILDER}:{BUILDER_PASSWORD}"]
    if server.ca_path is not None:
        cert_dir = tmp_path / "skopeo-certs"
        cert_dir.mkdir(exist_ok=True)
        shutil.copy(server.ca_path, cert_dir / "ca.crt")
        args.append(f"--cert-dir={cert_dir}")
    else:
        args.append("--tls-verify=false")
    out = subprocess.run([*args, f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Digest"]


def docker_config(tmp_path: Path, doc: dict) -> dict[str, str]:
    """An environment whose only credentials are `doc`, as $DOCKER_CONFIG/config.json."""
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(config_dir), "HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": "",
            "DOCKER_AUTH_CONFIG": "", "XDG_RUNTIME_DIR": str(tmp_path / "run")}


def basic_auth(host: str, user: str, password: str) -> dict:
    return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def context(tmp_path: Path, base: str) -> Path:
    return write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base}\nRUN echo authenticated > /proof\n"})


def tls_flags(server: RegistryServer) -> list[str]:
    return ["--registry-ca", f"{server.host}={server.ca_path}"] if server.ca_path is not None else []


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    server = start_token_registry(tmp_path_factory.mktemp("token-registry"), USERS, read_only=(READER,))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_htpasswd_registry(tmp_path_factory):
    server = start_tls_htpasswd_registry(tmp_path_factory.mktemp("tls-htpasswd-registry"), USERS)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["tls-htpasswd", "token"])
def auth_registry(request, busybox_base) -> tuple[RegistryServer, str]:
    """Each authenticated registry, with the busybox base in it: (server, base reference)."""
    server = request.getfixturevalue("tls_htpasswd_registry" if request.param == "tls-htpasswd" else
                                     "token_registry")
    return server, copy_base(busybox_base, server)


# --- builds through each kind of registry ------------------------------------------------------------------

def test_build_pulls_and_pushes_with_config_credentials(auth_registry, tmp_path):
    server, base = auth_registry
    target = f"{server.host}/app/config-creds:1"
    env = docker_config(tmp_path, basic_auth(server.host, BUILDER, BUILDER_PASSWORD))
    result = dockyard("build", "-q", *tls_flags(server), "-t", target, "--push", str(context(tmp_path, base)), env=env)
    assert result.returncode == 0, result.stderr
    assert pushed_digest(server, target, tmp_path) == result.stdout.strip()
    assert BUILDER_PASSWORD not in result.stdout + result.stderr


def test_wrong_password_exits_7_naming_registry_and_source(auth_registry, tmp_path):
    server, base = auth_registry
    env = docker_config(tmp_path, basic_auth(server.host, BUILDER, "not-the-password"))
    result = dockyard("build", "-q", *tls_flags(server), "-t", f"{server.host}/app/denied:1", "--push",
                      str(context(tmp_path, base)), env=env)
    assert result.returncode == 7, result.stderr
    assert server.host in result.stderr
    assert str(Path(env["DOCKER_CONFIG"]) / "config.json") in result.stderr
    assert "not-the-password" not in result.stderr and "Traceback" not in result.stderr


def test_credential_helper_on_path(auth_registry, tmp_path):
    server, base = auth_registry
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-e2e"
    # The helper protocol: `get`, the server on stdin, JSON on stdout; it logs what it was asked.
    helper.write_text(f"""#!/bin/sh
read server
echo "$1 $server" >> {tmp_path}/helper.log
[ "$server" = "{server.host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}
printf '{{"ServerURL":"%s","Username":"{BUILDER}","Secret":"{BUILDER_PASSWORD}"}}' "$server"
""")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    env = docker_config(tmp_path, {"credsStore": "e2e"})
    env["PATH"] = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    target = f"{server.host}/app/helper-creds:1"
    result = dockyard("build", "-q", *tls_flags(server), "-t", target, "--push", str(context(tmp_path, base)), env=env)
    assert result.returncode == 0, result.stderr
    assert pushed_digest(server, target, tmp_path) == result.stdout.strip()
    assert f"get {server.host}" in (tmp_path / "helper.log").read_text()


# --- token specifics ---------------------------------------------------------------------------------------

def test_tokens_are_scoped_pull_for_the_base_and_push_for_the_destination(token_registry, busybox_base, tmp_path):
    base = copy_base(busybox_base, token_registry)
    issuer = token_registry.token_issuer
    before = len(issuer.requests)
    env = docker_config(tmp_path, basic_auth(token_registry.host, BUILDER, BUILDER_PASSWORD))
    result = dockyard("build", "-q", "-t", f"{token_registry.host}/app/scoped:1", "--push",
                      str(context(tmp_path, base)), env=env)
    assert result.returncode == 0, result.stderr
    asked = [r for r in issuer.requests[before:] if r.user == BUILDER]
    scopes = {s for r in asked for s in r.scopes}
    assert "repository:base/busybox:pull" in scopes
    assert "repository:app/scoped:pull,push" in scopes
    assert not any("push" in s for s in scopes if s.startswith("repository:base/busybox:"))
    # Cached per scope: one token for the base and one for the destination (plus a mount's), not one per request.
    assert len(asked) <= 4, asked


def test_read_only_account_cannot_push(token_registry, busybox_base, tmp_path):
    base = copy_base(busybox_base, token_registry)
    env = docker_config(tmp_path, basic_auth(token_registry.host, READER, READER_PASSWORD))
    result = dockyard("build", "-q", "-t", f"{token_registry.host}/app/readonly:1", "--push",
                      str(context(tmp_path, base)), env=env)
    assert result.returncode == 7, result.stderr
    assert "app/readonly" in result.stderr and repr(READER) in result.stderr
    assert READER_PASSWORD not in result.stderr


def test_identity_token_is_exchanged_by_oauth2_refresh(token_registry, busybox_base, tmp_path):
    base = copy_base(busybox_base, token_registry)
    issuer = token_registry.token_issuer
    refresh = issuer.issue_refresh_token(BUILDER)
    env = docker_config(tmp_path, {"auths": {token_registry.host: {"identitytoken": refresh}}})
    before = len(issuer.requests)
    target = f"{token_registry.host}/app/identity:1"
    result = dockyard("build", "-q", "-t", target, "--push", str(context(tmp_path, base)), env=env)
    assert result.returncode == 0, result.stderr
    assert {(r.method, r.grant, r.user) for r in issuer.requests[before:]} == {("POST", "refresh_token", BUILDER)}
    assert pushed_digest(token_registry, target, tmp_path) == result.stdout.strip()
    assert refresh not in result.stderr


def test_expired_tokens_are_refreshed(busybox_base, tmp_path):
    server = start_token_registry(tmp_path / "short-lived", USERS, expires_in=2)
    try:
        base = parse_reference(copy_base(busybox_base, server))
        client = RegistryClient(environ=docker_config(tmp_path, basic_auth(server.host, BUILDER, BUILDER_PASSWORD)))
        issued = server.token_issuer.requests
        before = len(issued)  # skopeo's, copying the base in
        client.get_manifest(base)
        client.get_manifest(base)
        assert len(issued) == before + 1  # cached while valid
        time.sleep(2.2)
        client.get_manifest(base)
        assert len(issued) == before + 2
        assert all(r.status == 200 and r.user == BUILDER for r in issued[before:])
    finally:
        server.stop()


# --- login -------------------------------------------------------------------------------------------------

def test_login_checks_credentials_then_writes_the_config(auth_registry, tmp_path):
    server, base = auth_registry
    env = docker_config(tmp_path, {"auths": {"other.example": {"auth": "eDp5"}}, "psFormat": "x"})
    tls = TLSSettings(certs_dirs=(), ca_files=[(server.host, str(server.ca_path))]) if server.ca_path else None
    with pytest.raises(AuthenticationError) as err:
        login(server.host, BUILDER, "wrong", env, tls=tls)
    assert server.host in str(err.value) and "wrong" not in str(err.value)
    config = Path(env["DOCKER_CONFIG"]) / "config.json"
    assert BUILDER not in config.read_text()  # a refused login writes nothing

    assert login(server.host, BUILDER, BUILDER_PASSWORD, env, tls=tls) == config
    doc = json.loads(config.read_text())
    assert doc["psFormat"] == "x" and doc["auths"]["other.example"] == {"auth": "eDp5"}
    assert base64.b64decode(doc["auths"][server.host]["auth"]).decode() == f"{BUILDER}:{BUILDER_PASSWORD}"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    # What login wrote is what a build uses.
    target = f"{server.host}/app/after-login:1"
    result = dockyard("build", "-q", *tls_flags(server), "-t", target, "--push", str(context(tmp_path, base)), env=env)
    assert result.returncode == 0, result.stderr
