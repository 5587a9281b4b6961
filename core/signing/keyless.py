"""`--sign keyless[,oidc-token-env=VAR][,fulcio-url=URL][,rekor-url=URL][,trusted-root=FILE]`: signing with a
short-lived Fulcio certificate for the CI job's OIDC identity, each signature logged in Rekor, through the
`sigstore` library (sigstore-python), as `cosign sign` does without `--key`.

Where the OIDC token comes from, in this order:
* `oidc-token-env=VAR`: the token is VAR's value (GitLab: an `id_tokens:` entry with `aud: sigstore`);
* GitHub Actions (`permissions: id-token: write` sets ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN): the token is
  requested from the runner with the audience `sigstore`, when the first signature is made (GitHub's tokens
  live minutes: one fetched before a long build would have expired by its push);
* SIGSTORE_ID_TOKEN, the name GitLab's and cosign's documentation give the `id_tokens:` variable.
None of them is an error at once, before anything is built.

Which Sigstore: the public-good instance (its trusted root and service URLs through its TUF repository), or a
private one: `trusted-root=FILE` (a trusted root, with `fulcio-url=` and `rekor-url=`; or a client trust
config, which names the services itself, the URLs then overriding it).

What is signed is what the push hook hands over (core/signing/sign.py): cosign's classic simple-signing payload
(a message signature; the certificate, its chain and the Rekor entry go in the `.sig` layer's annotations, as
cosign writes them) and cosign v3's in-toto signing statement (a DSSE envelope in a Sigstore bundle v0.3 with
the certificate and the Rekor entry). Fulcio is asked for a certificate at the first signature, inside the
push's `before_tags`: a Fulcio or Rekor that cannot be reached is a SigningError there, and no tag moves.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ..errors import SigningError
from ..events import Events
from .spec import SigningSpec

# The classic `.sig` layer's annotations of a keyless signature (cosign's names).
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

GITHUB_REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
GITLAB_TOKEN_VARIABLE = "SIGSTORE_ID_TOKEN"
AUDIENCE = "sigstore"

_OPTIONS = ("oidc-token-env", "fulcio-url", "rekor-url", "trusted-root")
_CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
_TRUSTED_ROOT_PREFIX = "application/vnd.dev.sigstore.trustedroot"
_SIGNING_CONFIG = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
# A service's validity in a signing config made from fulcio-url=/rekor-url=: from any time in the past on.
_SERVICE_START = "2020-01-01T00:00:00Z"
_NO_TOKEN_HINT = (f"GitHub Actions: give the job `permissions: id-token: write`; GitLab CI: give it `id_tokens: "
                  f"{GITLAB_TOKEN_VARIABLE}: aud: sigstore`; elsewhere put a token whose audience is "
                  f"`sigstore` in a variable and name it: --sign keyless,oidc-token-env=VAR")


@dataclass(frozen=True)
class KeylessOptions:
    """The attributes of `--sign keyless,...`."""

    oidc_token_env: str | None = None
    fulcio_url: str | None = None
    rekor_url: str | None = None
    trusted_root: str | None = None

    @classmethod
    def from_spec(cls, spec: SigningSpec) -> KeylessOptions:
        values: dict[str, str] = {}
        for name, value in spec.options:
            if name not in _OPTIONS:
                raise SigningError(f"--sign {spec}: unknown keyless attribute {name!r}",
                                   hint="keyless takes " + ", ".join(f"{o}=..." for o in _OPTIONS))
            if not value:
                raise SigningError(f"--sign {spec}: {name}= needs a value")
            values[name.replace("-", "_")] = value
        options = cls(**values)
        if (options.fulcio_url or options.rekor_url) and not options.trusted_root:
            raise SigningError(f"--sign {spec}: fulcio-url= and rekor-url= name a private Sigstore instance, "
                               "whose certificates and log keys a verifier must be given",
                               hint="add trusted-root=FILE (the instance's trusted_root.json)")
        return options


@dataclass(frozen=True)
class TokenSource:
    """Where the OIDC token is: a variable's value, or GitHub's token request (made when the token is needed)."""

    what: str  # for messages: "$VAR" or "GitHub Actions' OIDC token request"
    token: str | None = None
    request_url: str | None = None
    request_token: str | None = None

    def fetch(self) -> str:
        if self.token is not None:
            return self.token
        assert self.request_url is not None and self.request_token is not None
        url = self.request_url + ("&" if "?" in self.request_url else "?") + f"audience={AUDIENCE}"
        try:
            resp = requests.get(url, headers={"Authorization": f"bearer {self.request_token}"}, timeout=30)
        except requests.RequestException as exc:
            raise SigningError(f"cannot request the job's OIDC token from GitHub Actions: {exc}",
                               hint="the image was pushed by digest only: no tag was moved") from None
        value = None
        if resp.status_code == 200:
            try:
                value = resp.json().get("value")
            except ValueError:
                value = None
        if not isinstance(value, str) or not value:
            raise SigningError(f"GitHub Actions refused the job's OIDC token (HTTP {resp.status_code})",
                               hint="give the job `permissions: id-token: write`; the image was pushed by "
                                    "digest only: no tag was moved")
        return value


def token_source(options: KeylessOptions, environ: Mapping[str, str]) -> TokenSource:
    """Where this job's OIDC token is; a SigningError naming what the CI must provide when there is none."""
    if options.oidc_token_env:
        value = environ.get(options.oidc_token_env, "").strip()
        if not value:
            raise SigningError(f"keyless signing: the OIDC token variable {options.oidc_token_env} is not set",
                               hint=_NO_TOKEN_HINT)
        return TokenSource(f"${options.oidc_token_env}", token=value)
    url, request_token = environ.get(GITHUB_REQUEST_URL), environ.get(GITHUB_REQUEST_TOKEN)
    if url and request_token:
        return TokenSource("GitHub Actions' OIDC token request", request_url=url, request_token=request_token)
    value = environ.get(GITLAB_TOKEN_VARIABLE, "").strip()
    if value:
        return TokenSource(f"${GITLAB_TOKEN_VARIABLE}", token=value)
    raise SigningError("keyless signing needs the CI job's OIDC identity token, and there is none in the "
                       f"environment (no {GITHUB_REQUEST_URL}/{GITHUB_REQUEST_TOKEN}, no {GITLAB_TOKEN_VARIABLE})",
                       hint=_NO_TOKEN_HINT)


