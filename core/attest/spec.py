"""buildx's attestation flags: `--sbom`, `--provenance` and `--attest type=sbom|provenance,...`, parsed into
AttestationSpec values (BuildOptions.attestations).

As buildx (util/buildflags/attests.go): `--sbom=true` is `--attest type=sbom`, `--sbom=false` disables it,
`--sbom=KEY=VALUE,...` is `--attest type=sbom,KEY=VALUE,...`; the same for --provenance. A later flag of a type
replaces an earlier one. Nothing is attested unless asked (see docs/supply-chain.md for why dockyard does not
follow buildx's default min provenance on push: a build without these flags writes what it always wrote)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

SBOM = "sbom"
PROVENANCE = "provenance"
TYPES = (SBOM, PROVENANCE)
# The attributes dockyard reads, per type. BuildKit's sbom `generator` names a scanner image to run; dockyard
# scans with its own cataloger and says so.
_KEYS = {SBOM: ("type", "disabled", "generator"),
         PROVENANCE: ("type", "disabled", "mode", "version", "builder-id")}
PROVENANCE_MODES = ("min", "max")
PROVENANCE_VERSIONS = ("v0.2", "v1")


@dataclass(frozen=True)
class AttestationSpec:
    """One attestation to write: its type (sbom or provenance) and its attributes (mode, version, builder-id,
    generator), as buildx passes them."""

    type: str
    attrs: tuple[tuple[str, str], ...] = ()

    def attr(self, key: str, default: str = "") -> str:
        return dict(self.attrs).get(key, default)

    @property
    def disabled(self) -> bool:
        return self.attr("disabled", "false").lower() == "true"

    @property
    def mode(self) -> str:
        """Provenance detail: min (no build args, no secrets' ids) or max."""
        return self.attr("mode", "min")

    @property
    def version(self) -> str:
        """The SLSA provenance version: v0.2 (BuildKit's default) or v1."""
        return self.attr("version", "v0.2")

    @property
    def builder_id(self) -> str:
        return self.attr("builder-id")

    @classmethod
    def parse(cls, text: str, flag: str = "--attest") -> AttestationSpec:
        """`type=provenance,mode=max,...`; UsageError naming the flag and the bad part."""
        try:
            fields = [f.strip() for f in next(csv.reader([text], strict=True)) if f.strip()]
        except (csv.Error, StopIteration):
            raise UsageError(f"invalid {flag} {text!r}: expected comma-separated key=value pairs") from None
        attrs: dict[str, str] = {}
        for item in fields:
            key, eq, value = item.partition("=")
            if not eq:
                raise UsageError(f"invalid {flag} {text!r}: {item!r} is not a key=value pair",
                                 hint="e.g. --attest type=provenance,mode=max or --attest type=sbom")
            attrs[key.strip().lower()] = value.strip()
        kind = attrs.get("type", "")
        if kind not in TYPES:
            raise UsageError(f"invalid {flag} {text!r}: type must be sbom or provenance",
                             hint="e.g. --attest type=sbom or --attest type=provenance,mode=max")
        unknown = sorted(set(attrs) - set(_KEYS[kind]))
        if unknown:
            raise UsageError(f"invalid {flag} {text!r}: {kind} attestations take no {unknown[0]!r}",
                             hint=f"their attributes are {', '.join(_KEYS[kind][1:])}")
        if "disabled" in attrs and attrs["disabled"].lower() not in ("true", "false"):
            raise UsageError(f"invalid {flag} {text!r}: disabled must be true or false")
        if kind == PROVENANCE:
            if attrs.get("mode", "min") not in PROVENANCE_MODES:
                raise UsageError(f"invalid {flag} {text!r}: mode must be min or max")
            if attrs.get("version", "v0.2") not in PROVENANCE_VERSIONS:
                raise UsageError(f"invalid {flag} {text!r}: version must be v0.2 or v1 (SLSA provenance)")
        del attrs["type"]
        return cls(kind, tuple(sorted(attrs.items())))


def shorthand(kind: str, value: str) -> AttestationSpec:
    """`--sbom VALUE` / `--provenance VALUE` as buildx reads them: a boolean, or attributes of that type."""
    lowered = value.strip().lower()
    if lowered in ("", "true", "1"):
        return AttestationSpec(kind)
    if lowered in ("false", "0"):
        return AttestationSpec(kind, (("disabled", "true"),))
    if "=" not in value:
        hint = "e.g. --provenance mode=max" if kind == PROVENANCE else "e.g. --sbom true"
        raise UsageError(f"invalid --{kind} {value!r}: expected true, false or key=value attributes", hint=hint)
    return AttestationSpec.parse(f"type={kind},{value}", f"--{kind}")


def parse_attestations(*, sbom: str | None = None, provenance: str | None = None,
                       attest: list[str] | tuple[str, ...] = ()) -> tuple[AttestationSpec, ...]:
    """The attestations asked for, one per type (the last flag of a type wins; --sbom/--provenance after the
    --attest's, as buildx appends them), disabled ones left out; sorted by type (sbom first, as BuildKit)."""
    chosen: dict[str, AttestationSpec] = {}
    for text in attest:
        spec = AttestationSpec.parse(text)
        chosen[spec.type] = spec
    for kind, value in ((SBOM, sbom), (PROVENANCE, provenance)):
        if value is not None:
            chosen[kind] = shorthand(kind, value)
    return tuple(chosen[k] for k in TYPES if k in chosen and not chosen[k].disabled)


def find(specs: tuple[AttestationSpec, ...], kind: str) -> AttestationSpec | None:
    return next((s for s in specs if s.type == kind), None)


# --sbom-output FORMAT=FILE (attest/sbom_files.py writes them).
SBOM_FILE_FORMATS = ("spdx-json", "cyclonedx-json")


@dataclass(frozen=True)
class SbomOutput:
    """One --sbom-output: the document format and the file."""

    format: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> SbomOutput:
        fmt, eq, path = text.partition("=")
        fmt = {"spdx": "spdx-json", "cyclonedx": "cyclonedx-json"}.get(fmt.strip(), fmt.strip())
        if not eq or not path.strip() or fmt not in SBOM_FILE_FORMATS:
            raise UsageError(f"invalid --sbom-output {text!r}: expected FORMAT=FILE with FORMAT spdx-json or "
                             "cyclonedx-json", hint="e.g. --sbom-output cyclonedx-json=sbom.cdx.json")
        return cls(fmt, Path(path.strip()))

    def path_for(self, platform: str, several: bool) -> Path:
        tag = platform.replace("/", "-")
        text = str(self.path)
        if "{platform}" in text:
            return Path(text.replace("{platform}", tag))
        if not several:
            return self.path
        name = self.path.name
        stem, dot, extension = name.partition(".")
        return self.path.with_name(f"{stem}.{tag}{dot}{extension}" if dot else f"{name}.{tag}")
