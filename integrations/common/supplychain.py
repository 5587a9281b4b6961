"""The supply-chain part of a build request, and of its result: what an adapter's `sbom`, `provenance`, `attests`
and `sign` inputs become on `dockyard build` (buildx's flags: `--sbom`, `--provenance`, `--attest`, and dockyard's
`--sign`), with the CI run's identity as the provenance's builder id; and the lines a job summary shows for what
the metadata file says was attested and signed.

Values are checked here, before dockyard runs, so a typo is an error naming the input rather than a build that
silently has no SBOM or no signature. The builder id is the adapter's to give (the GitHub run, the GitLab job, the
Jenkins build): nothing here knows a CI platform."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.errors import UsageError

TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")
PROVENANCE_MODES = ("min", "max")
PROVENANCE_VERSIONS = ("v0.2", "v1")
ATTESTATION_TYPES = ("sbom", "provenance")
# The variable the adapters put a signing key's passphrase in for dockyard (`--sign key=...,passphrase-env=`):
# the passphrase never goes on a command line.
PASSPHRASE_ENV = "DOCKYARD_SIGN_PASSPHRASE"

# Predicate types as a person reads them in a job summary (BuildKit's and cosign's names).
PREDICATE_NAMES = {
    "https://spdx.dev/Document": "SBOM (SPDX)",
    "https://cyclonedx.org/bom": "SBOM (CycloneDX)",
    "https://slsa.dev/provenance/v0.2": "provenance (SLSA v0.2)",
    "https://slsa.dev/provenance/v1": "provenance (SLSA v1)",
}


def attributes(text: str) -> list[tuple[str, str]]:
    """`KEY=VALUE,...` as buildx reads an attestation's attributes (a quoted CSV field keeps its commas); a field
    without `=` is a key with an empty value."""
    pairs = []
    for field in next(csv.reader([text]), []):
        key, _, value = field.partition("=")
        if key.strip():
            pairs.append((key.strip().lower(), value.strip()))
    return pairs


def _joined(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{key}={value}" if value else key for key, value in pairs)


def sbom_value(text: str, *, subject: str = "input sbom") -> str:
    """The `--sbom` value for the input: "" (not given: no SBOM), `true`, `false`, or attributes
    (`generator=IMAGE`, passed on as given)."""
    value = text.strip()
    if not value:
        return ""
    if value.lower() in TRUE_WORDS:
        return "true"
    if value.lower() in FALSE_WORDS:
        return "false"
    pairs = attributes(value)
    if not pairs or any(not item for _, item in pairs):
        raise UsageError(f"{value!r} is neither true, false nor KEY=VALUE attributes", subject=subject,
                         hint="true for an SPDX SBOM of the image in its index (as buildx's --sbom=true), "
                              "false for none")
    return value


def _checked_provenance(pairs: list[tuple[str, str]], given: str, subject: str) -> None:
    for key, item in pairs:
        if key == "mode" and item not in PROVENANCE_MODES:
            raise UsageError(f"provenance mode {item!r} in {given!r} is not min or max", subject=subject,
                             hint="mode=min records the build's inputs by digest; mode=max also the build "
                                  "arguments and every step (secrets never)")
        if key == "version" and item not in PROVENANCE_VERSIONS:
            raise UsageError(f"provenance version {item!r} in {given!r} is not v0.2 or v1", subject=subject,
                             hint="version=v1 for SLSA provenance v1; the default is v0.2, as BuildKit's")


def with_builder_id(pairs: list[tuple[str, str]], builder_id: str) -> list[tuple[str, str]]:
    """The attributes with `builder-id=` the CI run's URL added, unless the user gave one (build-push-action's
    rule: a builder id given wins)."""
    if not builder_id or any(key == "builder-id" for key, _ in pairs):
        return pairs
    return [*pairs, ("builder-id", builder_id)]


def provenance_value(text: str, *, builder_id: str = "", subject: str = "input provenance") -> str:
    """The `--provenance` value for the input, as build-push-action makes it: "" (not given), `false`, `true` →
    `builder-id=URL` (buildx's default mode, min), attributes (`mode=max`, `version=v1`) with the builder id
    added unless given."""
    value = text.strip()
    if not value:
        return ""
    if value.lower() in FALSE_WORDS:
        return "false"
    if value.lower() in TRUE_WORDS:
        return _joined(with_builder_id([], builder_id)) or "true"
    pairs = attributes(value)
    if not pairs:
        raise UsageError(f"{value!r} is neither true, false nor KEY=VALUE attributes", subject=subject,
                         hint="e.g. mode=max, or mode=min,version=v1")
    _checked_provenance(pairs, value, subject)
    return _joined(with_builder_id(pairs, builder_id))


def attest_values(items: Sequence[str], *, builder_id: str = "", subject: str = "input attests") -> list[str]:
    """The `--attest` values for the input's items (`type=sbom[,...]`, `type=provenance,mode=max,...`), checked;
    a provenance attestation gets the CI run's builder id as `provenance` does."""
    values = []
    for item in items:
        pairs = attributes(item)
        kinds = [value for key, value in pairs if key == "type"]
        if len(kinds) != 1 or kinds[0] not in ATTESTATION_TYPES:
            raise UsageError(f"{item!r} does not name one type=sbom or type=provenance", subject=subject,
                             hint="one attestation per line, e.g. type=sbom or type=provenance,mode=max")
        if kinds[0] == "provenance":
            _checked_provenance(pairs, item, subject)
            pairs = with_builder_id(pairs, builder_id)
        values.append(_joined(pairs))
    return values


@dataclass(frozen=True)
class Signing:
    """How the adapter asks dockyard to sign what it pushes: with a key file, or keyless (a certificate for the
    CI's OIDC identity)."""

    keyless: bool = False
    key_file: str = ""  # a PEM or cosign encrypted key, in a file only the job can read
    passphrase_env: str = ""  # the variable holding the key's passphrase, for dockyard to read
    oidc_token_env: str = ""  # keyless: the variable holding the OIDC token (none: dockyard asks the CI for one)
    # More attributes as the user gave them (a private Sigstore instance: fulcio-url=, rekor-url=, trusted-root=)
    options: tuple[str, ...] = ()

    def argument(self) -> str:
        """The `--sign` value: `key=PATH[,passphrase-env=VAR]` or `keyless[,oidc-token-env=VAR]`, then the
        options."""
        if self.keyless:
            words = ["keyless"] + ([f"oidc-token-env={self.oidc_token_env}"] if self.oidc_token_env else [])
        else:
            words = [f"key={self.key_file}"] + ([f"passphrase-env={self.passphrase_env}"] if self.passphrase_env
                                                else [])
        return ",".join(words + list(self.options))


SIGN_MODES = ("key", "keyless")


def sign_mode(text: str, *, subject: str = "input sign") -> str:
    """The input's signing mode: "" (no signature: empty or false), `key` or `keyless`."""
    value = text.strip().lower()
    if value in ("", *FALSE_WORDS):
        return ""
    if value not in SIGN_MODES:
        raise UsageError(f"{text.strip()!r} is not key, keyless or false", subject=subject,
                         hint="key signs with a private key (PEM or cosign's encrypted format) given as a secret; "
                              "keyless with a short-lived certificate for the CI job's OIDC identity")
    return value


def sign_options(text: str, *, subject: str = "input sign-options") -> tuple[str, ...]:
    """The `sign-options` input's `KEY=VALUE` attributes, added to `--sign` as given (dockyard checks their
    names): for keyless signing with a private Sigstore instance `fulcio-url=`, `rekor-url=`, `trusted-root=`.
    The key and the signing mode are the adapter's to give."""
    pairs = attributes(text.strip()) if text.strip() else []
    for key, value in pairs:
        if not value:
            raise UsageError(f"{key!r} is not KEY=VALUE", subject=subject,
                             hint="comma-separated KEY=VALUE, e.g. fulcio-url=URL,rekor-url=URL,trusted-root=FILE")
        if key in ("key", "keyless"):
            raise UsageError(f"{key}= is the adapter's to give", subject=subject,
                             hint="choose the mode with sign, and give the key as its input says")
    return tuple(f"{key}={value}" for key, value in pairs)


def check_pushes(signing: Signing | None, pushes: bool, *, subject: str = "input sign") -> None:
    """A signature is pushed next to the image: a build that pushes nothing has nothing to sign."""
    if signing is not None and not pushes:
        raise UsageError("the image is signed where it is pushed, and this build pushes nothing", subject=subject,
                         hint="push the image (push: true, or a registry output), or leave sign out")


# --- what was attested and signed (the metadata file) ----------------------------------------------------------

def predicate_name(predicate_type: str) -> str:
    return PREDICATE_NAMES.get(predicate_type, predicate_type)


def attestation_lines(metadata: Mapping[str, Any]) -> list[str]:
    """One line per attestation manifest in the metadata (`attestations`: platform, digest, predicateTypes):
    `linux/amd64: SBOM (SPDX), provenance (SLSA v0.2) in sha256:...`. None when there is no such key."""
    lines = []
    for entry in metadata.get("attestations") or []:
        kinds = ", ".join(predicate_name(str(kind)) for kind in entry.get("predicateTypes") or [])
        lines.append(f"{entry.get('platform') or 'image'}: {kinds or 'attestation'} in {entry.get('digest')}")
    return lines


def signature_lines(metadata: Mapping[str, Any]) -> list[str]:
    """One line per signature in the metadata (`signatures`: digest, tag or referrer, kind):
    `sha256:... with a key, as tag sha256-....sig`. None when there is no such key."""
    kinds = {"key": "with a key", "keyless": "keyless"}
    lines = []
    for entry in metadata.get("signatures") or []:
        where = (f"as tag {entry['tag']}" if entry.get("tag") else
                 f"as referrer {entry['referrer']}" if entry.get("referrer") else "")
        how = kinds.get(str(entry.get("kind")), str(entry.get("kind") or ""))
        lines.append(", ".join(part for part in (f"{entry.get('digest')} {how}".strip(), where) if part))
    return lines
