"""Credential sources and their precedence, credential helpers (real scripts on a temporary PATH), the token
cache's scoping, and login/logout's config file handling."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.errors import AuthenticationError, UsageError
from dockyard.registry.auth import covers, scope_set
from dockyard.registry.credentials import (CredentialHelper, DockerConfigProvider, credential_providers,
                                           default_credential_store)
from dockyard.registry.login import login_registry_name, logout, write_config


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def helper_bin(tmp_path) -> Path:
    """A PATH directory for docker-credential-* scripts."""
    path = tmp_path / "bin"
    path.mkdir()
    return path


def add_helper(bin_dir: Path, name: str, script: str) -> Path:
    """A docker-credential-NAME shell script; `$1` is get/store/erase and the request is on stdin."""
    helper = bin_dir / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    return helper


# A helper that knows one server, logs what it was asked, and says "not found" for everything else.
KNOWN_SERVER_HELPER = """
read server
echo "$1 $server" >> "{log}"
if [ "$server" = "{server}" ]; then
  echo '{{"ServerURL":"{server}","Username":"{user}","Secret":"{secret}"}}'
else
  echo "credentials not found in native keychain"; exit 1
fi
"""


def isolated_environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", **extra}


def test_auths_forms_auth_username_password_and_identity_token(tmp_path):
    config = write_json(tmp_path / "config.json", {"auths": {
        "a.example": {"auth": b64("alice:pa:ss")},  # a ':' in the password is part of it
        "https://b.example/v1/": {"username": "bob", "password": "pw"},
        "c.example": {"auth": b64("carol:"), "identitytoken": "refresh-me"},
        "quay.io/team": {"auth": b64("team:pw")},  # podman's per-namespace key: not for all of quay.io
    }})
    provider = DockerConfigProvider(config, {})
    a = provider.lookup("a.example")
    assert (a.username, a.password, a.identity_token) == ("alice", "pa:ss", "")
    assert "a.example" in a.source and str(config) in a.source
    assert provider.lookup("b.example").username == "bob"
    c = provider.lookup("c.example")
    assert (c.username, c.password, c.identity_token) == ("carol", "", "refresh-me")
    assert "refresh-me" not in repr(c) and "pa:ss" not in repr(a)
    assert provider.lookup("quay.io") is None
    assert provider.lookup("a.example:443") is None  # hosts match exactly, port included


def test_invalid_config_and_auth_name_the_file_not_the_content(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"auths": {"x": {"auth": "c2VjcmV0"}')
    with pytest.raises(AuthenticationError) as err:
        DockerConfigProvider(bad_json, {}).lookup("x")
    assert str(bad_json) in str(err.value) and "c2VjcmV0" not in str(err.value)
    no_colon = write_json(tmp_path / "nocolon.json", {"auths": {"x": {"auth": b64("justuser")}}})
    with pytest.raises(AuthenticationError, match="no ':'"):
        DockerConfigProvider(no_colon, {}).lookup("x")


def test_source_order_across_files(tmp_path):
    docker_config = tmp_path / "dc"
    kaniko = tmp_path / "kaniko" / "config.json"
    runtime = tmp_path / "run"
    files = {
        "docker_config": write_json(docker_config / "config.json", {"auths": {"one.example": {"auth": b64("dc:1")}}}),
        "auth_file": write_json(tmp_path / "auth.json", {"auths": {"one.example": {"auth": b64("raf:1")},
                                                                    "two.example": {"auth": b64("raf:2")}}}),
        "home": write_json(tmp_path / "home/.docker/config.json", {"auths": {"five.example": {"auth": b64("h:5")}}}),
        "podman": write_json(runtime / "containers/auth.json", {"auths": {"four.example": {"auth": b64("p:4")},
                                                                          "five.example": {"auth": b64("p:5")}}}),
        "kaniko": write_json(kaniko, {"auths": {"four.example": {"auth": b64("k:4")},
                                                "six.example": {"auth": b64("k:6")}}}),
    }
    gitlab = json.dumps({"auths": {"two.example": {"auth": b64("gl:2")}, "three.example": {"auth": b64("gl:3")}}})
    environ = {"HOME": str(tmp_path / "home"), "DOCKER_CONFIG": str(docker_config),
               "REGISTRY_AUTH_FILE": str(files["auth_file"]), "DOCKER_AUTH_CONFIG": gitlab,
               "XDG_RUNTIME_DIR": str(runtime)}
    store = default_credential_store(environ, kaniko_config=kaniko)
    users = {host: store.lookup(host).username for host in
             ("one.example", "two.example", "three.example", "four.example", "six.example")}
    assert users == {"one.example": "dc", "two.example": "raf", "three.example": "gl", "four.example": "p",
                     "six.example": "k"}
    assert "DOCKER_AUTH_CONFIG" in store.lookup("three.example").source
    # DOCKER_CONFIG replaces ~/.docker, as for docker: the home config is not read while it is set.
    assert store.lookup("five.example").username == "p"
    del environ["DOCKER_CONFIG"]
    store = default_credential_store(environ, kaniko_config=kaniko)
    assert store.lookup("five.example").username == "h"
    # The same file named twice is asked once.
    same = credential_providers({"DOCKER_CONFIG": str(kaniko.parent), "HOME": str(tmp_path / "home")},
                                kaniko_config=kaniko)
    assert [p.describe() for p in same].count(str(kaniko)) == 1


def test_docker_hub_credentials_under_any_of_its_names(tmp_path):
    config = write_json(tmp_path / "config.json", {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:x")}}})
    provider = DockerConfigProvider(config, {})
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert provider.lookup(name).username == "hub"


def test_cred_helpers_beat_creds_store_which_beats_auths(tmp_path, helper_bin):
    log = tmp_path / "helper.log"
    add_helper(helper_bin, "special", KNOWN_SERVER_HELPER.format(log=log, server="special.example", user="sp",
                                                                 secret="sp-secret"))
    add_helper(helper_bin, "store", KNOWN_SERVER_HELPER.format(log=log, server="stored.example", user="st",
                                                               secret="st-secret"))
    config = write_json(tmp_path / "home/.docker/config.json", {
        "credHelpers": {"special.example": "special"},
        "credsStore": "store",
        "auths": {"special.example": {"auth": b64("file:1")}, "stored.example": {"auth": b64("file:2")},
                  "plain.example": {"auth": b64("file:3")}},
    })
    store = default_credential_store(isolated_environ(tmp_path), kaniko_config=tmp_path / "none")
    special = store.lookup("special.example")
    assert (special.username, special.password) == ("sp", "sp-secret")
    assert "docker-credential-special" in special.source and str(config) in special.source
    assert "sp-secret" not in special.source
    assert store.lookup("stored.example").username == "st"
    # The store has nothing for plain.example: its auths entry serves.
    assert store.lookup("plain.example").username == "file"
    assert log.read_text().split("\n")[:3] == ["get special.example", "get stored.example", "get plain.example"]


def test_helper_identity_token_and_docker_hub_server_address(tmp_path, helper_bin):
    log = tmp_path / "helper.log"
    add_helper(helper_bin, "tok", KNOWN_SERVER_HELPER.format(log=log, server="https://index.docker.io/v1/",
                                                             user="<token>", secret="refresh"))
    write_json(tmp_path / "home/.docker/config.json", {"credsStore": "tok"})
    creds = default_credential_store(isolated_environ(tmp_path), kaniko_config=tmp_path / "none").lookup("docker.io")
    assert (creds.identity_token, creds.password) == ("refresh", "")


def test_missing_and_failing_helpers_are_named(tmp_path, helper_bin):
    write_json(tmp_path / "home/.docker/config.json", {"credsStore": "absent"})
    store = default_credential_store(isolated_environ(tmp_path), kaniko_config=tmp_path / "none")
    with pytest.raises(AuthenticationError) as err:
        store.lookup("r.example")
    assert "docker-credential-absent" in str(err.value) and "not installed" in str(err.value)

    add_helper(helper_bin, "broken", 'echo "keyring is locked" >&2; exit 3\n')
    write_json(tmp_path / "home/.docker/config.json", {"credsStore": "broken"})
    with pytest.raises(AuthenticationError) as err:
        default_credential_store(isolated_environ(tmp_path), kaniko_config=tmp_path / "none").lookup("r.example")
    text = str(err.value)
    assert "docker-credential-broken" in text and "keyring is locked" in text and "exit status 3" in text

    add_helper(helper_bin, "garbage", 'echo "not json"\n')
    with pytest.raises(AuthenticationError, match="not its JSON protocol"):
        CredentialHelper("garbage", isolated_environ(tmp_path), "test").get("r.example")


def test_helper_store_and_erase_protocol(tmp_path, helper_bin):
    log = tmp_path / "helper.log"
    add_helper(helper_bin, "rec", f'echo "$1" >> "{log}"; cat >> "{log}"; echo >> "{log}"\n')
    helper = CredentialHelper("rec", isolated_environ(tmp_path), "test")
    helper.store("r.example:5000", "u", "s3cret")
    helper.erase("r.example:5000")
    lines = log.read_text().splitlines()
    assert lines[0] == "store"
    assert json.loads(lines[1]) == {"ServerURL": "r.example:5000", "Username": "u", "Secret": "s3cret"}
    assert lines[2:] == ["erase", "r.example:5000"]


def test_scopes_cover_what_they_grant():
    assert scope_set("repository:a:pull repository:b:pull") == {"repository:a:pull", "repository:b:pull"}
    assert scope_set(None) == frozenset()
    push = scope_set(["repository:a:pull,push", "repository:b:pull"])
    assert covers(push, scope_set("repository:a:pull"))
    assert covers(push, scope_set("repository:b:pull"))
    assert not covers(push, scope_set("repository:b:push"))
    assert not covers(scope_set("repository:a:pull"), scope_set("repository:a:pull,push"))
    assert not covers(scope_set("repository:a:pull"), scope_set("repository:ab:pull"))
    assert covers(push, frozenset())


def test_login_registry_names():
    assert login_registry_name("https://index.docker.io/v1/") == "docker.io"
    assert login_registry_name("registry-1.docker.io") == "docker.io"
    assert login_registry_name("HTTPS://Registry.Example:5000/") == "registry.example:5000"
    with pytest.raises(UsageError):
        login_registry_name("https://")


def test_write_config_keeps_content_is_private_and_follows_symlinks(tmp_path):
    real = write_json(tmp_path / "dotfiles/config.json", {"auths": {}, "psFormat": "table {{.ID}}"})
    link_dir = tmp_path / "docker"
    link_dir.mkdir()
    (link_dir / "config.json").symlink_to(real)
    write_config(link_dir / "config.json", {"auths": {"x": {"auth": "eDp5"}}, "psFormat": "table {{.ID}}"})
    assert (link_dir / "config.json").is_symlink()
    assert json.loads(real.read_text())["psFormat"] == "table {{.ID}}"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    assert [p.name for p in real.parent.iterdir()] == ["config.json"]  # no temporary file left behind


def test_logout_removes_every_key_for_the_host_and_erases_from_the_helper(tmp_path, helper_bin):
    log = tmp_path / "helper.log"
    add_helper(helper_bin, "rec", f'echo "$1 $(cat)" >> "{log}"\n')
    config = write_json(tmp_path / "home/.docker/config.json", {
        "credHelpers": {"r.example": "rec"},
        "auths": {"r.example": {}, "https://r.example/v1/": {"auth": b64("u:p")}, "other.example": {"auth": "eDp5"}},
        "currentContext": "default"})
    assert logout("r.example", isolated_environ(tmp_path)) == config
    doc = json.loads(config.read_text())
    assert doc["auths"] == {"other.example": {"auth": "eDp5"}} and doc["currentContext"] == "default"
    assert log.read_text() == "erase r.example\n"
    # Not logged in: nothing to do, and no error (docker's behaviour).
    logout("never.example", isolated_environ(tmp_path))
