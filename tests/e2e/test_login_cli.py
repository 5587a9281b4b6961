"""`dockyard login` / `dockyard logout` against a real registry with htpasswd auth, and the build that uses
what login wrote."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support.registry import RegistryServer

USERS = {"ci": "s3cret pass"}


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("htpasswd-registry"), htpasswd=USERS)
    yield server
    server.stop()


def _login(registry: str, env: dict, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dockyard", "login", registry, *args],
                          input=password, capture_output=True, text=True, timeout=120,
                          env={**env, "CI": "true"})


def _env(tmp_path) -> dict:
    return {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config"), "HOME": str(tmp_path / "home")}


def test_login_writes_a_config_a_build_then_pushes_with(auth_registry, busybox_base, tmp_path):
    env = _env(tmp_path)
    done = _login(auth_registry.host, env, "-u", "ci", "--password-stdin", password=USERS["ci"] + "\n")
    assert done.returncode == 0, done.stderr
    assert "Login Succeeded" in done.stdout and USERS["ci"] not in done.stdout + done.stderr
    config_path = tmp_path / "docker-config" / "config.json"
    entry = json.loads(config_path.read_text())["auths"][auth_registry.host]
    assert base64.b64decode(entry["auth"]).decode() == f"ci:{USERS['ci']}"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600

    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo hi > /hi\n"})
    target = f"{auth_registry.host}/team/app:1"
    built = dockyard("build", "-q", "-t", target, "--push", str(context), env=env)
    assert built.returncode == 0, built.stderr
    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"ci:{USERS['ci']}",
                                f"docker://{target}"], capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == built.stdout.strip()

    out = subprocess.run([sys.executable, "-m", "dockyard", "logout", auth_registry.host], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert auth_registry.host not in json.loads(config_path.read_text()).get("auths", {})
    refused = dockyard("build", "-t", target, "--push", str(context), env=env)
    assert refused.returncode == 7, refused.stderr


def test_a_wrong_password_is_refused_and_leaves_the_config_alone(auth_registry, tmp_path):
    env = _env(tmp_path)
    config_path = tmp_path / "docker-config" / "config.json"
    config_path.parent.mkdir()
    config_path.write_text(json.dumps({"auths": {"other.example.com": {"auth": "eDp5"}}}))
    refused = _login(auth_registry.host, env, "-u", "ci", "--password-stdin", password="wrong")
    assert refused.returncode == 7, refused.stderr
    assert auth_registry.host in refused.stderr and "wrong" not in refused.stderr
    assert json.loads(config_path.read_text()) == {"auths": {"other.example.com": {"auth": "eDp5"}}}


def test_password_on_the_command_line_warns_like_docker(auth_registry, tmp_path):
    done = _login(auth_registry.host, _env(tmp_path), "-u", "ci", "-p", USERS["ci"])
    assert done.returncode == 0, done.stderr
    assert "WARNING! Using --password via the CLI is insecure. Use --password-stdin." in done.stderr
    missing_user = _login(auth_registry.host, _env(tmp_path), "--password-stdin", password="x")
    assert missing_user.returncode == 2 and "--username" in missing_user.stderr


def test_login_to_a_tls_registry_trusts_the_ca_in_certs_d(tmp_path):
    from tests.support.registry import start_tls_htpasswd_registry

    server = start_tls_htpasswd_registry(tmp_path / "registry", USERS)
    try:
        certs_d = tmp_path / "certs.d" / server.host
        certs_d.mkdir(parents=True)
        (certs_d / "ca.crt").write_bytes(server.ca_path.read_bytes())
        env = {**_env(tmp_path), "DOCKYARD_CERTS_D": str(tmp_path / "certs.d")}
        done = _login(server.host, env, "-u", "ci", "--password-stdin", password=USERS["ci"])
        assert done.returncode == 0, done.stderr
        untrusted = _login(server.host, {**env, "DOCKYARD_CERTS_D": str(tmp_path / "empty")}, "-u", "ci",
                           "--password-stdin", password=USERS["ci"])
        assert untrusted.returncode == 6 and server.host in untrusted.stderr
    finally:
        server.stop()
