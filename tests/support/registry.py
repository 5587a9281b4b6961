"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free loopback port.

Tests talk to it over plain HTTP, which docker, skopeo and dockyard all allow for 127.0.0.0/8. The server is
configured by a generated config.yml, built up section by section in `_config()`, so that authentication
(htpasswd, token) and TLS can be added later as keyword options of `start()` without touching the callers.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

BINARY = "docker-registry"
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    """A port nothing listens on right now (there is a window before the server binds it; start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryServer:
    def __init__(self, workdir: Path, port: int, process: subprocess.Popen, stderr_path: Path):
        self.workdir = workdir
        self.port = port
        self.process = process
        self._stderr_path = stderr_path

    # --- what tests use ---
    @property
    def host(self) -> str:
        """host:port, as it goes into an image reference (`{host}/repo:tag`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        """The filesystem driver's root (tests tamper with blobs under it to simulate corruption)."""
        return self.workdir / "storage"

    def blob_data_path(self, digest: str) -> Path:
        """Where distribution's filesystem driver keeps a blob's bytes."""
        algo, _, hexpart = digest.partition(":")
        return self.storage / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"

    @classmethod
    def start(cls, workdir: Path, *, timeout: float = STARTUP_TIMEOUT) -> "RegistryServer":
        # Future options (htpasswd=..., tls=..., token_realm=...) go here as keyword arguments and into
        # _config(); callers that don't name them keep getting an open plain-HTTP registry.
        if shutil.which(BINARY) is None:
            raise RuntimeError(f"{BINARY} is not installed (apt-get install -y docker-registry)")
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        # Another process can take the free port between free_port() and the server's bind: retry a few times.
        for _attempt in range(3):
            port = free_port()
            try:
                return cls._launch(workdir, port, timeout)
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

    def stderr(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    # --- internals ---
    @classmethod
    def _config(cls, workdir: Path, port: int) -> dict:
        return {
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

    @classmethod
    def _launch(cls, workdir: Path, port: int, timeout: float) -> "RegistryServer":
        config_path = workdir / "config.yml"
        # YAML is a superset of JSON, so the config needs no YAML library.
        config_path.write_text(json.dumps(cls._config(workdir, port), indent=2))
        stderr_path = workdir / f"registry-{port}.log"
        with open(stderr_path, "wb") as err:
            # stdout/stderr go to a file, not a pipe: nobody reads a pipe while tests run, and a full pipe
            # would block the registry.
            process = subprocess.Popen([BINARY, "serve", str(config_path)], cwd=workdir,
                                       stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        server = cls(workdir, port, process, stderr_path)
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
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    log = self.stderr()
                    if "address already in use" in log:
                        raise _PortTaken(f"port {self.port} was taken")
                    raise RuntimeError(f"{BINARY} exited with status {self.process.returncode} before answering "
                                       f"on {self.url}/v2/; its output:\n{log}")
                try:
                    if probe.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{BINARY} did not answer on {self.url}/v2/ within {timeout:.0f}s; its "
                                       f"output:\n{self.stderr()}")
                time.sleep(0.05)


class _PortTaken(RuntimeError):
    pass
