"""Registry credentials and the Distribution token protocol.

Two layers, kept apart so each can grow on its own:

* Credentials: where a username/password for a registry comes from. `CredentialStore` asks a chain of
  `CredentialProvider`s in order; today the chain holds the docker config.json (`auths`). Credential helpers
  (`credHelpers`/`credsStore`), podman's auth.json and CI-provided variables are further providers appended
  in `default_credential_store()`; nothing else needs to change for them.
* Authorization: what to put in the `Authorization` header. On a 401 the registry says how to authenticate in
  `WWW-Authenticate` (RFC 7235): `Basic realm=...` (send the credentials directly) or `Bearer realm=...,
  service=...,scope=...` (fetch a token from the realm, with the credentials if we have them, anonymously
  otherwise). `Authenticator` parses the challenge, fetches and caches tokens per (registry, scope).

Secrets never appear in messages, reprs or logs: errors name where the credentials came from, not what they are.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol

import requests

from ..errors import AuthenticationError, RegistryError

# Docker Hub's credentials are filed under its v1 index URL by `docker login`, whatever name the image uses.
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}


# --- credentials -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    # Human-readable origin for messages, e.g. "/root/.docker/config.json". Never the secret itself.
    source: str = ""

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


def registry_aliases(registry: str) -> list[str]:
    """The auths keys that may hold credentials for `registry`, most specific first."""
    registry = registry.lower()
    if registry in _DOCKER_HUB_HOSTS:
        return list(DOCKER_HUB_AUTH_KEYS)
    return [registry]


class DockerConfigProvider:
    """`auths` in a docker config.json: `{"auths": {"host": {"auth": base64(user:pass)}}}` or with
    `username`/`password` fields. The file is read on each lookup (it is small, and a CI job may log in
    between a pull and a push)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def _load(self) -> dict:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AuthenticationError(f"cannot read the docker config {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise AuthenticationError(f"the docker config {self.path} is not valid JSON: {exc}",
                                      hint="fix or remove the file") from None
        return doc if isinstance(doc, dict) else {}

    def lookup(self, registry: str) -> Credentials | None:
        auths = self._load().get("auths") or {}
        if not isinstance(auths, dict):
            return None
        # Keys may be URLs (`https://host/v1/`, what old docker versions wrote): match on host[:port].
        by_host: dict[str, tuple[str, dict]] = {}
        for key, entry in auths.items():
            if isinstance(entry, dict):
                by_host.setdefault(normalize_registry_key(key), (key, entry))
        for alias in registry_aliases(registry):
            found = (alias, auths[alias]) if isinstance(auths.get(alias), dict) else \
                by_host.get(normalize_registry_key(alias))
            if found is not None:
                creds = self._from_entry(found[1], found[0])
                if creds is not None:
                    return creds
        return None

    def _from_entry(self, entry: dict, key: str) -> Credentials | None:
        source = f"{self.path} (auths entry {key!r})"
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"], validate=False).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise AuthenticationError(f"the auths entry {key!r} in {self.path} has an invalid 'auth' "
                                          "value (expected base64 of user:password)",
                                          hint=f"log in again: docker login {key}") from None
            user, sep, password = decoded.partition(":")
            if not sep:
                raise AuthenticationError(f"the auths entry {key!r} in {self.path} has an invalid 'auth' "
                                          "value (no ':' between user and password)",
                                          hint=f"log in again: docker login {key}")
            return Credentials(user, password, source)
        if entry.get("username") and entry.get("password") is not None:
            return Credentials(str(entry["username"]), str(entry["password"]), source)
        # An entry without a secret (docker writes `{}` when a credsStore holds the password): not usable here.
        # Seam: credential helpers and `identitytoken` (OAuth refresh tokens) are handled by later providers.
        return None


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


def docker_config_path(environ: Mapping[str, str]) -> Path:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json (HOME from `environ`, as docker does)."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker" / "config.json"


def default_credential_store(environ: Mapping[str, str]) -> CredentialStore:
    # Later providers (credential helpers, $REGISTRY_AUTH_FILE / podman's auth.json) are appended here.
    return CredentialStore([DockerConfigProvider(docker_config_path(environ))])


# --- transport ---------------------------------------------------------------------------------------------

# Per-request proxies that override HTTP(S)_PROXY/ALL_PROXY from the environment (requests drops None entries).
_NO_PROXIES = {"http": None, "https": None, "all": None}


def proxies_for(url: str) -> dict | None:
    """Never send loopback traffic through a proxy, as docker and containerd (Go's net/http) don't: a CI
    runner's HTTP_PROXY would otherwise swallow requests to a registry on 127.0.0.1."""
    from urllib.parse import urlsplit

    from ..image.reference import is_loopback_registry

    netloc = urlsplit(url).netloc
    return _NO_PROXIES if netloc and is_loopback_registry(netloc) else None


