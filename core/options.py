"""BuildOptions: the one structure every entry point (CLI, Python API, CI adapters) fills."""

from __future__ import annotations

import csv
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError
from .format_file import parse_format_file

if TYPE_CHECKING:
    from .attest.spec import SbomOutput
    from .attest.spec import AttestationSpec
    from .named_contexts import NamedContext
    from .scan.settings import ScanSettings
    from .signing.spec import SigningSpec


# The --output attributes dockyard reads (buildx's names); the rest are accepted and ignored as before.
_BOOLEAN_OUTPUT_ATTRS = ("push", "push-by-digest", "oci-mediatypes")


@dataclass(frozen=True)
class OutputSpec:
    """One `--output`: type=registry (push the tags, or the `name=`s), type=oci,dest=DIR, or
    type=docker,dest=FILE.tar (type=image,push=true is type=registry, as in buildx)."""

    type: str
    dest: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> OutputSpec:
        attrs: dict[str, str] = {}
        for part in _csv_fields(text, "--output") if '"' in text else text.split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            if not eq:
                # buildx accepts a bare path as shorthand for type=local; we only have files and dirs with a type.
                raise UsageError(f"invalid --output {text!r}: expected key=value pairs such as type=oci,dest=DIR")
            attrs[key.strip().lower()] = value.strip()
        kind = attrs.pop("type", None)
        for key in _BOOLEAN_OUTPUT_ATTRS:
            if key in attrs and attrs[key].lower() not in ("true", "false"):
                raise UsageError(f"invalid --output {text!r}: {key} must be true or false")
        if kind == "image" and attrs.get("push", "false").lower() == "true":
            kind = "registry"
        if kind == "image":
            raise UsageError(f"invalid --output {text!r}: type=image without push=true keeps the image in a "
                             "builder's image store, which dockyard does not have",
                             hint="add push=true, or use --output type=oci,dest=DIR")
        if kind not in ("registry", "oci", "docker"):
            raise UsageError(f"invalid --output {text!r}: type must be registry, oci or docker",
                             hint="e.g. --output type=oci,dest=out/ or --output type=docker,dest=image.tar")
        dest = attrs.pop("dest", None)
        if kind in ("oci", "docker") and not dest:
            raise UsageError(f"invalid --output {text!r}: type={kind} needs dest=PATH")
        if kind == "registry":
            from .image.reference import parse_reference

            for name in cls._names(attrs.get("name", "")):
                try:
                    parse_reference(name)
                except UsageError as exc:
                    raise UsageError(f"invalid --output {text!r}: name {name!r}: {exc.message}") from None
        return cls(kind, dest, tuple(sorted(attrs.items())))

    @staticmethod
    def _names(text: str) -> tuple[str, ...]:
        return tuple(n.strip() for n in text.split(",") if n.strip())

    def attr(self, key: str, default: str = "") -> str:
        return dict(self.attrs).get(key, default)

    def flag(self, key: str, default: bool = False) -> bool:
        value = dict(self.attrs).get(key)
        return default if value is None else value.lower() == "true"

    @property
    def names(self) -> tuple[str, ...]:
        """The references of `name=` (comma-separated, as buildx takes them)."""
        return self._names(self.attr("name"))

    @property
    def oci_media_types(self) -> bool:
        """buildx's oci-mediatypes: OCI manifests and index (the default), or Docker's (false)."""
        return self.flag("oci-mediatypes", True)

    @property
    def push_by_digest(self) -> bool:
        """buildx's push-by-digest=true: the manifests (or index) are pushed without a tag."""
        return self.flag("push-by-digest")


# The formats findings are written in (diagnostics/render.py), and the levels --fail-on takes.
REPORT_FORMATS = ("text", "json", "sarif", "github", "gitlab", "jenkins")
FAIL_ON_LEVELS = ("error", "warning", "info", "none")


@dataclass(frozen=True)
class ReportSpec:
    """A `--report FORMAT=FILE`: which report format to write, and where."""

    format: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> ReportSpec:
        return cls(*parse_format_file(text, "--report", REPORT_FORMATS,
                                      "--report sarif=dockyard.sarif --report gitlab=gl-code-quality.json"))


