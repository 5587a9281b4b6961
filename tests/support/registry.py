"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free loopback port.

By default the registry is open and speaks plain HTTP, which docker, skopeo and dockyard all allow for
127.0.0.0/8. Keyword options of `start()` add what the registries people log in to have:

* `htpasswd={"user": "password"}`: Basic auth from a bcrypt htpasswd file (made by Debian's apache2-utils
  `htpasswd -B`, the format distribution requires);
* `tls=True`: HTTPS with a certificate for 127.0.0.1/localhost signed by a test CA (`server.ca_path`), made
  with the openssl CLI in tests/support/certs.py;
* `token=TokenIssuer(...)`: distribution's `auth: token`, sending clients to the issuer in
  tests/support/token_issuer.py, whose signing certificate is the registry's `rootcertbundle`.

`start_tls_htpasswd_registry()` and `start_token_registry()` are the two combinations the auth tests use.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.certs import make_ca, make_server_cert
from tests.support import token_issuer
from tests.support.token_issuer import TokenIssuer

BINARY = "docker-registry"
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    """A port nothing listens on right now (there is a window before the server binds it; start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTPASSWD_REALM = "dockyard-test-registry"


@dataclass(frozen=True)
class AuthSetup:
    """How a registry authenticates and encrypts; the default is open plain HTTP."""

    htpasswd: dict[str, str] | None = None
    tls: bool = False
    token: TokenIssuer | None = None


class RegistryServer:
    def __init__(self, workdir: Path, port: int, process: subprocess.Popen, stderr_path: Path,
                 setup: AuthSetup = AuthSetup()):
        self.workdir = workdir
        self.port = port
        self.process = process
        self._stderr_path = stderr_path
        self.setup = setup

    # --- what tests use ---
    @property
    def host(self) -> str:
        """host:port, as it goes into an image reference (`{host}/repo:tag`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.setup.tls else 'http'}://{self.host}"

    @property
    def ca_path(self) -> Path | None:
        """The test CA that signed the server certificate (tls=True), else None."""
        return self.workdir / "tls" / "ca.crt" if self.setup.tls else None

    @property
    def users(self) -> dict[str, str]:
        """Who may log in, and their passwords (htpasswd or the token issuer's users)."""
        if self.setup.token is not None:
            return dict(self.setup.token.users)
        return dict(self.setup.htpasswd or {})

    @property
    def token_issuer(self) -> TokenIssuer | None:
        return self.setup.token

    @property
    def storage(self) -> Path:
        """The filesystem driver's root (tests tamper with blobs under it to simulate corruption)."""
        return self.workdir / "storage"

    def blob_data_path(self, digest: str) -> Path:
        """Where distribution's filesystem driver keeps a blob's bytes."""
        algo, _, hexpart = digest.partition(":")
        return self.storage / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"

    @classmethod
    def start(cls, workdir: Path, *, htpasswd: dict[str, str] | None = None, tls: bool = False,
              token: TokenIssuer | None = None, timeout: float = STARTUP_TIMEOUT,
              port: int | None = None) -> RegistryServer:
        """Start a registry; `token`'s issuer is started here if it is not running, and stopped by stop().
        `port`: listen there instead of on a free port (a reference to an image in it, which a built image can
        record, is then the same in every run); an error if the port is taken."""
        if shutil.which(BINARY) is None:
            raise RuntimeError(f"{BINARY} is not installed (apt-get install -y docker-registry)")
        if htpasswd and token:
            raise ValueError("a registry authenticates with htpasswd or with tokens, not both")
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        setup = AuthSetup(htpasswd, tls, token)
        if htpasswd:
            write_htpasswd(workdir / "htpasswd", htpasswd)
        if tls:
            make_server_cert(workdir / "tls", make_ca(workdir / "tls"))
        if token is not None and not token.running:
            token.start()
        if port is not None:
            try:
                return cls._launch(workdir, port, timeout, setup)
            except _PortTaken as exc:
                raise RuntimeError(f"could not start {BINARY}: {exc}") from None
        last_error: Exception | None = None
        # Another process can take the free port between free_port() and the server's bind: retry a few times.
        for _attempt in range(3):
            port = free_port()
            try:
                return cls._launch(workdir, port, timeout, setup)
            except _PortTaken as exc:
                last_error = exc
        raise RuntimeError(f"could not start {BINARY}: {last_error}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.setup.token is not None:
            self.setup.token.stop()

    def stderr(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    # --- internals ---
    @classmethod
    def _config(cls, workdir: Path, port: int, setup: AuthSetup) -> dict:
        config: dict[str, Any] = {
            "version": 0.1,
            # Errors only: the access log would flood the test output and the stderr file.
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "storage")},
                "delete": {"enabled": True},
                # The upload purger runs at startup and periodically; it is useless for a short-lived server.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if setup.tls:
            config["http"]["tls"] = {"certificate": str(workdir / "tls" / "server.crt"),
                                     "key": str(workdir / "tls" / "server.key")}
        if setup.htpasswd:
            config["auth"] = {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(workdir / "htpasswd")}}
        if setup.token is not None:
            config["auth"] = {"token": {"realm": setup.token.realm, "service": token_issuer.SERVICE,
                                        "issuer": token_issuer.ISSUER,
                                        "rootcertbundle": str(setup.token.signing.cert)}}
        return config

    @classmethod
    def _launch(cls, workdir: Path, port: int, timeout: float, setup: AuthSetup) -> RegistryServer:
        config_path = workdir / "config.yml"
        # YAML is a superset of JSON, so the config needs no YAML library.
        config_path.write_text(json.dumps(cls._config(workdir, port, setup), indent=2))
        stderr_path = workdir / f"registry-{port}.log"
        with open(stderr_path, "wb") as err:
            # stdout/stderr go to a file, not a pipe: nobody reads a pipe while tests run, and a full pipe
            # would block the registry.
            process = subprocess.Popen([BINARY, "serve", str(config_path)], cwd=workdir,
                                       stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        server = cls(workdir, port, process, stderr_path, setup)
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        # No proxies from the environment: the readiness probe must reach loopback directly.
        with requests.Session() as probe:
            probe.trust_env = False
            probe.verify = str(self.ca_path) if self.ca_path else True
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    log = self.stderr()
                    if "address already in use" in log:
                        raise _PortTaken(f"port {self.port} was taken")
                    raise RuntimeError(f"{BINARY} exited with status {self.process.returncode} before answering "
                                       f"on {self.url}/v2/; its output:\n{log}")
                try:
                    # 401: a registry with auth is up and asks for credentials.
                    if probe.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                        return
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{BINARY} did not answer on {self.url}/v2/ within {timeout:.0f}s; its "
                                       f"output:\n{self.stderr()}")
                time.sleep(0.05)


