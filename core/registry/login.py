"""`dockyard login` / `dockyard logout`: check credentials against a registry and keep them in the docker
config file, as `docker login` does, so that docker, buildah, skopeo and dockyard builds all find them.

The file is `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. Its other content is kept; it is written
atomically (a temporary file renamed over it) with mode 0600. When the config names a credential helper for
the registry (`credHelpers`, `credsStore`), the secret goes to the helper and the file gets an empty entry,
as docker writes it.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import requests

from ..errors import AuthenticationError, OutputError, RegistryError, UsageError
from ..files import replace_file
from .auth import proxies_for
from .client import RegistryClient, describe_network_error
from .credentials import (DOCKER_HUB_AUTH_KEYS, Credentials, CredentialStore, DockerConfigProvider, StaticProvider,
                          docker_config_path, helper_server_address, normalize_registry_key)
from .tls import TLSSettings

_HUB_NAMES = {normalize_registry_key(k) for k in DOCKER_HUB_AUTH_KEYS}
PING_TIMEOUT = (15.0, 30.0)


def login_registry_name(registry: str) -> str:
    """What the user typed (`host:5000`, `https://host/v1/`, `index.docker.io`) as host[:port]; docker.io for
    Docker Hub."""
    host = normalize_registry_key(registry)
    if not host:
        raise UsageError(f"invalid registry name {registry!r}",
                                  hint="e.g. dockyard login registry.example.com")
    return "docker.io" if host in _HUB_NAMES else host


def login(registry: str, username: str, password: str, environ: Mapping[str, str], *,
          tls: TLSSettings | None = None, insecure_registries: Iterable[str] = ()) -> Path:
    """Check `username`/`password` against the registry (GET /v2/, with the token dance if it asks for one),
    then save them; returns the config file written. A refusal raises AuthenticationError and writes nothing."""
    registry = login_registry_name(registry)
    if not username or not password:
        raise UsageError(f"a user name and a password are needed to log in to {registry}",
                                  hint="dockyard login REGISTRY -u USER --password-stdin")
    creds = Credentials(username, password, "the command line (dockyard login)")
    client = RegistryClient(environ=environ, tls=tls, insecure_registries=tuple(insecure_registries),
                            credentials=CredentialStore([StaticProvider(registry, creds)]), timeout=PING_TIMEOUT)
    check_credentials(client, registry)
    path = docker_config_path(environ)
    config = DockerConfigProvider(path, environ)
    doc = config.load()
    helper = config.helper_for(doc, registry)
    auths = _auths(doc, path)
    if helper is not None:
        helper.store(registry, username, password)
        auths[helper_server_address(registry)] = {}
    else:
        auths[helper_server_address(registry)] = {
            "auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
    write_config(path, doc)
    return path


def logout(registry: str, environ: Mapping[str, str]) -> Path:
    """Remove the registry's credentials from the config file (every key naming that host) and from its
    credential helper; returns the config file. Logging out when not logged in is not an error (docker's)."""
    registry = login_registry_name(registry)
    path = docker_config_path(environ)
    config = DockerConfigProvider(path, environ)
    doc = config.load()
    helper = config.helper_for(doc, registry)
    if helper is not None:
        helper.erase(registry)
    auths = _auths(doc, path)
    hosts = _HUB_NAMES if registry == "docker.io" else {registry}
    stale = [key for key in auths if normalize_registry_key(key) in hosts]
    for key in stale:
        del auths[key]
    if stale:
        write_config(path, doc)
    return path


def check_credentials(client: RegistryClient, registry: str) -> None:
    """GET /v2/ with the client's credentials, answering one challenge; anything but 200 afterwards is a refusal."""
    api_host = "registry-1.docker.io" if registry == "docker.io" else registry
    url = f"{client.scheme(registry)}://{api_host}/v2/"
    resp = _ping(client, url, registry, None)
    if resp.status_code == 401:
        header = client.auth.answer(registry, None, resp.headers.get("WWW-Authenticate", ""))
        if header is None:
            raise AuthenticationError(f"registry {registry} asks for an authentication scheme dockyard does not "
                                      f"support: {resp.headers.get('WWW-Authenticate', '(none)')!r}")
        resp = _ping(client, url, registry, header)
    if resp.status_code in (401, 403):
        raise AuthenticationError(f"registry {registry} refused {client.auth.credential_source(registry)} "
                                  f"(HTTP {resp.status_code})", hint="check the user name and the password or token")
    if resp.status_code != 200:
        raise RegistryError(f"registry {registry} answered HTTP {resp.status_code} to GET /v2/",
                            hint=f"is {registry} a container registry (Distribution API v2)?")


def _ping(client: RegistryClient, url: str, registry: str, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization else {}
    tls = client.tls.for_registry(registry) if client.tls is not None and url.startswith("https:") else None
    options: dict[str, Any] = {"verify": tls.verify, "cert": tls.cert} if tls is not None else {}
    try:
        resp = client.session.get(url, headers=headers, timeout=client.timeout, proxies=proxies_for(url),
                                  allow_redirects=False, **options)
    except requests.RequestException as exc:
        raise RegistryError(f"cannot reach registry {registry} to log in: {describe_network_error(exc)}",
                            hint="check the registry's name and port, and its certificate authority "
                                 "(--registry-ca, /etc/docker/certs.d)") from None
    resp.close()
    return resp


def _auths(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise OutputError(f"cannot update {path}: its 'auths' is not a JSON object", hint="fix or remove the file")
    return auths


def write_config(path: Path, doc: dict[str, Any]) -> None:
    """Replace the config atomically (a crash leaves the old file or the new one, never half of one), 0600.
    A symlinked config (dotfile managers) is written through the link, as docker does."""
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_file(target, (json.dumps(doc, indent="\t") + "\n").encode(), 0o600, sync=True)
    except OSError as exc:
        raise OutputError(f"cannot write the docker config {path}: {exc.strerror}",
                          hint="check the directory's permissions, or set DOCKER_CONFIG to a writable directory") \
            from None