# kaniko's --cache-repo names a repository; the cache manifest goes under this tag in it.
CACHE_REPO_TAG = "cache"
# The keys each cache type takes, as BuildKit names them (`from`: --cache-from, `to`: --cache-to).
_CACHE_KEYS = {
    ("registry", "--cache-from"): ("type", "ref"),
    ("registry", "--cache-to"): ("type", "ref", "mode", "ignore-error"),
    # oci-mediatypes / image-manifest choose between BuildKit's two layouts of its own cache; dockyard's local
    # cache is always an OCI image manifest in an OCI layout, so they are accepted and change nothing.
    ("local", "--cache-from"): ("type", "src", "tag", "digest", "oci-mediatypes", "image-manifest"),
    ("local", "--cache-to"): ("type", "dest", "tag", "mode", "ignore-error", "oci-mediatypes", "image-manifest"),
    ("gha", "--cache-from"): ("type", "scope", "url", "url_v2", "token", "version"),
    ("gha", "--cache-to"): ("type", "scope", "url", "url_v2", "token", "version", "mode", "ignore-error"),
}
CACHE_TYPES = ("registry", "local", "gha")
_CACHE_EXAMPLES = {"registry": "type=registry,ref=registry.example.com/app:cache",
                   "local": "type=local,dest=.dockyard-cache,mode=max",
                   "gha": "type=gha,scope=app,mode=max"}