# --- WWW-Authenticate --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "basic", "bearer"
    params: dict[str, str]


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_UNQUOTED_RE = re.compile(r"[^,\s]*")
_PARAM_START_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*=(?!=)")


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header (RFC 7235) into challenges; several may share one header.

    `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`
    → [Challenge("bearer", {"realm": ..., "service": ..., "scope": "repository:a/b:pull,push"})].
    Quoted strings may contain commas and backslash escapes, which is why this is not a `split(",")`.
    """
    challenges: list[Challenge] = []
    current: dict[str, str] | None = None
    pos, n = 0, len(value)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < n and value[pos] in chars:
            pos += 1

    while pos < n:
        skip(" \t,")
        m = _TOKEN_RE.match(value, pos)
        if not m:
            break  # malformed from here on: keep what we have
        word, pos = m.group(), m.end()
        skip(" \t")
        if current is not None and pos < n and value[pos] == "=":
            pos += 1
            skip(" \t")
            if pos < n and value[pos] == '"':
                pos += 1
                chars: list[str] = []
                while pos < n and value[pos] != '"':
                    if value[pos] == "\\" and pos + 1 < n:
                        pos += 1
                    chars.append(value[pos])
                    pos += 1
                pos += 1  # the closing quote
                current[word.lower()] = "".join(chars)
            else:
                # Lenient: some servers send unquoted URLs, which are not RFC tokens.
                m = _UNQUOTED_RE.match(value, pos)
                current[word.lower()] = m.group()
                pos = m.end()
            continue
        # A new challenge. What follows its scheme is either auth-params (`name=value, ...`) or a token68 blob.
        current = {}
        challenges.append(Challenge(word.lower(), current))
        if _PARAM_START_RE.match(value, pos):
            continue
        m = _TOKEN68_RE.match(value, pos)
        if m and (m.end() == n or value[m.end()] in " \t,"):
            current["token68"] = m.group()
            pos = m.end()
    return challenges


# --- tokens ------------------------------------------------------------------------------------------------

@dataclass
class _CachedAuth:
    header: str
    expires: float | None  # monotonic deadline, None = until refused


class Authenticator:
    """Answers 401 challenges and caches the resulting Authorization header per (registry, scope).

    `scope` is the Distribution token scope the request needs (`repository:NAME:pull` or `...:pull,push`).
    Basic auth is not scoped: it is cached under (registry, None) and serves every scope.
    """

    # Tokens without `expires_in` live 60 s per the token spec; refresh a little early.
    DEFAULT_TOKEN_LIFETIME = 60.0
    EXPIRY_MARGIN = 10.0

    def __init__(self, session: requests.Session, credentials: CredentialStore, *, timeout=None,
                 connection_error: Callable[[Exception, str], Exception] | None = None):
        self.session = session
        self.credentials = credentials
        self.timeout = timeout
        self._connection_error = connection_error
        self._cache: dict[tuple[str, str | None], _CachedAuth] = {}
        self._lock = threading.Lock()

    def cached(self, registry: str, scope: str | None) -> str | None:
        with self._lock:
            for key in ((registry, scope), (registry, None)):
                entry = self._cache.get(key)
                if entry is None:
                    continue
                if entry.expires is not None and time.monotonic() >= entry.expires:
                    del self._cache[key]
                    continue
                return entry.header
        return None

    def forget(self, registry: str, scope: str | None) -> None:
        with self._lock:
            self._cache.pop((registry, scope), None)
            self._cache.pop((registry, None), None)

    def credential_source(self, registry: str) -> str:
        """For error messages: which credentials we used (or where we looked), never the secret."""
        creds = self.credentials.lookup(registry)
        if creds is not None:
            return f"credentials for user {creds.username!r} from {creds.source}"
        return f"no credentials (none found for {registry} in {self.credentials.describe()})"

    def answer(self, registry: str, scope: str | None, www_authenticate: str) -> str | None:
        """The Authorization header that answers this challenge, or None if we have nothing to offer
        (then the caller reports the 401)."""
        challenges = parse_www_authenticate(www_authenticate or "")
        creds = self.credentials.lookup(registry)
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                header = self._fetch_token(registry, scope, challenge, creds)
                return header
        for challenge in challenges:
            if challenge.scheme == "basic" and creds is not None:
                header = creds.basic_header()
                with self._lock:
                    self._cache[(registry, None)] = _CachedAuth(header, None)
                return header
        return None

    def _fetch_token(self, registry: str, scope: str | None, challenge: Challenge,
                     creds: Credentials | None) -> str:
        realm = challenge.params["realm"]
        params: dict[str, str] = {}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        # Our scope says what this request needs; the registry's own scope (if any) is the fallback.
        wanted = scope or challenge.params.get("scope")
        if wanted:
            params["scope"] = wanted
        headers = {"Authorization": creds.basic_header()} if creds else {}
        try:
            resp = self.session.get(realm, params=params, headers=headers, timeout=self.timeout,
                                    proxies=proxies_for(realm))
        except requests.RequestException as exc:
            if self._connection_error is not None:
                raise self._connection_error(exc, realm) from None
            raise RegistryError(f"cannot reach the token service {realm} of registry {registry}: {exc}") from None
        who = self.credential_source(registry)
        if resp.status_code in (401, 403):
            raise AuthenticationError(
                f"the token service {realm} of registry {registry} refused {who} "
                f"(HTTP {resp.status_code}{', scope ' + wanted if wanted else ''})",
                hint=f"check the credentials: docker login {registry}")
        if resp.status_code != 200:
            raise RegistryError(f"the token service {realm} of registry {registry} answered HTTP "
                                f"{resp.status_code}")
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token, doc = None, {}
        if not token or not isinstance(token, str):
            raise RegistryError(f"the token service {realm} of registry {registry} sent no token")
        try:
            lifetime = float(doc.get("expires_in") or self.DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = self.DEFAULT_TOKEN_LIFETIME
        header = f"Bearer {token}"
        expires = time.monotonic() + max(lifetime - self.EXPIRY_MARGIN, 1.0)
        with self._lock:
            self._cache[(registry, scope)] = _CachedAuth(header, expires)
        return header
