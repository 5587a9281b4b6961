"""A small Distribution token server (docker's "token authentication specification") for tests.

The registry (`auth: token`) sends clients here with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`.
This server checks the client's credentials and answers with a JWT the registry verifies: signed RS256 with a
key whose certificate is the registry's `rootcertbundle` (carried in the JWT's `x5c` header), `iss` and `aud`
matching the registry's `issuer` and `service`, and an `access` claim granting the requested actions the user
may have. Signing is done by the `openssl` CLI (tests/support/certs.py), so no crypto package is needed.

It speaks both protocols clients use:
* GET  /token?service=S&scope=A&scope=B with Basic credentials (or none: an anonymous token granting nothing);
  `offline_token=true` adds a `refresh_token` (what `docker login` asks for).
* POST /token with an OAuth2 form: grant_type=password (username, password) or grant_type=refresh_token
  (refresh_token) — the second is how clients use a config.json `identitytoken`.
Every request is logged in `requests` so tests can assert what a client asked for and how often.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.support.certs import KeyPair, der_certificate, make_signing_pair, sign_rs256

SERVICE = "dockyard-test-registry"
ISSUER = "dockyard-test-token-issuer"
ALL_ACTIONS = ("pull", "push")


@dataclass(frozen=True)
class TokenRequest:
    """One request the issuer answered (or refused): who asked, how, and for which scopes."""

    method: str          # GET or POST
    grant: str           # "basic", "anonymous", "password" or "refresh_token"
    user: str | None     # None when anonymous or refused
    scopes: tuple[str, ...]
    status: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenIssuer:
    def __init__(self, workdir: Path, users: dict[str, str], *, read_only: tuple[str, ...] = (),
                 expires_in: int = 300):
        """`users` maps user names to passwords; users named in `read_only` get pull but never push.
        `expires_in` is the tokens' lifetime in seconds (short in tests of token refresh)."""
        self.workdir = Path(workdir)
        self.users = dict(users)
        self.read_only = frozenset(read_only)
        self.expires_in = expires_in
        self.signing: KeyPair = make_signing_pair(self.workdir / "token-signing")
        self._x5c = base64.b64encode(der_certificate(self.signing.cert)).decode("ascii")
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- what tests use ---
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the token issuer is not started")
        return self._server.server_address[1]

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(_Handler):
            owner = issuer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def issue_refresh_token(self, user: str) -> str:
        """A refresh token for `user` (what a config.json `identitytoken` holds)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    def granted_scopes(self, user: str | None = None) -> list[str]:
        """Every scope requested so far (by `user` if given), in order: for assertions on scoping."""
        with self._lock:
            return [s for r in self.requests if user is None or r.user == user for s in r.scopes]

    # --- issuing ---
    def authenticate_basic(self, header: str | None) -> tuple[str, str | None] | None:
        """(grant, user) for a request's Authorization header; None if the credentials are wrong."""
        if not header:
            return "anonymous", None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return ("basic", user) if self._password_ok(user, password) else None

    def _password_ok(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and secrets.compare_digest(expected.encode(), password.encode())

    def token_response(self, user: str | None, service: str, scopes: list[str], offline: bool) -> dict:
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": user or "", "aud": service, "iat": now,
            "nbf": now - 5,  # same machine, but the registry and the test may read the clock a moment apart
            "exp": now + self.expires_in, "jti": secrets.token_hex(8),
            "access": [access for scope in scopes if (access := self._access(user, scope))],
        }
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        token = f"{signing_input}.{_b64url(sign_rs256(self.signing.key, signing_input.encode()))}"
        doc = {"token": token, "access_token": token, "expires_in": self.expires_in,
               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if offline and user:
            doc["refresh_token"] = self.issue_refresh_token(user)
        return doc

    def _access(self, user: str | None, scope: str) -> dict | None:
        """The `access` claim entry for one requested scope `type:name:actions`; anonymous users get none."""
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if user is None or kind != "repository" or not name:
            return None
        allowed = ("pull",) if user in self.read_only else ALL_ACTIONS
        granted = [a for a in actions.split(",") if a in allowed]
        return {"type": kind, "name": name, "actions": granted} if granted else None

    def log(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    owner: TokenIssuer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # BaseHTTPRequestHandler's signature
        pass  # the request log is `owner.requests`; stderr noise would only clutter test output

    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        scopes = query.get("scope", [])
        who = self.owner.authenticate_basic(self.headers.get("Authorization"))
        if who is None:
            return self._refuse("GET", "basic", scopes)
        grant, user = who
        offline = query.get("offline_token", ["false"])[0] == "true"
        self._answer("GET", grant, user, query.get("service", [SERVICE])[0], scopes, offline)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        field = {k: v[0] for k, v in form.items()}
        # OAuth2 sends scopes space-separated in one field.
        scopes = field.get("scope", "").split()
        grant = field.get("grant_type", "")
        user: str | None = None
        if grant == "password" and self.owner._password_ok(field.get("username", ""), field.get("password", "")):
            user = field["username"]
        elif grant == "refresh_token":
            user = self.owner.refresh_tokens.get(field.get("refresh_token", ""))
        if user is None:
            return self._refuse("POST", grant, scopes)
        offline = field.get("access_type") == "offline"
        self._answer("POST", grant, user, field.get("service", SERVICE), scopes, offline)

    def _answer(self, method: str, grant: str, user: str | None, service: str, scopes: list[str],
                offline: bool) -> None:
        doc = self.owner.token_response(user, service, scopes, offline)
        self.owner.log(TokenRequest(method, grant, user, tuple(scopes), 200))
        self._send(200, doc)

    def _refuse(self, method: str, grant: str, scopes: list[str]) -> None:
        self.owner.log(TokenRequest(method, grant, None, tuple(scopes), 401))
        self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]})

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