@dataclass(frozen=True)
class RegistryCache:
    """One `--cache-from` / `--cache-to`: by `kind`, the cache manifest at registry `ref` (type=registry), an
    OCI layout directory `path` under `tag` (type=local: src= or dest=), or the GitHub Actions cache service
    under `scope` (type=gha; `url`/`url_v2`/`token`/`version` default to the runner's ACTIONS_* variables). For
    an export, `mode` is min (the final image's steps) or max (every stage's), and `ignore_error` turns a
    failed export into a warning (BuildKit's ignore-error=true)."""

    ref: str
    mode: str = "min"
    ignore_error: bool = False
    kind: str = "registry"
    path: str = ""  # type=local: the directory
    tag: str = ""  # type=local: the index.json ref name (BuildKit's default: latest)
    digest: str = ""  # type=local --cache-from: a manifest digest instead of the tag
    scope: str = ""  # type=gha: the cache's name within the repository's cache
    url: str = ""  # type=gha: the cache service (v1 REST API); default $ACTIONS_CACHE_URL
    url_v2: str = ""  # type=gha: the results service (v2 API); default $ACTIONS_RESULTS_URL
    token: str = field(default="", repr=False)  # type=gha: default $ACTIONS_RUNTIME_TOKEN; never printed
    version: str = ""  # type=gha: "1" or "2"; default from $ACTIONS_CACHE_SERVICE_V2

    @property
    def target(self) -> str:
        """The cache as messages name it."""
        if self.kind == "local":
            return f"the local cache {self.path}" + (f" ({self.tag})" if self.tag and self.tag != "latest" else "")
        if self.kind == "gha":
            return f"the GitHub Actions cache (scope {self.scope})"
        return self.ref

    @classmethod
    def parse(cls, text: str, flag: str) -> RegistryCache:
        if "=" not in text and flag == "--cache-from":
            return cls(cls._checked_ref(text.strip(), text, flag))  # buildx: a bare reference is a registry cache
        values: dict[str, str] = {}
        fields = _csv_fields(text, flag)
        for item in fields:
            key, _eq, value = item.partition("=")
            values[key.strip().lower()] = value.strip()
        kind = values.get("type", "registry")
        if kind not in CACHE_TYPES:
            raise UsageError(f"invalid {flag} {text!r}: type={kind} is not supported; dockyard caches in a "
                             "registry (type=registry), a directory (type=local) or the GitHub Actions cache "
                             "(type=gha)", hint=f"e.g. {flag} {_CACHE_EXAMPLES['registry']}")
        allowed = _CACHE_KEYS[(kind, flag)]
        unexpected = [item for item in fields
                      if "=" not in item or item.partition("=")[0].strip().lower() not in allowed]
        if unexpected:
            raise UsageError(f"invalid {flag} {text!r}: unexpected {unexpected[0]!r}",
                             hint=f"the keys of type={kind} are {', '.join(allowed)}, e.g. "
                                  f"{flag} {_CACHE_EXAMPLES[kind]}")
        mode = values.get("mode", "min")
        if mode not in ("min", "max"):
            raise UsageError(f"invalid {flag} {text!r}: mode must be min or max")
        ignore = values.get("ignore-error", "false").lower()
        if ignore not in ("true", "false"):
            raise UsageError(f"invalid {flag} {text!r}: ignore-error must be true or false")
        if kind == "local":
            return cls._parse_local(text, flag, values, mode, ignore == "true")
        if kind == "gha":
            return cls._parse_gha(text, flag, values, mode, ignore == "true")
        if not values.get("ref"):
            raise UsageError(f"invalid {flag} {text!r}: type=registry needs ref=REGISTRY/REPOSITORY:TAG")
        return cls(cls._checked_ref(values["ref"], text, flag), mode, ignore == "true")

    @classmethod
    def _parse_local(cls, text: str, flag: str, values: dict[str, str], mode: str, ignore: bool) -> RegistryCache:
        key = "src" if flag == "--cache-from" else "dest"
        if not values.get(key):
            raise UsageError(f"invalid {flag} {text!r}: type=local needs {key}=DIRECTORY",
                             hint=f"e.g. {flag} type=local,{key}=.dockyard-cache")
        tag = values.get("tag") or "latest"
        if any(c.isspace() or c in "/@" for c in tag):
            raise UsageError(f"invalid {flag} {text!r}: tag={tag!r} is not a valid tag")
        digest = values.get("digest", "")
        if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise UsageError(f"invalid {flag} {text!r}: digest must be sha256: and 64 hex digits")
        path = values[key]
        return cls(ref="", mode=mode, ignore_error=ignore, kind="local", path=path, tag=tag, digest=digest)

    @classmethod
    def _parse_gha(cls, text: str, flag: str, values: dict[str, str], mode: str, ignore: bool) -> RegistryCache:
        version = values.get("version", "")
        if version not in ("", "1", "2"):
            raise UsageError(f"invalid {flag} {text!r}: version must be 1 or 2 (the cache service API)")
        scope = values.get("scope") or "buildkit"
        if any(c.isspace() or c in ",#" for c in scope):
            raise UsageError(f"invalid {flag} {text!r}: scope={scope!r} may not contain spaces, ',' or '#'")
        return cls(ref="", mode=mode, ignore_error=ignore, kind="gha", scope=scope, url=values.get("url", ""),
                   url_v2=values.get("url_v2", ""), token=values.get("token", ""), version=version)

    @classmethod
    def from_cache_repo(cls, text: str) -> RegistryCache:
        """kaniko's `--cache-repo REG/REPO`: the cache at REG/REPO:cache, every stage's steps (kaniko caches
        the layers of every stage it builds)."""
        if "@" in text or ":" in text.strip().rsplit("/", 1)[-1]:
            raise UsageError(f"invalid --cache-repo {text!r}: it takes a repository without tag or digest",
                             hint=f"the cache is stored under the tag {CACHE_REPO_TAG!r}, e.g. "
                                  "--cache-repo registry.example.com/app/cache")
        return cls(cls._checked_ref(f"{text.strip()}:{CACHE_REPO_TAG}", text, "--cache-repo"), mode="max")

    @staticmethod
    def _checked_ref(ref: str, text: str, flag: str) -> str:
        from .image.reference import parse_reference

        try:
            parsed = parse_reference(ref)
        except UsageError as exc:
            raise UsageError(f"invalid {flag} {text!r}: {exc.message}") from None
        if flag != "--cache-from" and parsed.digest:
            raise UsageError(f"invalid {flag} {text!r}: a cache is written under a tag, not a digest")
        return str(parsed)


# The reproducible-builds.org variable BuildKit and buildah read (an environment variable or a build arg).
EPOCH_ARG = "SOURCE_DATE_EPOCH"

# BuildKit refuses bigger secrets (session/secrets/secretsprovider MaxSecretSize).
MAX_SECRET_SIZE = 500 * 1024


