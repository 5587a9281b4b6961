"""Registry authorization: the Distribution token protocol and what goes in the `Authorization` header.

Credentials (where a username/password or identity token comes from) live in credentials.py; this module
decides how to use them. On a 401 the registry says how to authenticate in `WWW-Authenticate` (RFC 7235):
`Basic realm=...` (send the credentials directly) or `Bearer realm=...,service=...,scope=...` (fetch a token
from the realm: GET with Basic credentials, or an OAuth2 POST exchanging an identity token; anonymously when
we have nothing). `Authenticator` parses the challenge, fetches tokens for the scopes a request needs (several
at once, e.g. the source repository of a cross-repository mount) and caches them until they expire.

Secrets never appear in messages, reprs or logs: errors name where the credentials came from, not what they are.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import requests

from ..errors import AuthenticationError, RegistryError
# Re-exported: callers import the credential API from here too.
from .credentials import (CredentialProvider, Credentials, CredentialStore, DockerConfigProvider,
                          default_credential_store, docker_config_path, normalize_registry_key)

__all__ = ["Authenticator", "Challenge", "CredentialProvider", "Credentials", "CredentialStore",
           "DockerConfigProvider", "default_credential_store", "docker_config_path", "normalize_registry_key",
           "parse_www_authenticate", "proxies_for"]

# Docker Hub's credentials are filed under its v1 index URL by `docker login`, whatever name the image uses.
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}


# --- transport ---------------------------------------------------------------------------------------------

# Per-request proxies that override HTTP(S)_PROXY/ALL_PROXY from the environment (requests drops None entries).
_NO_PROXIES = {"http": None, "https": None, "all": None}


def proxies_for(url: str) -> dict[str, Any] | None:
    """Never send loopback traffic through a proxy, as docker and containerd (Go's net/http) don't: a CI
    runner's HTTP_PROXY would otherwise swallow requests to a registry on 127.0.0.1."""
    from urllib.parse import urlsplit

    from ..image.reference import is_loopback_registry

    netloc = urlsplit(url).netloc
    return _NO_PROXIES if netloc and is_loopback_registry(netloc) else None


# --- WWW-Authenticate --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header: its scheme (basic, bearer) and parameters."""

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
                assert m is not None  # the pattern matches the empty string too
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


# --- scopes ------------------------------------------------------------------------------------------------

def scope_set(scopes: str | Iterable[str] | None) -> frozenset[str]:
    """Scopes as a set: a string of space-separated scopes (OAuth2's form), several strings, or none (a request
    that needs no repository, like /v2/). Scopes never contain spaces."""
    if scopes is None:
        return frozenset()
    if isinstance(scopes, str):
        scopes = [scopes]
    return frozenset(part for s in scopes for part in s.split())


def _actions_by_resource(scopes: frozenset[str]) -> dict[str, set[str]]:
    """`repository:a/b:pull,push` → {"repository:a/b": {"pull", "push"}}; the resource name may hold ':'
    (a registry name in a proxy cache's repository), the actions never do."""
    resources: dict[str, set[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        resources.setdefault(resource or scope, set()).update(a for a in actions.split(",") if a)
    return resources


def covers(granted: frozenset[str], needed: frozenset[str]) -> bool:
    """Whether a token requested for `granted` scopes serves a request needing `needed` (pull,push serves pull)."""
    have = _actions_by_resource(granted)
    return all(actions <= have.get(resource, set()) for resource, actions in _actions_by_resource(needed).items())


# --- tokens ------------------------------------------------------------------------------------------------

@dataclass
class _CachedAuth:
    """An `Authorization` header obtained for a registry: the scopes it serves, and until when."""

    header: str
    scopes: frozenset[str] | None  # None: Basic credentials, which serve every scope
    expires: float | None  # monotonic deadline, None = until refused

    def serves(self, needed: frozenset[str], now: float) -> bool:
        if self.expires is not None and now >= self.expires:
            return False
        return self.scopes is None or covers(self.scopes, needed)


class Authenticator:
    """Answers 401 challenges and caches the resulting Authorization header per registry and scopes.

    A scope is a Distribution token scope (`repository:NAME:pull`, `repository:NAME:pull,push`); a request may
    need several (a cross-repository mount needs `repository:FROM:pull` besides the destination's pull,push).
    Every method takes one scope string, a list of them, or None. A cached token serves any request whose
    scopes it covers; Basic auth serves every scope.
    """

    # Tokens without `expires_in` live 60 s per the token spec; refresh a little early.
    DEFAULT_TOKEN_LIFETIME = 60.0
    EXPIRY_MARGIN = 10.0
    # What we call ourselves in OAuth2 requests (the spec requires a client_id; registries only log it).
    CLIENT_ID = "dockyard"

    def __init__(self, session: requests.Session, credentials: CredentialStore, *,
                 timeout: float | tuple[float, float] | None = None,
                 connection_error: Callable[[Exception, str], Exception] | None = None,
                 tls_for: Callable[[str], dict[str, Any]] | None = None):
        """`tls_for(url)` gives requests' verify=/cert= for a token service URL (its host's CA settings)."""
        self.session = session
        self.credentials = credentials
        self.timeout = timeout
        self._connection_error = connection_error
        self._tls_for = tls_for or (lambda url: {})
        self._cache: dict[str, list[_CachedAuth]] = {}
        # Looked up once per registry: a credential helper may be slow, or prompt a keyring, on every call.
        self._credentials: dict[str, Credentials | None] = {}
        self._flights: dict[tuple[str, frozenset[str]], threading.Lock] = {}
        self._lock = threading.Lock()
        self._lookup_lock = threading.Lock()

    def cached(self, registry: str, scopes: str | Iterable[str] | None) -> str | None:
        needed, now = scope_set(scopes), time.monotonic()
        with self._lock:
            entries = self._cache.get(registry, [])
            entries[:] = [e for e in entries if e.expires is None or now < e.expires]
            for entry in entries:
                if entry.serves(needed, now):
                    return entry.header
        return None

    def forget(self, registry: str, scopes: str | Iterable[str] | None) -> None:
        """Drop what a refused request used (its token or the Basic credentials), and the looked-up
        credentials, so that the next answer starts afresh."""
        needed, now = scope_set(scopes), time.monotonic()
        with self._lock:
            entries = self._cache.get(registry, [])
            entries[:] = [e for e in entries if not e.serves(needed, now)]
            self._credentials.pop(registry, None)

    def _flight(self, registry: str, scopes: frozenset[str]) -> threading.Lock:
        with self._lock:
            return self._flights.setdefault((registry, scopes), threading.Lock())

    def credentials_for(self, registry: str) -> Credentials | None:
        # One lookup at a time: parallel transfers would otherwise each run the credential helper.
        with self._lookup_lock:
            with self._lock:
                if registry in self._credentials:
                    return self._credentials[registry]
            creds = self.credentials.lookup(registry)
            with self._lock:
                self._credentials[registry] = creds
            return creds

    def credential_source(self, registry: str) -> str:
        """For error messages: which credentials we used (or where we looked), never the secret."""
        creds = self.credentials_for(registry)
        if creds is None:
            return f"no credentials (none found for {registry} in {self.credentials.describe()})"
        if creds.identity_token:
            return f"an identity token from {creds.source}"
        return f"credentials for user {creds.username!r} from {creds.source}"

    def answer(self, registry: str, scopes: str | Iterable[str] | None, www_authenticate: str) -> str | None:
        """The Authorization header that answers this challenge for requests needing `scopes`, or None if we
        have nothing to offer (then the caller reports the 401)."""
        challenges = parse_www_authenticate(www_authenticate or "")
        creds = self.credentials_for(registry)
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                wanted = self._wanted(scopes, challenge)
                # Parallel transfers meet the same 401 together: one fetches the token, the others use it.
                with self._flight(registry, wanted):
                    return self.cached(registry, wanted) or self._fetch_token(registry, wanted, challenge, creds)
        for challenge in challenges:
            if challenge.scheme == "basic" and creds is not None and not creds.identity_token:
                header = creds.basic_header()
                with self._lock:
                    self._cache.setdefault(registry, []).append(_CachedAuth(header, None, None))
                return header
        return None

    @staticmethod
    def _wanted(scopes: str | Iterable[str] | None, challenge: Challenge) -> frozenset[str]:
        """Our scopes, plus the registry's own when it asks for one ours do not cover (it knows best what the
        request needs)."""
        wanted = scope_set(scopes)
        theirs = scope_set(challenge.params.get("scope"))
        return wanted if covers(wanted, theirs) else wanted | theirs

    def _fetch_token(self, registry: str, scopes: frozenset[str], challenge: Challenge,
                     creds: Credentials | None) -> str:
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        try:
            if creds is not None and creds.identity_token:
                resp = self._oauth_refresh(realm, service, scopes, creds)
            else:
                resp = self._token_get(realm, service, scopes, creds)
        except requests.RequestException as exc:
            if self._connection_error is not None:
                raise self._connection_error(exc, realm) from None
            raise RegistryError(f"cannot reach the token service {realm} of registry {registry}: {exc}") from None
        token, lifetime = self._token_from(resp, registry, realm, scopes)
        header = f"Bearer {token}"
        expires = time.monotonic() + max(lifetime - self.EXPIRY_MARGIN, 1.0)
        with self._lock:
            self._cache.setdefault(registry, []).append(_CachedAuth(header, scopes, expires))
        return header

    def _token_get(self, realm: str, service: str, scopes: frozenset[str],
                   creds: Credentials | None) -> requests.Response:
        """The token spec's GET: Basic credentials if we have them, anonymous otherwise; one `scope` parameter
        per scope."""
        params: list[tuple[str, str]] = [("service", service)] if service else []
        if creds is not None:
            params.append(("account", creds.username))
        params += [("scope", s) for s in sorted(scopes)]
        headers = {"Authorization": creds.basic_header()} if creds else {}
        return self.session.get(realm, params=params, headers=headers, timeout=self.timeout,
                                proxies=proxies_for(realm), **self._tls_for(realm))

    def _oauth_refresh(self, realm: str, service: str, scopes: frozenset[str],
                       creds: Credentials) -> requests.Response:
        """OAuth2 refresh-token grant: how an `identitytoken` (what `docker login` stores for registries that
        issue refresh tokens) becomes an access token. Scopes are space-separated in one field."""
        form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "service": service,
                "client_id": self.CLIENT_ID, "scope": " ".join(sorted(scopes))}
        return self.session.post(realm, data=form, timeout=self.timeout, proxies=proxies_for(realm),
                                 **self._tls_for(realm))

    def _token_from(self, resp: requests.Response, registry: str, realm: str,
                    scopes: frozenset[str]) -> tuple[str, float]:
        """(token, lifetime in seconds) from the token service's answer; errors name who was refused."""
        with resp:
            scope_text = f" for {', '.join(sorted(scopes))}" if scopes else ""
            if resp.status_code in (400, 401, 403):
                # 400: OAuth2's invalid_grant (an expired or revoked identity token).
                raise AuthenticationError(
                    f"the token service {realm} of registry {registry} refused "
                    f"{self.credential_source(registry)}{scope_text} (HTTP {resp.status_code})",
                    hint=f"check the user name and password (or token) for {registry} in that source, or log in "
                         f"again: dockyard login {registry}")
            if resp.status_code != 200:
                raise RegistryError(f"the token service {realm} of registry {registry} answered HTTP "
                                    f"{resp.status_code}{scope_text}",
                                    hint="the registry's authentication service failed: retry later")
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
        return token, lifetime