class _PortTaken(RuntimeError):
    pass


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    """A bcrypt htpasswd file (distribution accepts no other hash), made by apache2-utils' htpasswd."""
    if shutil.which("htpasswd") is None:
        raise RuntimeError("htpasswd is not installed (apt-get install -y apache2-utils)")
    lines = []
    for user, password in users.items():
        # -i: the password comes on stdin, not in argv where `ps` would show it.
        result = subprocess.run(["htpasswd", "-niB", user], input=password, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"htpasswd failed for {user!r}: {result.stderr.strip()}")
        lines.append(result.stdout.strip())
    path.write_text("\n".join(lines) + "\n")


def start_tls_htpasswd_registry(workdir: Path, users: dict[str, str]) -> RegistryServer:
    """HTTPS (test CA at server.ca_path) with Basic auth for `users`: a typical private registry."""
    return RegistryServer.start(workdir, htpasswd=users, tls=True)


def start_token_registry(workdir: Path, users: dict[str, str], *, tls: bool = False,
                         read_only: tuple[str, ...] = (), expires_in: int = 300) -> RegistryServer:
    """`auth: token` against a TokenIssuer for `users` (server.token_issuer): how Docker Hub, GHCR, GitLab and
    Harbor authenticate. The issuer stops with the registry."""
    issuer = TokenIssuer(Path(workdir) / "issuer", users, read_only=read_only, expires_in=expires_in)
    return RegistryServer.start(workdir, token=issuer, tls=tls)
