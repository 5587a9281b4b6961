"""Test certificates made with the `openssl` CLI: a CA, a server certificate it signs for loopback, and a
self-signed key pair that signs registry tokens.

Nothing here is secret or long-lived: keys are unencrypted, certificates expire in two days, and everything
lives in the test's temporary directory.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"
# Names a test registry on this machine may be addressed by; all go into the server certificate.
LOOPBACK_NAMES = ("IP:127.0.0.1", "IP:::1", "DNS:localhost")


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_ca(directory: Path, name: str = "dockyard test CA") -> KeyPair:
    """A self-signed CA certificate (what a test passes as --registry-ca or puts in certs.d)."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS, "-subj", f"/CN={name}",
             "-keyout", str(pair.key), "-out", str(pair.cert),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return pair


def make_server_cert(directory: Path, ca: KeyPair, names: tuple[str, ...] = LOOPBACK_NAMES) -> KeyPair:
    """A server certificate signed by `ca`, valid for `names` (subjectAltName entries such as IP:127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / "server.crt", directory / "server.key")
    csr = directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName={','.join(names)}\n"
                          "basicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature,keyEncipherment\n"
                          "extendedKeyUsage=serverAuth\n"
                          "subjectKeyIdentifier=hash\n"
                          "authorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=dockyard test registry",
             "-keyout", str(pair.key), "-out", str(csr), cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-set_serial",
             str(secrets.randbits(63)), "-days", DAYS,
             "-extfile", str(extensions), "-out", str(pair.cert), cwd=directory)
    return pair


def make_signing_pair(directory: Path, name: str = "dockyard test token issuer") -> KeyPair:
    """A self-signed RSA certificate whose key signs tokens (RS256); the certificate is the registry's
    `rootcertbundle`, so the registry trusts exactly the tokens signed with this key."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / "signing.crt", directory / "signing.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS, "-subj", f"/CN={name}",
             "-keyout", str(pair.key), "-out", str(pair.cert), cwd=directory)
    return pair


def der_certificate(cert: Path) -> bytes:
    """The certificate in DER (what a JWT's `x5c` header carries, base64-encoded)."""
    return subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], capture_output=True,
                          check=True).stdout


def sign_rs256(key: Path, data: bytes) -> bytes:
    """An RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of `data`: exactly what `openssl dgst -sign` makes."""
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=data, capture_output=True,
                          check=True).stdout
