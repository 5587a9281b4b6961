"""Sigstore's services stood in on loopback, an OIDC token for them, and sigstore-js's verdict on what was signed.

Fulcio, Rekor and the timestamp authority are @sigstore/mock's (the sigstore-js project's stand-ins; the real
services cannot be reached from here), served over HTTP by sigstore_mock_server.cjs, which writes the trusted
root naming their keys. The OIDC token is made here: the mock Fulcio, like the real one, takes the identity from
the token's claims (issuer, subject, audience); it does not check the signature of a token from an issuer it
does not know. The verifier is sigstore-js (@sigstore/verify), through sigstore_verify_keyless.cjs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt

from tests.support import signatures

SUPPORT = Path(__file__).parent
ISSUER = "https://token.actions.githubusercontent.com"
IDENTITY = "https://github.com/example/app/.github/workflows/build.yml@refs/heads/main"
NODE_ENV = {"NODE_PATH": str(signatures.NODE_MODULES), "PATH": "/usr/local/bin:/usr/bin:/bin"}


@dataclass(frozen=True)
class SigstoreMock:
    url: str  # Fulcio, Rekor and the TSA all answer here
    trusted_root: Path

    def sign_attributes(self) -> str:
        """`--sign keyless,...`'s attributes naming this instance."""
        return f"trusted-root={self.trusted_root},fulcio-url={self.url},rekor-url={self.url}"


@contextmanager
def running_sigstore_mock(workdir: Path) -> Iterator[SigstoreMock]:
    process = subprocess.Popen(["node", str(SUPPORT / "sigstore_mock_server.cjs"), str(workdir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=NODE_ENV)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise RuntimeError(f"the Sigstore mock did not start: {process.stderr.read() if process.stderr else ''}")
        yield SigstoreMock(json.loads(line)["url"], workdir / "trusted_root.json")
    finally:
        process.terminate()
        process.wait(timeout=30)


def oidc_token(audience: str = "sigstore", lifetime: int = 600, subject: str = IDENTITY) -> str:
    """A token with GitHub Actions' issuer and the claims Fulcio reads; signed with a key no one checks."""
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": audience, "sub": subject, "iat": now - 5, "nbf": now - 5,
                       "exp": now + lifetime}, "not-a-real-key-but-long-enough-for-hs256", algorithm="HS256")


def sigstore_js(bundle: bytes, trusted_root: Path, digest: str, *, identity: str = IDENTITY,
                issuer: str = ISSUER, artifact: bytes | None = None) -> str:
    """sigstore-js's verdict on `bundle` for `digest` (or, digest "-", a message signature over `artifact`):
    "verified", or "not verified: why"."""
    stem = trusted_root.parent / f"verify-{time.monotonic_ns()}"
    Path(f"{stem}.json").write_bytes(bundle)
    args = ["node", str(SUPPORT / "sigstore_verify_keyless.cjs"), f"{stem}.json", str(trusted_root), identity,
            issuer, digest]
    if artifact is not None:
        stem.write_bytes(artifact)
        args.append(str(stem))
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=NODE_ENV)
    assert done.stdout.strip(), done.stderr
    return done.stdout.strip().splitlines()[-1]


def image_verifies(host: str, repo: str, digest: str, trusted_root: Path, *, identity: str = IDENTITY,
                   issuer: str = ISSUER) -> bool:
    """cosign v3's lookup and check: the digest's Sigstore bundle referrers (referrers API or fallback tag), any
    of which sigstore-js verifies for the identity and the digest."""
    return any(sigstore_js(b, trusted_root, digest, identity=identity, issuer=issuer) == "verified"
               for b in signatures.referrer_bundles(host, repo, digest))