def _csv_fields(text: str, what: str) -> list[str]:
    try:
        return [f.strip() for f in next(csv.reader([text], strict=True)) if f.strip()]
    except (csv.Error, StopIteration):
        raise UsageError(f"invalid {what} {text!r}: expected comma-separated key=value pairs") from None


@dataclass(frozen=True)
class SecretSource:
    """One `--secret`: the value of secret `id` comes from a file or from an environment variable.

    buildx's rules: `src`/`source` is a file, `env` a variable, `type=env` turns `src` into a variable name;
    with neither, a variable named ID is used if it is set, else a file named ID."""

    id: str
    file: Path | None = None
    env: str | None = None

    @classmethod
    def parse(cls, text: str, environ: dict[str, str]) -> SecretSource:
        values: dict[str, str] = {}
        for item in _csv_fields(text, "--secret"):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq:
                raise UsageError(f"invalid --secret {text!r}: {item!r} must be a key=value pair",
                                 hint="e.g. --secret id=token,src=token.txt or --secret id=token,env=TOKEN")
            if key not in ("id", "src", "source", "env", "type"):
                raise UsageError(f"invalid --secret {text!r}: unexpected key {key!r}",
                                 hint="the keys are id, src (or source), env and type")
            values["src" if key == "source" else key] = value
        kind = values.get("type")
        if kind not in (None, "file", "env"):
            raise UsageError(f"invalid --secret {text!r}: type must be file or env")
        secret_id, src, env = values.get("id", ""), values.get("src"), values.get("env")
        if not secret_id:
            raise UsageError(f"invalid --secret {text!r}: it needs id=ID", hint="e.g. --secret id=token,src=token.txt")
        if kind == "env" and not env:
            env, src = src, None
        if not src and not env:
            env, src = (secret_id, None) if secret_id in environ else (None, secret_id)
        if env:
            if env not in environ:
                raise UsageError(f"--secret id={secret_id}: the environment variable {env} is not set",
                                 hint=f"export {env} before the build, or give the secret as src=FILE")
            return cls(secret_id, env=env)
        return cls(secret_id, file=cls._checked_file(secret_id, src or ""))

    @staticmethod
    def _checked_file(secret_id: str, src: str) -> Path:
        path = Path(src)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UsageError(f"--secret id={secret_id}: cannot read {src}: {exc.strerror}",
                             hint="src is a file path, relative to the current directory") from None
        if not path.is_file():
            raise UsageError(f"--secret id={secret_id}: {src} is not a regular file")
        if size > MAX_SECRET_SIZE:
            raise UsageError(f"--secret id={secret_id}: {src} is larger than 500 KiB, the limit for secrets")
        return path

    def read(self, environ: dict[str, str]) -> bytes:
        """The secret's value, read when a step needs it (never kept in BuildOptions)."""
        if self.env is not None:
            return environ.get(self.env, "").encode("utf-8", "surrogateescape")
        assert self.file is not None
        try:
            return self.file.read_bytes()
        except OSError as exc:
            raise UsageError(f"--secret id={self.id}: cannot read {self.file}: {exc.strerror}") from None


@dataclass(frozen=True)
class SshSource:
    """One `--ssh ID[=SOCKET]`: the ssh-agent socket RUN --mount=type=ssh,id=ID forwards (default
    $SSH_AUTH_SOCK). Key files, which buildx can load into an agent of its own, are not supported."""

    id: str
    socket: str

    @classmethod
    def parse(cls, text: str, environ: dict[str, str]) -> SshSource:
        ssh_id, eq, paths = text.partition("=")
        ssh_id = ssh_id.strip()
        if not ssh_id:
            raise UsageError(f"invalid --ssh {text!r}: expected ID[=SOCKET], e.g. --ssh default")
        if "," in paths:
            raise UsageError(f"invalid --ssh {text!r}: only one agent socket per id is supported")
        socket = paths.strip() if eq else environ.get("SSH_AUTH_SOCK", "")
        if not socket:
            raise UsageError(f"--ssh {ssh_id}: SSH_AUTH_SOCK is not set and no socket was given",
                             hint="start an agent (eval $(ssh-agent); ssh-add) or give "
                                  f"--ssh {ssh_id}=/path/to/agent.sock")
        try:
            is_socket = stat.S_ISSOCK(os.stat(socket).st_mode)
        except OSError as exc:
            raise UsageError(f"--ssh {ssh_id}: cannot use {socket}: {exc.strerror}") from None
        if not is_socket:
            raise UsageError(f"--ssh {ssh_id}: {socket} is not an ssh-agent socket",
                             hint="key files are not supported: load the key into an agent with ssh-add and "
                                  "pass the agent's socket")
        return cls(ssh_id, socket)