def identity_token(raw: str, source: str) -> Any:
    """The token as sigstore-python's IdentityToken, checked (audience `sigstore`, not expired, its claims)."""
    from sigstore.oidc import IdentityError, IdentityToken

    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise SigningError(f"the OIDC token from {source} is not usable for Sigstore: {exc}",
                           hint=f"its audience must be `{AUDIENCE}` and it must not have expired "
                                f"(GitLab: `id_tokens: {GITLAB_TOKEN_VARIABLE}: aud: sigstore`)") from None


def _service(url: str) -> dict[str, Any]:
    return {"url": url.rstrip("/"), "majorApiVersion": 1, "validFor": {"start": _SERVICE_START},
            "operator": url.rstrip("/")}


def client_trust_config_document(options: KeylessOptions) -> dict[str, Any] | None:
    """The client trust config `trusted-root=FILE` (and the URLs) make; None for the public-good instance."""
    if not options.trusted_root:
        return None
    path = Path(options.trusted_root)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise SigningError(f"cannot read the trusted root {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SigningError(f"the trusted root {path} is not JSON: {exc}") from None
    media_type = str(doc.get("mediaType", "")) if isinstance(doc, dict) else ""
    config: dict[str, Any]
    if media_type == _CLIENT_TRUST_CONFIG:
        config = doc
    elif media_type.startswith(_TRUSTED_ROOT_PREFIX):
        if not (options.fulcio_url and options.rekor_url):
            raise SigningError(f"{path} is a trusted root, which does not say where Fulcio and Rekor are",
                               hint="name them: --sign keyless,trusted-root=FILE,fulcio-url=URL,rekor-url=URL")
        config = {"mediaType": _CLIENT_TRUST_CONFIG, "trustedRoot": doc,
                  "signingConfig": {"mediaType": _SIGNING_CONFIG, "caUrls": [], "oidcUrls": [],
                                    "rekorTlogUrls": [], "tsaUrls": [], "rekorTlogConfig": {"selector": "ANY"},
                                    "tsaConfig": {"selector": "ANY"}}}
    else:
        raise SigningError(f"{path} is neither a Sigstore trusted root nor a client trust config "
                           f"(its mediaType is {media_type or 'missing'})")
    signing = config.setdefault("signingConfig", {})
    if options.fulcio_url:
        signing["caUrls"] = [_service(options.fulcio_url)]
    if options.rekor_url:
        signing["rekorTlogUrls"] = [_service(options.rekor_url)]
    return config


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def with_subject_names(statement: bytes) -> bytes:
    """`statement` with `"name": ""` in each subject that has no name: sigstore-python refuses a nameless
    subject, which cosign's signing statement has. In-toto's schema is protobuf's, where an empty string is
    the absent value, so every in-toto reader sees the same statement."""
    doc = json.loads(statement)
    subjects = doc.get("subject") or []
    if all(isinstance(s, dict) and "name" in s for s in subjects):
        return statement
    doc["subject"] = [{"name": "", **s} if isinstance(s, dict) and "name" not in s else s for s in subjects]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class KeylessSigner:
    """Signs with an ephemeral key certified by Fulcio for the job's OIDC identity; every signature is logged
    in Rekor. One certificate for the whole push (sigstore-python's cached signer), asked for at the first
    signature."""

    kind = "keyless"

    def __init__(self, source: TokenSource, trust: dict[str, Any] | None, events: Events):
        self._source = source
        self._trust = trust
        self._events = events
        self._signer: Any = None
        self._fulcio_certs: list[Any] = []

    def _where(self, name: str, field: str) -> str:
        """Which service, for messages: `field` is its list in the signing config."""
        if self._trust is None:
            return f"{name} of Sigstore's public-good instance"
        services = self._trust.get("signingConfig", {}).get(field) or [{}]
        return f"{name} at {services[0].get('url', '(no URL in the client trust config)')}"

    def _ready(self) -> Any:
        if self._signer is not None:
            return self._signer
        from sigstore.models import ClientTrustConfig
        from sigstore.sign import Signer, SigningContext

        token = identity_token(self._source.fetch(), self._source.what)
        # sigstore-python raises its own errors, requests' and private classes of its internal clients: any
        # failure here is "no certificate" and must stop the push before its tags, with the cause in the text.
        try:
            config = ClientTrustConfig.production() if self._trust is None else \
                ClientTrustConfig.from_json(json.dumps(self._trust))
            context = SigningContext.from_trust_config(config)
            signer = Signer(token, context, cache=True)
            fulcio_certs = config.trusted_root.get_fulcio_certs()
        except SigningError:
            raise
        except Exception as exc:  # any failure: see above
            raise SigningError(f"cannot get a signing certificate from {self._where('Fulcio', 'caUrls')}: "
                               f"{_describe(exc)}",
                               hint="check that Fulcio is reachable from the job; the image was pushed by "
                                    "digest only: no tag was moved") from None
        self._signer = signer
        self._fulcio_certs = list(fulcio_certs)
        self._events.info(f"keyless signing as {token.identity} (issuer {token.issuer})")
        return signer

    def _log(self, sign: Any, what: str) -> dict[str, Any]:
        try:
            bundle = sign()
        except Exception as exc:  # sigstore-python's Rekor client raises private classes
            raise SigningError(f"cannot log the signature of {what} in {self._where('Rekor', 'rekorTlogUrls')}: "
                               f"{_describe(exc)}",
                               hint="check that Rekor is reachable from the job; the image was pushed by "
                                    "digest only: no tag was moved") from None
        doc: dict[str, Any] = json.loads(bundle.to_json())
        return doc

    def bundle(self, statement: bytes) -> bytes:
        """A Sigstore bundle v0.3 (JSON) of `statement` (in-toto) in a DSSE envelope, with the certificate and
        the Rekor entry."""
        from sigstore.dsse import Statement
        from sigstore.errors import Error

        signer = self._ready()
        try:
            parsed = Statement(with_subject_names(statement))
        except Error as exc:
            raise SigningError(f"cannot sign the statement: {exc}") from None
        doc = self._log(lambda: signer.sign_dsse(parsed), "the signing statement")
        return json.dumps(doc, separators=(",", ":")).encode()

    def classic_annotations(self, payload: bytes) -> dict[str, str]:
        """The annotations of a `.sig` layer carrying a signature of `payload` (cosign's keyless layout: the
        signature, the certificate and its chain in PEM, the Rekor entry's promise as cosign's bundle)."""
        signer = self._ready()
        doc = self._log(lambda: signer.sign_artifact(payload), "the simple-signing payload")
        material = doc["verificationMaterial"]
        entry = material["tlogEntries"][0]
        rekor_bundle = {"SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                        "Payload": {"body": entry["canonicalizedBody"],
                                    "integratedTime": int(entry["integratedTime"]),
                                    "logIndex": int(entry["logIndex"]),
                                    "logID": base64.b64decode(entry["logId"]["keyId"]).hex()}}
        leaf = base64.b64decode(material["certificate"]["rawBytes"])
        return {SIGNATURE_ANNOTATION: doc["messageSignature"]["signature"],
                CERTIFICATE_ANNOTATION: _pem(leaf),
                CHAIN_ANNOTATION: "".join(_pem(_der(c)) for c in issuer_chain(leaf, self._fulcio_certs)),
                REKOR_BUNDLE_ANNOTATION: json.dumps(rekor_bundle, separators=(",", ":"))}

    def already_signed(self, payload: bytes, annotations: dict[str, str]) -> bool:
        # A new ephemeral key and certificate each push: no earlier layer is this signer's.
        return False


