"""Which certificates to trust and present for each registry, as docker decides it.

Sources, for a registry `HOST[:PORT]`:

* the system's CA bundle (`SSL_CERT_FILE`, else OpenSSL's default file, e.g. Debian's
  /etc/ssl/certs/ca-certificates.crt) — not certifi's copy, so that a company CA installed with
  update-ca-certificates is trusted, as docker (Go) trusts it;
* docker's certs.d convention, `/etc/docker/certs.d/HOST[:PORT]/` (and podman's /etc/containers/certs.d):
  every `*.crt` is a CA *added* to the system ones, every `NAME.cert` a client certificate whose key is
  `NAME.key`;
* `--registry-ca HOST=FILE` (added to the CAs) and `--registry-client-cert HOST=CERT,KEY` (replaces a certs.d
  client certificate);
* `--insecure-registry HOST` / `--skip-tls-verify-registry HOST`: no verification at all, announced once per
  registry with a warning event.

requests takes one CA file per request, so a registry with its own CAs gets a bundle (system CAs + its CAs)
written into a private temporary directory that `close()` removes.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import RegistryError
from ..events import NULL_EVENTS, Events
from ..image.reference import DOCKER_HUB

DEFAULT_CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))
# Tests (and unusual installs) point this at another directory instead of the defaults above.
CERTS_DIR_ENV = "DOCKYARD_CERTS_D"
# certs.d directories for Docker Hub are named by any of these; a reference always says docker.io.
_HUB_NAMES = (DOCKER_HUB, "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class TLSConfig:
    """How requests speaks TLS to one registry: what to verify its certificate against, and a client certificate."""

    verify: bool | str  # requests' `verify=`: True (requests' CAs), False (insecure), or a CA bundle path
    cert: tuple[str, str] | None = None  # requests' `cert=`: (certificate file, key file)


def system_ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA file OpenSSL (and so docker, through Go) trusts by default here, if there is one."""
    paths = ssl.get_default_verify_paths()
    for candidate in (environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def certs_dirs_from_env(environ: Mapping[str, str]) -> tuple[Path, ...]:
    override = environ.get(CERTS_DIR_ENV)
    return (Path(override),) if override else DEFAULT_CERTS_DIRS


def normalize_host(host: str) -> str:
    host = host.strip().lower()
    return DOCKER_HUB if host in _HUB_NAMES else host


class TLSSettings:
    def __init__(self, *, certs_dirs: Iterable[Path] = DEFAULT_CERTS_DIRS,
                 ca_files: Iterable[tuple[str, str]] = (), client_certs: Iterable[tuple[str, str, str]] = (),
                 insecure: Iterable[str] = (), system_cas: str | None = None, events: Events = NULL_EVENTS):
        """`ca_files`: (host, CA file) pairs; `client_certs`: (host, cert file, key file); `insecure`: hosts
        whose certificates are not verified; `system_cas`: the system CA bundle (None: requests' own)."""
        self.certs_dirs = tuple(Path(d) for d in certs_dirs)
        self.ca_files: dict[str, list[str]] = {}
        for host, path in ca_files:
            self.ca_files.setdefault(normalize_host(host), []).append(path)
        self.client_certs = {normalize_host(host): (cert, key) for host, cert, key in client_certs}
        self.insecure = frozenset(normalize_host(h) for h in insecure)
        self.system_cas = system_cas
        self.events = events
        self._lock = threading.Lock()
        self._configs: dict[str, TLSConfig] = {}
        self._bundle_dir: str | None = None
        self._remove_bundles: weakref.finalize[Any, Any] | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **kwargs: Any) -> TLSSettings:
        return cls(certs_dirs=certs_dirs_from_env(environ), system_cas=system_ca_bundle(environ), **kwargs)

    def for_registry(self, host: str) -> TLSConfig:
        """What to verify the registry `host` (host[:port], as in an image reference) with and present to it."""
        host = normalize_host(host)
        with self._lock:
            config = self._configs.get(host)
            if config is None:
                config = self._configs[host] = self._resolve(host)
            return config

    def configured(self, host: str) -> bool:
        """Whether `host` has CAs or a client certificate of its own (flags or certs.d). A loopback registry,
        spoken to in plain HTTP by default as docker does, is then spoken to in HTTPS: the user said it has TLS."""
        config = self.for_registry(host)
        return config.cert is not None or (isinstance(config.verify, str) and config.verify != self.system_cas)

    def close(self) -> None:
        """Remove the CA bundles written for this build."""
        with self._lock:
            if self._remove_bundles is not None:
                self._remove_bundles()
                self._bundle_dir = self._remove_bundles = None
            self._configs.clear()

    # --- internals -----------------------------------------------------------------------------------------
    def _resolve(self, host: str) -> TLSConfig:
        cas, cert = self._certs_d_files(host)
        cas += self.ca_files.get(host, [])
        cert = self.client_certs.get(host, cert)
        if host in self.insecure:
            # Warned here, under the lock, because the result is cached: exactly once per registry.
            self.events.warning(f"TLS certificates of registry {host} are not verified (it was named insecure): "
                                "anyone on the network path can read and alter what is pulled and pushed")
            return TLSConfig(verify=False, cert=cert)
        verify: bool | str = self.system_cas or True
        if cas:
            verify = self._write_bundle(host, cas)
        return TLSConfig(verify=verify, cert=cert)

    def _certs_d_files(self, host: str) -> tuple[list[str], tuple[str, str] | None]:
        """CAs and the client certificate in the certs.d directories for `host` (docker sorts by name)."""
        names = _HUB_NAMES if host == DOCKER_HUB else (host,)
        cas: list[str] = []
        cert: tuple[str, str] | None = None
        for base in self.certs_dirs:
            for name in names:
                directory = base / name
                if not directory.is_dir():
                    continue
                for entry in sorted(directory.iterdir()):
                    if entry.suffix == ".crt":
                        cas.append(str(entry))
                    elif entry.suffix == ".cert" and cert is None:
                        key = entry.with_suffix(".key")
                        if not key.is_file():
                            raise RegistryError(f"the client certificate {entry} for registry {host} has no key "
                                                f"file {key.name} next to it",
                                                hint="docker's certs.d layout pairs NAME.cert with NAME.key")
                        cert = (str(entry), str(key))
        return cas, cert

    def _write_bundle(self, host: str, cas: list[str]) -> str:
        """One PEM file: the system CAs, then the registry's own (docker adds them to the system pool)."""
        parts: list[bytes] = []
        for path in ([self.system_cas] if self.system_cas else []) + cas:
            try:
                parts.append(Path(path).read_bytes().rstrip(b"\n") + b"\n")
            except OSError as exc:
                raise RegistryError(f"cannot read the CA certificate {path} for registry {host}: {exc.strerror}",
                                    hint="check the --registry-ca path or the certs.d directory") from None
        if self._bundle_dir is None:
            self._bundle_dir = tempfile.mkdtemp(prefix="dockyard-ca-")  # 0700: private to this process
            # Removed by close(), or when this object is collected or the process exits if a caller forgets.
            self._remove_bundles = weakref.finalize(self, shutil.rmtree, self._bundle_dir, True)
        bundle = os.path.join(self._bundle_dir, host.replace(":", "_").replace("/", "_") + ".pem")
        with open(bundle, "wb") as out:
            out.write(b"".join(parts))
        return bundle


def untrusted_certificate_hint(registry: str) -> str:
    """What to tell a user whose registry's certificate did not verify (for the client's TLS errors)."""
    return (f"if {registry} uses a private CA, trust it with --registry-ca {registry}=CA.crt or put the CA in "
            f"/etc/docker/certs.d/{registry}/ca.crt; --insecure-registry {registry} turns verification off")
