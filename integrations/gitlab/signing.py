"""How the component signs the image it pushes, and the job's identity its provenance records.

The builder id is the job's URL (CI_JOB_URL). A key comes as GitLab keeps a secret file: a File-type CI/CD
variable (COSIGN_PRIVATE_KEY by default, as cosign's GitLab documentation names it), whose value is the path of a
file holding the key; a Variable-type one holding the key itself is written to a private file. Its passphrase stays
in its own masked variable (COSIGN_PASSWORD), which dockyard reads by name. Keyless signing uses the job's OIDC
token from `id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore`, which the pipeline adds to the job."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from dockyard.errors import UsageError

from ..common.supplychain import Signing

OIDC_TOKEN_VARIABLE = "SIGSTORE_ID_TOKEN"
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SigningInputs(Protocol):
    """The inputs of a component that signs (the build's and the merge's)."""

    @property
    def sign(self) -> str: ...  # "", key or keyless

    @property
    def sign_key_variable(self) -> str: ...

    @property
    def sign_passphrase_variable(self) -> str: ...

    @property
    def sign_options(self) -> tuple[str, ...]: ...


def builder_id(environ: Mapping[str, str]) -> str:
    return environ.get("CI_JOB_URL", "")


def _variable(name: str, subject: str) -> str:
    if not _VARIABLE_NAME.match(name):
        raise UsageError(f"{name!r} is not a variable name", subject=subject,
                         hint="the name of the CI/CD variable (letters, digits and _), not its value")
    return name


def key_file(inputs: SigningInputs, environ: Mapping[str, str], private_dir: Path) -> str:
    """The key's file: the File variable's path, or the key a Variable holds written to `private_dir`."""
    name = _variable(inputs.sign_key_variable, "input sign-key-variable")
    value = environ.get(name, "")
    if not value.strip():
        raise UsageError(f"sign: key needs the private key, and the CI/CD variable {name} is not set",
                         subject="input sign-key-variable",
                         hint=f"add {name} as a protected File variable holding the key (a PEM or cosign.key), "
                              "and its passphrase as a masked variable COSIGN_PASSWORD")
    if "-----BEGIN" in value:
        path = private_dir / "signing.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value.strip() + "\n")
        return str(path)
    if not Path(value).is_file():
        raise UsageError(f"the CI/CD variable {name} names no file", subject="input sign-key-variable",
                         hint=f"make {name} a File variable (its value is then the path of a file holding the key)")
    return value


def signing(inputs: SigningInputs, environ: Mapping[str, str], private_dir: Path) -> Signing | None:
    if inputs.sign == "keyless":
        if not environ.get(OIDC_TOKEN_VARIABLE):
            raise UsageError(f"keyless signing needs the job's OIDC token, and {OIDC_TOKEN_VARIABLE} is not set",
                             subject="input sign",
                             hint=f"give the job `id_tokens: {{{OIDC_TOKEN_VARIABLE}: {{aud: sigstore}}}}` "
                                  "(docs/gitlab.md), or sign with a key: sign: key")
        return Signing(keyless=True, oidc_token_env=OIDC_TOKEN_VARIABLE, options=inputs.sign_options)
    if inputs.sign == "key":
        passphrase = _variable(inputs.sign_passphrase_variable, "input sign-passphrase-variable")
        return Signing(key_file=key_file(inputs, environ, private_dir),
                       passphrase_env=passphrase if environ.get(passphrase) else "", options=inputs.sign_options)
    return None