def issuer_chain(leaf_der: bytes, certificates: list[Any]) -> list[Any]:
    """The certificates (of the trusted root's CAs) that issued `leaf_der`, from its issuer up to the root, as
    Fulcio returns the chain and cosign stores it."""
    from cryptography import x509

    chain: list[Any] = []
    current = x509.load_der_x509_certificate(leaf_der)
    while current.issuer != current.subject and len(chain) < 10:
        parent = next((c for c in certificates if c.subject == current.issuer and c not in chain), None)
        if parent is None:
            break
        chain.append(parent)
        current = parent
    return chain


def _der(certificate: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    der: bytes = certificate.public_bytes(Encoding.DER)
    return der


def _describe(exc: BaseException) -> str:
    """An exception's text, with its cause's when it says nothing itself (sigstore-python's wrappers)."""
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}: {str(cause).strip()}" if text else str(cause).strip()
    return text or type(exc).__name__


def keyless_signer(spec: SigningSpec, environ: Mapping[str, str], events: Events) -> KeylessSigner:
    """The keyless signer `spec` asks for. Checked now, before anything is built: the attributes, that the
    environment has an OIDC token (a token given in a variable is also checked to be usable), the trusted root
    file. Fulcio and Rekor are contacted at the first signature."""
    try:
        import sigstore  # noqa: F401 - only whether it is installed
    except ImportError:
        raise SigningError("keyless signing needs the `sigstore` package, which is not installed",
                           hint="pip install 'dockyard[keyless]'") from None
    options = KeylessOptions.from_spec(spec)
    source = token_source(options, environ)
    if source.token is not None:
        identity_token(source.token, source.what)
    return KeylessSigner(source, client_trust_config_document(options), events)
