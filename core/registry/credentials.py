"""Where registry credentials come from: docker/podman/kaniko config files, GitLab's DOCKER_AUTH_CONFIG, and
credential helpers (`docker-credential-NAME`).

Sources are asked in this order; the first that has credentials for the registry wins:

1. `$DOCKER_CONFIG/config.json`         (when DOCKER_CONFIG is set; it replaces ~/.docker, as for docker)
2. `$REGISTRY_AUTH_FILE`                 (podman/buildah/skopeo's explicit auth file)
3. `$DOCKER_AUTH_CONFIG`                 (GitLab CI: the JSON of a config.json in a variable)
4. `~/.docker/config.json`               (when DOCKER_CONFIG is not set; what docker/login-action writes)
5. `$XDG_RUNTIME_DIR/containers/auth.json` (podman login's default)
6. `/kaniko/.docker/config.json`         (kaniko pipelines write their credentials there)

Files the user pointed at come before default locations. Within one config, docker's precedence holds:
`credHelpers[host]` > `credsStore` > `auths` (an `auths` entry still serves when the helper has nothing for the
host). An `auths` entry holds `auth` (base64 of user:password), `username`/`password`, or an `identitytoken`
(an OAuth2 refresh token, exchanged at the registry's token service).

Secrets never appear in messages or reprs: `Credentials.source` says where credentials came from.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from ..errors import AuthenticationError

# Docker Hub's credentials are filed under its v1 index URL by `docker login`, whatever name the image uses.
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
DOCKER_HUB_SERVER = DOCKER_HUB_AUTH_KEYS[0]
_DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
KANIKO_CONFIG = Path("/kaniko/.docker/config.json")
# The Username a credential helper returns when its Secret is an identity token, not a password.
IDENTITY_TOKEN_USER = "<token>"
HELPER_TIMEOUT = 60.0
# What docker-credential-helpers print (with a non-zero exit) when they hold nothing for a server.
_HELPER_NOT_FOUND = "credentials not found"


@dataclass(frozen=True)
class Credentials:
    """A registry username with its password or identity token, and where they were found (secrets stay out of repr)."""

    username: str
    password: str = field(repr=False)
    # Human-readable origin for messages, e.g. "/root/.docker/config.json". Never the secret itself.
    source: str = ""
    # An OAuth2 refresh token (config.json `identitytoken`): exchanged for access tokens instead of a password.
    identity_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


class CredentialProvider(Protocol):
    def lookup(self, registry: str) -> Credentials | None:
        """Credentials for `registry` (host[:port], docker.io for Docker Hub), or None."""

    def describe(self) -> str:
        """Where this provider looks, for 'no credentials found' messages."""


def normalize_registry_key(key: str) -> str:
    """An `auths` key as host[:port]: `https://host:5000/v1/` → `host:5000` (docker accepts URLs there)."""
    key = key.strip()
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key)
    key = key.split("/", 1)[0]
    return key.lower()


def is_namespaced_key(key: str) -> bool:
    """podman's `auths` may hold per-repository keys (`quay.io/team`); we match whole registries only, and a
    namespace's credentials must not be sent for the rest of the registry."""
    return "://" not in key and "/" in key.strip().rstrip("/")


def registry_aliases(registry: str) -> list[str]:
    """The auths keys that may hold credentials for `registry`, most specific first."""
    registry = registry.lower()
    if registry in _DOCKER_HUB_HOSTS:
        return list(DOCKER_HUB_AUTH_KEYS)
    return [registry]


def helper_server_address(registry: str) -> str:
    """What `docker login` stored the registry under, and so what a helper is asked for."""
    return DOCKER_HUB_SERVER if registry.lower() in _DOCKER_HUB_HOSTS else registry.lower()


# --- credential helpers ------------------------------------------------------------------------------------

