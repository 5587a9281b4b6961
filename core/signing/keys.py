"""Signing keys from files: PEM ECDSA P-256 private keys (SEC 1 `EC PRIVATE KEY` as `openssl ecparam -genkey`
writes it, PKCS #8 `PRIVATE KEY`, passphrase-protected PKCS #8 `ENCRYPTED PRIVATE KEY`) and cosign's own
encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`, or the older `ENCRYPTED COSIGN PRIVATE KEY` header).

cosign's format is a JSON document inside the PEM armor: the PKCS #8 key sealed with NaCl's secretbox under a
key derived from the passphrase with scrypt (`{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"},
"cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}`, binary fields in base64). Only the scrypt
parameter sets cosign writes are accepted, as cosign does: a file cannot make us spend unbounded memory.

Signatures are ECDSA over SHA-256, DER-encoded, as cosign makes them with such a key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SigningError
from .spec import SigningSpec

COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# The (N, r, p) sets go-securesystemslib's encrypted package (cosign's) writes and reads: legacy, standard, OWASP.
SCRYPT_PARAMETERS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
DEFAULT_SCRYPT = (65536, 8, 1)  # what `cosign generate-key-pair` writes
# The passphrase cosign itself reads when nothing else is named.
COSIGN_PASSWORD_ENV = "COSIGN_PASSWORD"
_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)-----END \1-----", re.S)


@dataclass(frozen=True)
class SigningKey:
    """An ECDSA P-256 private key, ready to sign; `source` names the file for messages."""

    private_key: Any = field(repr=False)  # cryptography's EllipticCurvePrivateKey
    source: str

    def sign(self, data: bytes) -> bytes:
        """The DER ECDSA signature of SHA-256(data)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return bytes(self.private_key.sign(data, ec.ECDSA(hashes.SHA256())))

    @property
    def public_der(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))

    @property
    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return str(self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())

    @property
    def hint(self) -> str:
        """How a Sigstore bundle names the public key that verifies it: base64 of SHA-256 of its DER form."""
        return base64.b64encode(hashlib.sha256(self.public_der).digest()).decode()

    def verifies(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            self.private_key.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


def load_signing_key(spec: SigningSpec, environ: dict[str, str] | None = None) -> SigningKey:
    """The private key `spec` names, decrypted with its passphrase (from `passphrase-env`, `passphrase-file`, or
    COSIGN_PASSWORD as cosign reads it). Raises SigningError naming the file and what to do."""
    environ = dict(os.environ) if environ is None else environ
    assert spec.key is not None, "a key spec names a key"
    path = Path(spec.key)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise SigningError(f"the signing key {path} does not exist",
                           hint="give the private key file: --sign key=PATH (cosign generate-key-pair writes "
                                "cosign.key; openssl ecparam -name prime256v1 -genkey -noout -out key.pem)") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not a PEM text file"
        raise SigningError(f"cannot read the signing key {path}: {why}", subject=str(path)) from None
    return parse_signing_key(text, str(path), lambda: _passphrase(spec, environ, str(path)))


def parse_signing_key(text: str, source: str, passphrase: Any = None) -> SigningKey:
    """The key in PEM `text`; `passphrase` is a callable returning the passphrase (bytes), asked only when the key
    is encrypted (or the bytes themselves)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def ask() -> bytes:
        if passphrase is None:
            raise SigningError(f"the signing key {source} is encrypted, and no passphrase was given",
                               hint="add passphrase-env=VAR or passphrase-file=FILE to --sign")
        return bytes(passphrase() if callable(passphrase) else passphrase)

    blocks = [(kind, body) for kind, body in _PEM_RE.findall(text) if kind != "EC PARAMETERS"]
    if not blocks:
        raise SigningError(f"{source} is not a PEM private key (no -----BEGIN ... PRIVATE KEY----- block)",
                           hint="give an ECDSA P-256 private key in PEM, or a key cosign generate-key-pair wrote")
    kind, body = blocks[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        raise SigningError(f"{source}: the {kind} block is not valid base64") from None
    try:
        if kind in COSIGN_PEM_TYPES:
            key = serialization.load_der_private_key(decrypt_cosign_key(der, ask(), source), password=None)
        elif kind == "ENCRYPTED PRIVATE KEY":
            key = serialization.load_der_private_key(der, password=ask())
        elif kind in ("EC PRIVATE KEY", "PRIVATE KEY"):
            key = serialization.load_der_private_key(der, password=None)
        else:
            raise SigningError(f"{source} holds a {kind}, not a private key dockyard can sign with",
                               hint="give an ECDSA P-256 private key (PEM) or a cosign key")
    except (ValueError, TypeError) as exc:
        wrong = "incorrect password" in str(exc).lower() or "bad decrypt" in str(exc).lower()
        if wrong:
            raise SigningError(f"the passphrase given for the signing key {source} is wrong",
                               hint="check the variable or file --sign's passphrase-env/passphrase-file names") \
                from None
        raise SigningError(f"{source}: the {kind} block is not a valid private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        what = f"an ECDSA {key.curve.name} key" if isinstance(key, ec.EllipticCurvePrivateKey) else \
            f"a {type(key).__name__.replace('PrivateKey', '').lstrip('_')} key"
        raise SigningError(f"{source} is {what}; dockyard signs with ECDSA P-256 keys (cosign's default)",
                           hint="make one with `openssl ecparam -name prime256v1 -genkey -noout -out key.pem` or "
                                "`cosign generate-key-pair`")
    return SigningKey(key, source)


def decrypt_cosign_key(sealed: bytes, passphrase: bytes, source: str = "the key") -> bytes:
    """The PKCS #8 DER key inside cosign's encrypted JSON document."""
    import nacl.exceptions
    import nacl.secret

    try:
        doc = json.loads(sealed)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = (int(kdf["params"]["N"]), int(kdf["params"]["r"]), int(kdf["params"]["p"]))
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(doc["ciphertext"])
        names = (kdf["name"], cipher["name"])
    except (ValueError, KeyError, TypeError):
        raise SigningError(f"{source} is not a valid cosign encrypted key (its JSON document is malformed)") \
            from None
    if names != ("scrypt", "nacl/secretbox"):
        raise SigningError(f"{source} uses {names[0]}/{names[1]}; cosign keys use scrypt and nacl/secretbox")
    if params not in SCRYPT_PARAMETERS:
        raise SigningError(f"{source}: unsupported scrypt parameters N={params[0]}, r={params[1]}, p={params[2]}",
                           hint="cosign writes N=32768, 65536 or 131072 with r=8, p=1: re-create the key with "
                                "cosign generate-key-pair")
    box_key = _scrypt(passphrase, salt, params)
    try:
        return nacl.secret.SecretBox(box_key).decrypt(ciphertext, nonce)
    except (nacl.exceptions.CryptoError, ValueError):
        raise SigningError(f"the passphrase given for the signing key {source} is wrong (cosign's encrypted key "
                           "would not open with it)",
                           hint="check the variable or file --sign's passphrase-env/passphrase-file names") from None


def encrypt_cosign_key(pkcs8_der: bytes, passphrase: bytes, params: tuple[int, int, int] = DEFAULT_SCRYPT) -> bytes:
    """cosign's encrypted JSON document for a PKCS #8 DER key (what `cosign generate-key-pair` writes)."""
    import nacl.secret
    import nacl.utils

    salt = os.urandom(32)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = nacl.secret.SecretBox(_scrypt(passphrase, salt, params)).encrypt(pkcs8_der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": params[0], "r": params[1], "p": params[2]},
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    return json.dumps(doc, separators=(",", ":")).encode()


def cosign_key_pem(private_key: Any, passphrase: bytes) -> str:
    """A private key as cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` PEM file."""
    from cryptography.hazmat.primitives import serialization

    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    body = base64.b64encode(encrypt_cosign_key(der, passphrase)).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {COSIGN_PEM_TYPES[0]}-----\n{lines}\n-----END {COSIGN_PEM_TYPES[0]}-----\n"


def _scrypt(passphrase: bytes, salt: bytes, params: tuple[int, int, int]) -> bytes:
    n, r, p = params
    # scrypt needs 128 * N * r bytes (128 MiB for the largest accepted set); hashlib's default cap is 32 MiB.
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * 1024 * 1024)


def _passphrase(spec: SigningSpec, environ: dict[str, str], source: str) -> bytes:
    if spec.passphrase_env:
        if spec.passphrase_env not in environ:
            raise SigningError(f"the signing key {source} is encrypted, and its passphrase variable "
                               f"{spec.passphrase_env} is not set",
                               hint=f"export {spec.passphrase_env}, or name another with passphrase-env=VAR")
        return environ[spec.passphrase_env].encode()
    if spec.passphrase_file:
        try:
            text = Path(spec.passphrase_file).read_bytes()
        except OSError as exc:
            raise SigningError(f"cannot read the passphrase file {spec.passphrase_file}: {exc.strerror}",
                               subject=spec.passphrase_file) from None
        # A file written by `echo` ends in a newline that is no part of the passphrase.
        return text[:-1] if text.endswith(b"\n") else text
    if COSIGN_PASSWORD_ENV in environ:
        return environ[COSIGN_PASSWORD_ENV].encode()
    raise SigningError(f"the signing key {source} is encrypted, and no passphrase was given",
                       hint="add passphrase-env=VAR or passphrase-file=FILE to --sign (or set COSIGN_PASSWORD, "
                            "as for cosign)")