def parse_registry_ca(text: str) -> tuple[str, str]:
    """`--registry-ca HOST=FILE` (kaniko's --registry-certificate): a CA to trust for one registry."""
    host, eq, path = text.partition("=")
    if not eq or not host.strip() or not path.strip():
        raise UsageError(f"invalid --registry-ca {text!r}: expected HOST=FILE",
                         hint="e.g. --registry-ca registry.example.com:5000=/etc/ssl/private-ca.crt")
    _check_readable(path.strip(), f"--registry-ca {host.strip()}")
    return host.strip(), path.strip()


def parse_registry_client_cert(text: str) -> tuple[str, str, str]:
    """`--registry-client-cert HOST=CERT,KEY`: the certificate (mutual TLS) to present to one registry."""
    host, eq, files = text.partition("=")
    cert, comma, key = files.partition(",")
    if not eq or not host.strip() or not comma or not cert.strip() or not key.strip():
        raise UsageError(f"invalid --registry-client-cert {text!r}: expected HOST=CERT,KEY",
                         hint="e.g. --registry-client-cert registry.example.com=client.cert,client.key")
    for path in (cert.strip(), key.strip()):
        _check_readable(path, f"--registry-client-cert {host.strip()}")
    return host.strip(), cert.strip(), key.strip()