class CredentialHelper:
    """`docker-credential-NAME get|store|erase`: the server address (or a JSON document) on stdin, JSON
    `{"ServerURL", "Username", "Secret"}` on stdout. The helper is looked up on `environ`'s PATH."""

    def __init__(self, name: str, environ: Mapping[str, str], configured_in: str):
        self.name = name
        self.program = f"docker-credential-{name}"
        self.environ = environ
        self.configured_in = configured_in  # e.g. "credsStore in /root/.docker/config.json"

    def describe(self) -> str:
        return f"credential helper {self.program} ({self.configured_in})"

    def get(self, registry: str) -> Credentials | None:
        server = helper_server_address(registry)
        result = self._run("get", server)
        if result.returncode != 0:
            if _HELPER_NOT_FOUND in (result.stdout + result.stderr).lower():
                return None
            raise self._failure("get", result)
        try:
            doc = json.loads(result.stdout)
            username, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
        except (ValueError, AttributeError):
            raise AuthenticationError(f"{self.describe()} answered `get {server}` with something that is not "
                                      "its JSON protocol", hint=f"run `echo {server} | {self.program} get` to "
                                      "see what it prints") from None
        if not secret:
            return None
        if username == IDENTITY_TOKEN_USER:
            return Credentials(username, "", self.describe(), identity_token=secret)
        return Credentials(username, secret, self.describe())

    def store(self, registry: str, username: str, secret: str) -> None:
        doc = {"ServerURL": helper_server_address(registry), "Username": username, "Secret": secret}
        result = self._run("store", json.dumps(doc))
        if result.returncode != 0:
            raise self._failure("store", result)

    def erase(self, registry: str) -> None:
        result = self._run("erase", helper_server_address(registry))
        if result.returncode != 0 and _HELPER_NOT_FOUND not in (result.stdout + result.stderr).lower():
            raise self._failure("erase", result)

    def _run(self, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
        path = shutil.which(self.program, path=self.environ.get("PATH", os.defpath))
        if path is None:
            raise AuthenticationError(
                f"the {self.describe()} is not installed: no {self.program} on PATH",
                hint=f"install {self.program}, or remove {self.name!r} from the config file so that its "
                     "`auths` are used")
        try:
            return subprocess.run([path, action], input=stdin, capture_output=True, text=True,
                                  env=dict(self.environ), timeout=HELPER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AuthenticationError(f"the {self.describe()} did not answer `{action}` within "
                                      f"{HELPER_TIMEOUT:.0f}s", hint="does it wait for a password prompt or an "
                                      "unlocked keyring? CI jobs cannot answer prompts") from None
        except OSError as exc:
            raise AuthenticationError(f"cannot run the {self.describe()}: {exc.strerror}",
                                      hint=f"check that {path} is executable") from None

    def _failure(self, action: str, result: subprocess.CompletedProcess[str]) -> AuthenticationError:
        # Helpers print their error on stdout or stderr; a secret is never in a failure message we pass on
        # because we show only the first line, and helpers print errors, not credentials, when they fail.
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = f": {said[0][:200]}" if said else ""
        return AuthenticationError(f"the {self.describe()} failed to {action} credentials (exit status "
                                   f"{result.returncode}){reason}",
                                   hint=f"check the helper's own setup (keyring, login), or remove "
                                        f"{self.name!r} from the config file")


# --- config files ------------------------------------------------------------------------------------------

class DockerConfigProvider:
    """One docker-format config (config.json, podman's auth.json): credHelpers > credsStore > auths.
    The file is read on each lookup (it is small, and a CI job may log in between a pull and a push)."""

    def __init__(self, path: Path, environ: Mapping[str, str] | None = None):
        self.path = Path(path)
        self.environ: Mapping[str, str] = os.environ if environ is None else environ

    def describe(self) -> str:
        return str(self.path)

    def load(self) -> dict[str, Any]:
        """The config document; {} when the file does not exist."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AuthenticationError(f"cannot read the docker config {self.path}: {exc.strerror}") from None
        return parse_config(text, str(self.path))

    def lookup(self, registry: str) -> Credentials | None:
        doc = self.load()
        helper = self.helper_for(doc, registry)
        if helper is not None:
            creds = helper.get(registry)
            if creds is not None:
                return creds
        return self._from_auths(doc, registry)

    def helper_for(self, doc: dict[str, Any], registry: str) -> CredentialHelper | None:
        """The helper docker would use for `registry`: its credHelpers entry, else the credsStore."""
        helpers: dict[str, Any] = doc["credHelpers"] if isinstance(doc.get("credHelpers"), dict) else {}
        for alias in registry_aliases(registry):
            for key, name in helpers.items():
                if isinstance(name, str) and name and normalize_registry_key(key) == normalize_registry_key(alias):
                    return CredentialHelper(name, self.environ, f"credHelpers in {self.describe()}")
        store = doc.get("credsStore")
        if isinstance(store, str) and store:
            return CredentialHelper(store, self.environ, f"credsStore in {self.describe()}")
        return None

    def _from_auths(self, doc: dict[str, Any], registry: str) -> Credentials | None:
        auths: dict[str, Any] = doc["auths"] if isinstance(doc.get("auths"), dict) else {}
        # Keys may be URLs (`https://host/v1/`, what old docker versions wrote): match on host[:port], exactly.
        by_host: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, entry in auths.items():
            if isinstance(entry, dict) and not is_namespaced_key(key):
                by_host.setdefault(normalize_registry_key(key), (key, entry))
        for alias in registry_aliases(registry):
            found = (alias, auths[alias]) if isinstance(auths.get(alias), dict) else \
                by_host.get(normalize_registry_key(alias))
            if found is not None:
                creds = self._from_entry(found[1], found[0])
                if creds is not None:
                    return creds
        return None

    def _from_entry(self, entry: dict[str, Any], key: str) -> Credentials | None:
        source = f"{self.describe()} (auths entry {key!r})"
        user, password = "", ""
        if entry.get("auth"):
            user, password = self._decode_auth(entry["auth"], key)
        elif entry.get("username") and entry.get("password") is not None:
            user, password = str(entry["username"]), str(entry["password"])
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            return Credentials(user or str(entry.get("username") or IDENTITY_TOKEN_USER), "", source,
                               identity_token=token)
        if user:
            return Credentials(user, password, source)
        # An entry without a secret (docker writes `{}` when a credsStore holds the password): not usable here.
        return None

    def _decode_auth(self, value: object, key: str) -> tuple[str, str]:
        hint = f"log in again: docker login {normalize_registry_key(key)}"
        try:
            decoded = base64.b64decode(str(value), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthenticationError(f"the auths entry {key!r} in {self.describe()} has an invalid 'auth' value "
                                      "(expected base64 of user:password)", hint=hint) from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise AuthenticationError(f"the auths entry {key!r} in {self.describe()} has an invalid 'auth' value "
                                      "(no ':' between user and password)", hint=hint)
        return user, password


class EnvironmentConfigProvider(DockerConfigProvider):
    """A whole config.json held in an environment variable (GitLab CI's DOCKER_AUTH_CONFIG)."""

    def __init__(self, variable: str, environ: Mapping[str, str]):
        super().__init__(Path(f"${variable}"), environ)
        self.variable = variable

    def describe(self) -> str:
        return f"the {self.variable} variable"

    def load(self) -> dict[str, Any]:
        return parse_config(self.environ.get(self.variable, ""), self.describe())


def parse_config(text: str, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        # The parser's message has a position, never the text: safe to show.
        raise AuthenticationError(f"the docker config {where} is not valid JSON: {exc}",
                                  hint="fix it, or remove it") from None
    return doc if isinstance(doc, dict) else {}


# --- the chain ---------------------------------------------------------------------------------------------

class CredentialStore:
    """An ordered chain of providers; the first that knows the registry wins."""

    def __init__(self, providers: list[CredentialProvider] | None = None):
        self.providers: list[CredentialProvider] = list(providers or [])

    def lookup(self, registry: str) -> Credentials | None:
        for provider in self.providers:
            creds = provider.lookup(registry)
            if creds is not None:
                return creds
        return None

    def describe(self) -> str:
        return ", ".join(p.describe() for p in self.providers) or "no credential sources"


class StaticProvider:
    """Credentials given directly (e.g. `dockyard login` checking what the user typed)."""

    def __init__(self, registry: str, credentials: Credentials):
        self.registry = registry.lower()
        self.credentials = credentials

    def describe(self) -> str:
        return self.credentials.source

    def lookup(self, registry: str) -> Credentials | None:
        return self.credentials if registry.lower() == self.registry else None


def docker_config_path(environ: Mapping[str, str]) -> Path:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json (HOME from `environ`, as docker does)."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker" / "config.json"


def credential_providers(environ: Mapping[str, str], *,
                         kaniko_config: Path = KANIKO_CONFIG) -> list[CredentialProvider]:
    """The sources in the order the module docstring documents; files named twice are asked once."""
    providers: list[CredentialProvider] = []
    seen: set[Path] = set()

    def add_file(path: Path) -> None:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            providers.append(DockerConfigProvider(path, environ))

    if environ.get("DOCKER_CONFIG"):
        add_file(docker_config_path(environ))
    if environ.get("REGISTRY_AUTH_FILE"):
        add_file(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("DOCKER_AUTH_CONFIG", "").strip():
        providers.append(EnvironmentConfigProvider("DOCKER_AUTH_CONFIG", environ))
    if not environ.get("DOCKER_CONFIG"):
        add_file(docker_config_path(environ))
    if environ.get("XDG_RUNTIME_DIR"):
        add_file(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    add_file(kaniko_config)
    return providers


def default_credential_store(environ: Mapping[str, str], *,
                             kaniko_config: Path = KANIKO_CONFIG) -> CredentialStore:
    return CredentialStore(credential_providers(environ, kaniko_config=kaniko_config))


# --- public helpers (exported by the `dockyard` package for the CI adapters' logins) ------------------------

def credential_source(registry: str, environ: Mapping[str, str]) -> str | None:
    """Where a build with `environ` would take credentials for `registry` from (a file, a helper, an
    environment variable), or None when no source of the chain knows it."""
    known = default_credential_store(environ).lookup(registry)
    return known.source if known is not None else None


def read_docker_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The docker config a build with `environ` reads ($DOCKER_CONFIG/config.json, else ~/.docker/config.json),
    parsed; {} when there is none or it cannot be read (the build reports an unreadable one itself)."""
    source = docker_config_path(environ)
    try:
        return parse_config(source.read_text(), str(source))
    except OSError:
        return {}
