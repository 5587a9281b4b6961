"""`--sign key=PATH[,passphrase-env=VAR|passphrase-file=FILE]` and `--sign keyless[,ATTR=VALUE...]`: what to
sign with, parsed once from the command line (or given by the Python API) and carried in BuildOptions."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

KEY = "key"
KEYLESS = "keyless"
_KEY_ATTRIBUTES = ("key", "passphrase-env", "passphrase-file")


@dataclass(frozen=True)
class SigningSpec:
    """How the pushed image is signed. `kind` is "key" (a private key file, maybe encrypted, and where its
    passphrase is) or "keyless" (a Fulcio certificate for the CI's OIDC identity: its attributes are in
    `options`, for the keyless signer to read)."""

    kind: str
    key: str | None = None
    passphrase_env: str | None = None
    passphrase_file: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SigningSpec:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise UsageError("--sign needs a value: key=PATH or keyless",
                             hint="e.g. --sign key=cosign.key,passphrase-env=COSIGN_PASSWORD")
        if parts[0] == KEYLESS:
            options = []
            for part in parts[1:]:
                name, eq, value = part.partition("=")
                if not eq or not name:
                    raise UsageError(f"invalid --sign {text!r}: {part!r} is not ATTRIBUTE=VALUE",
                                     hint="e.g. --sign keyless,oidc-token-env=SIGSTORE_ID_TOKEN")
                options.append((name, value))
            return cls(KEYLESS, options=tuple(options))
        attributes: dict[str, str] = {}
        for part in parts:
            name, eq, value = part.partition("=")
            if not eq or name not in _KEY_ATTRIBUTES:
                raise UsageError(f"invalid --sign {text!r}: unknown attribute {part!r}",
                                 hint="use --sign key=PATH[,passphrase-env=VAR|passphrase-file=FILE] "
                                      "or --sign keyless")
            if not value:
                raise UsageError(f"invalid --sign {text!r}: {name}= needs a value")
            attributes[name] = value
        if "key" not in attributes:
            raise UsageError(f"invalid --sign {text!r}: no key=PATH",
                             hint="name the private key file: --sign key=cosign.key")
        if "passphrase-env" in attributes and "passphrase-file" in attributes:
            raise UsageError(f"invalid --sign {text!r}: give passphrase-env or passphrase-file, not both")
        return cls(KEY, key=attributes["key"], passphrase_env=attributes.get("passphrase-env"),
                   passphrase_file=attributes.get("passphrase-file"))

    def __str__(self) -> str:
        if self.kind == KEYLESS:
            return ",".join([KEYLESS] + [f"{k}={v}" for k, v in self.options])
        text = f"key={self.key}"
        if self.passphrase_env:
            text += f",passphrase-env={self.passphrase_env}"
        if self.passphrase_file:
            text += f",passphrase-file={self.passphrase_file}"
        return text