def _check_readable(path: str, what: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None


def parse_source_date_epoch(text: str, source: str) -> int:
    """A SOURCE_DATE_EPOCH value: whole seconds since 1970-01-01 UTC (BuildKit's rule; a negative time is
    refused rather than written into an image)."""
    if not text.strip().isdigit():
        raise UsageError(f"invalid SOURCE_DATE_EPOCH {text!r} (from {source}): expected whole seconds since "
                         "1970-01-01 UTC", hint="e.g. SOURCE_DATE_EPOCH=$(git log -1 --pretty=%ct)")
    return int(text)


# zlib's and zstd's level ranges; the gzip level is mapped onto ISA-L's 0..3 by image/compression.py.
COMPRESSION_LEVELS = {"gzip": range(0, 10), "zstd": range(1, 23)}


def check_compression(kind: str, level: int | None) -> None:
    """--compression and --compression-level together: the kind exists and the level is in its range."""
    if kind not in ("gzip", "zstd", "uncompressed"):
        raise UsageError(f"invalid --compression {kind!r}: use gzip, zstd or uncompressed")
    if level is None:
        return
    levels = COMPRESSION_LEVELS.get(kind)
    if levels is None:
        raise UsageError("--compression-level needs --compression gzip or zstd: uncompressed layers have no level")
    if level not in levels:
        raise UsageError(f"invalid --compression-level {level} for {kind}: use {levels.start} to {levels.stop - 1}")


def parse_retry_count(text: str) -> int:
    """`--push-retry N` / `--image-download-retry N`: how many times to retry after the first attempt."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise UsageError(f"invalid retry count {text!r}: expected a whole number, 0 or more")
    return count


DEFAULT_PLATFORM = "linux/amd64"
# containerd's rule for each part of a platform specifier.
_PLATFORM_PART = re.compile(r"[A-Za-z0-9_.-]+")
# containerd's normalization, for telling duplicates apart: aliases of one architecture and the variant it implies.
_ARCH_ALIASES = {"x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "aarch64": ("arm64", ""),
                 "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "i386": ("386", ""), "i686": ("386", "")}
_DEFAULT_VARIANTS = {("arm64", "v8"): "", ("arm64", "8"): "", ("arm", ""): "v7", ("arm", "7"): "v7",
                     ("arm", "6"): "v6", ("arm", "5"): "v5"}


def parse_platforms(items: list[str] | tuple[str, ...], what: str = "--platform") -> tuple[str, ...]:
    """`--platform a,b` and repeated flags, as buildx takes them: a comma list each, in order; a platform given
    twice (also spelled differently: linux/arm64 and linux/arm64/v8) is built once, where it first appears.
    Empty items are skipped; none at all is the default platform. A malformed one is a usage error naming it."""
    chosen: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for item in items:
        for text in item.split(","):
            text = text.strip()
            if not text:
                continue
            parts = text.lower().split("/")
            if len(parts) not in (2, 3) or not all(_PLATFORM_PART.fullmatch(part) for part in parts):
                raise UsageError(f"invalid {what} {text!r}: expected OS/ARCH[/VARIANT]",
                                 hint="e.g. linux/amd64, linux/arm64 or linux/arm/v7; several are separated "
                                      "by commas: linux/amd64,linux/arm64")
            if text not in chosen and _platform_identity(parts) not in seen:
                chosen.append(text)
                seen.add(_platform_identity(parts))
    return tuple(chosen) or (DEFAULT_PLATFORM,)


def _platform_identity(parts: list[str]) -> tuple[str, str, str]:
    """What tells two platform specifiers apart once containerd normalizes them."""
    os_name, arch = parts[0], parts[1]
    arch, variant = _ARCH_ALIASES.get(arch, (arch, parts[2] if len(parts) == 3 else ""))
    if len(parts) == 3 and parts[1] not in ("armhf", "armel"):
        variant = parts[2]
    return os_name, arch, _DEFAULT_VARIANTS.get((arch, variant), variant)


@dataclass(frozen=True)
class BuildOptions:
    """Everything a build is asked to do: `dockyard build`'s flags (or kaniko's, through kaniko/options.py), parsed."""

    context: Path
    dockerfile: Path | None = None  # default CONTEXT/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    # --annotation: Annotation values (parse_annotations), or (KEY, VALUE) pairs for the image manifests
    annotations: tuple[Annotation | tuple[str, str], ...] = ()
    # --platform: the platforms to build, in order (one: a plain image; several: an image index).
    platforms: tuple[str, ...] = (DEFAULT_PLATFORM,)
    push: bool = False
    outputs: tuple[OutputSpec, ...] = ()
    digest_file: Path | None = None
    metadata_file: Path | None = None
    insecure_registries: tuple[str, ...] = ()  # plain HTTP allowed and certificates not verified
    skip_tls_verify_registries: tuple[str, ...] = ()  # HTTPS, certificates not verified
    registry_cas: tuple[tuple[str, str], ...] = ()  # (host, CA file)
    registry_client_certs: tuple[tuple[str, str, str], ...] = ()  # (host, certificate file, key file)
    registry_mirrors: tuple[str, ...] = ()  # pull-through mirrors for docker.io
    registry_maps: tuple[str, ...] = ()  # FROM=TO[;TO...]
    skip_default_registry_fallback: bool = False
    push_retry: int | None = None  # retries after the first attempt (None: the client's default)
    image_download_retry: int | None = None
    compression: str = "gzip"
    compression_level: int | None = None
    # kaniko's --reproducible: timestamps pinned to SOURCE_DATE_EPOCH, or to 0 when it is not set.
    reproducible: bool = False
    # Scratch space for unpacked layers and step directories; removed after the build.
    work_dir: Path | None = None
    # Where pulled and built blobs are kept between builds (default CACHE_ROOT/store).
    blob_dir: Path | None = None
    # --cache-dir: the root of the local cache (unpacked layers, step cache, blobs); default ~/.cache/dockyard.
    cache_dir: Path | None = None
    isolation: str = "auto"  # --isolation auto|namespaces|proot (isolation/detect.py)
    no_cache: bool = False  # --no-cache: look nothing up (results are still recorded for later builds)
    cache_ttl: float | None = None  # --cache-ttl, seconds: older step cache entries are misses
    cache_from: tuple[RegistryCache, ...] = ()  # external caches to take steps from (after the local cache)
    cache_to: tuple[RegistryCache, ...] = ()  # external caches to write this build's steps to
    max_parallel_transfers: int = 4
    # --jobs: how many independent stages run at the same time (None: stage/schedule.py's default_jobs()).
    jobs: int | None = None
    secrets: tuple[SecretSource, ...] = ()  # --secret, for RUN --mount=type=secret
    ssh: tuple[SshSource, ...] = ()  # --ssh, for RUN --mount=type=ssh
    # --build-context NAME=VALUE: named contexts FROM, COPY --from and RUN --mount from= resolve to.
    build_contexts: tuple[NamedContext, ...] = ()
    # Where RUN --mount=type=cache directories persist between builds (default CACHE_ROOT/mounts).
    cache_mount_dir: Path | None = None
    # --check: run the Dockerfile checks first and stop before building when one is at or above `fail_on`
    # (error, warning, info or none); --report FORMAT=FILE: findings written there, a failed build's included.
    check: bool = False
    fail_on: str = "error"
    reports: tuple[ReportSpec, ...] = ()
    # --sign key=PATH[,passphrase-env=VAR|passphrase-file=FILE] | keyless[,...]: sign what is pushed.
    signing: SigningSpec | None = None
    # --sbom, --provenance, --attest: the attestations written into the image index (attest/spec.py).
    attestations: tuple[AttestationSpec, ...] = ()
    # --sbom-output FORMAT=FILE: the image's SBOM also written to files (attest/sbom_files.py).
    sbom_outputs: tuple[SbomOutput, ...] = ()
    # --scan (and --fail-on-vuln, --ignore-unfixed, --vuln-ignore-file, --vuln-db, --vuln-db-url, --scan-report):
    # the image's vulnerability scan, before anything is pushed (scan/build.py); None: no scan.
    scan: ScanSettings | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ), compare=False, repr=False)

    @property
    def dockerfile_path(self) -> Path:
        return self.dockerfile if self.dockerfile is not None else self.context / "Dockerfile"

    @property
    def cache_root(self) -> Path:
        return self.cache_dir or default_cache_root(self.environ)

    @property
    def work_parent(self) -> Path:
        """Where a build makes its scratch directory (--work-dir, DOCKYARD_WORK_DIR, else /var/tmp)."""
        return self.work_dir or Path(self.environ.get("DOCKYARD_WORK_DIR") or "/var/tmp")

    @property
    def blob_root(self) -> Path:
        return self.blob_dir or self.cache_root / "store"

    @property
    def cache_mounts_root(self) -> Path:
        return self.cache_mount_dir or self.cache_root / "mounts"

    @property
    def wants_push(self) -> bool:
        return self.push or any(o.type == "registry" for o in self.outputs)

    @property
    def push_targets(self) -> tuple[str, ...]:
        """Where a push goes: the --tag's (buildx names every image output after them), else the `name=`s of
        the type=registry outputs."""
        if self.tags or not self.wants_push:
            return tuple(self.tags) if self.wants_push else ()
        names: list[str] = []
        for output in self.outputs:
            if output.type == "registry":
                names.extend(n for n in output.names if n not in names)
        return tuple(names)

    @property
    def source_date_epoch(self) -> int | None:
        """The time a reproducible build pins its timestamps to: a --build-arg SOURCE_DATE_EPOCH, else the
        environment's (buildx passes it on as that build arg), else 0 with --reproducible; None: the clock.
        An empty value counts as unset, as in BuildKit."""
        for value, source in ((dict(self.build_args).get(EPOCH_ARG), f"--build-arg {EPOCH_ARG}"),
                              (self.environ.get(EPOCH_ARG), "the environment")):
            if value:
                return parse_source_date_epoch(value, source)
        return 0 if self.reproducible else None


def parse_key_values(items: list[str] | tuple[str, ...], what: str,
                     environ: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """`K=V` pairs from the command line. With `environ`, a bare `K` takes its value from it (docker's
    --build-arg rule); a bare K absent from the environment is dropped, as docker does."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: expected KEY=VALUE")
        if not eq:
            if environ is None:
                raise UsageError(f"invalid {what} {item!r}: expected KEY=VALUE")
            if key not in environ:
                continue
            value = environ[key]
        pairs.append((key, value))
    return tuple(pairs)


# The levels of buildx's --annotation TYPE:KEY=VALUE: where in the output an annotation goes.
ANNOTATION_LEVELS = ("manifest", "index", "manifest-descriptor", "index-descriptor")


@dataclass(frozen=True)
class Annotation:
    """One `--annotation`: KEY=VALUE on the image manifests (`manifest`, the default), the image index
    (`index`), the index's entries for the manifests (`manifest-descriptor`) or the descriptor pointing at
    the index in an OCI layout (`index-descriptor`); `platform` limits a manifest-level one to that platform's
    image. A plain (KEY, VALUE) pair given through the Python API is a manifest annotation."""

    key: str
    value: str
    level: str = "manifest"
    platform: str | None = None


def annotation_specs(items: tuple[Annotation | tuple[str, str], ...]) -> tuple[Annotation, ...]:
    """BuildOptions.annotations as Annotation values (the API also takes plain (KEY, VALUE) pairs)."""
    return tuple(item if isinstance(item, Annotation) else Annotation(*item) for item in items)


def parse_annotations(items: list[str] | tuple[str, ...]) -> tuple[Annotation, ...]:
    """`--annotation [TYPE[,TYPE...]:]KEY=VALUE` as buildx takes it: TYPE is manifest (the default), index,
    manifest-descriptor or index-descriptor, optionally with a platform in brackets (`manifest[linux/arm64]`);
    the type ends at the first `:` and the key at the first `=`, so the value keeps its own."""
    import re

    from .image.model import Platform

    typed = re.compile(r"^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$")
    annotations: dict[tuple[str, str, str | None], Annotation] = {}
    for item in items:
        if not item:
            continue
        key, eq, value = item.partition("=")
        levels, colon, name = key.partition(":")
        if not colon:
            levels, name = "manifest", key
        if not eq or not name:
            raise UsageError(f"invalid --annotation {item!r}: expected [TYPE:]KEY=VALUE",
                             hint="e.g. --annotation org.opencontainers.image.description=My app or "
                                  "--annotation index:org.opencontainers.image.vendor=acme")
        for level_text in levels.split(","):
            match = typed.match(level_text)
            if match is None or match.group(1) not in ANNOTATION_LEVELS:
                raise UsageError(f"invalid --annotation {item!r}: unknown annotation type {level_text!r}",
                                 hint=f"the types are {', '.join(ANNOTATION_LEVELS)}, optionally with a "
                                      "platform: manifest[linux/arm64]:KEY=VALUE")
            level, platform = match.group(1), match.group(2)
            if platform is not None:
                if level in ("index", "index-descriptor"):
                    raise UsageError(f"invalid --annotation {item!r}: an {level} annotation applies to the one "
                                     "index and takes no platform",
                                     hint=f"write it as {level}:{name}={value}")
                try:
                    platform = str(Platform.parse(platform))
                except ValueError as exc:
                    raise UsageError(f"invalid --annotation {item!r}: {exc}") from None
            annotations[(level, name, platform)] = Annotation(name, value, level, platform)
    return tuple(annotations.values())


def go_duration(text: str, scale: dict[str, float]) -> float | None:
    """Go's duration syntax (`90s`, `1h30m`, `500ms`) with the units in `scale` (unit -> its value in the
    caller's measure); None when `text` is not such a duration."""
    import re

    units = "|".join(sorted(scale, key=len, reverse=True))  # `ms` before `m` and `s`
    parts = re.findall(rf"(\d+(?:\.\d+)?)({units})", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * scale[u] for n, u in parts)


_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, what: str) -> float:
    """A duration as kaniko's --cache-ttl takes it (Go syntax: `6h`, `1h30m`, `90s`), plus `d` and `w` days
    and weeks, which cache pruning wants."""
    seconds = go_duration(text.strip(), _DURATION_SECONDS)
    if seconds is None:
        raise UsageError(f"invalid {what} {text!r}: expected a duration such as 90s, 6h, 1h30m or 7d")
    return seconds


def default_cache_root(environ: dict[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or "/root", ".cache")
    return Path(base) / "dockyard"
