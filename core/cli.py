"""`dockyard` on the command line: docker-compatible option names mapped onto BuildOptions.

Heavy modules are imported only once a command runs, so `dockyard --version` and `--help` stay instant.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import EXIT_CODES, DockyardError, IsolationError, UsageError
from .version import __version__

# typing.TYPE_CHECKING without importing typing, which `dockyard --version` would pay for (type checkers know it).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, TextIO

    from .named_contexts import NamedContext
    from .options import BuildOptions
    from .signing.spec import SigningSpec

BUILD_EXAMPLES = """\
examples:
  dockyard build -t registry.example.com/team/app:1.0 --push .
  dockyard build -f docker/Dockerfile --build-arg VERSION=1.2 --target runtime -t app:dev \\
      --output type=oci,dest=out/app .
  dockyard build -t app:1 --output type=docker,dest=app.tar .     # then: docker load -i app.tar
  dockyard build -q --digest-file digest.txt -t localhost:5000/app:ci --push .
  SOURCE_DATE_EPOCH=$(git log -1 --pretty=%ct) dockyard build -t app:1 --output type=oci,dest=out .
      # reproducible: the same digest on every machine (or --reproducible: timestamps at 0)
  dockyard build --secret id=npmrc,src=$HOME/.npmrc --secret id=token,env=API_TOKEN --ssh default -t app:1 .
      # RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci
      # RUN --mount=type=ssh git clone git@github.com:org/private.git
  dockyard build --registry-ca registry.corp:5000=corp-ca.crt --registry-mirror mirror.corp -t registry.corp:5000/app .
      # CAs also come from /etc/docker/certs.d/HOST[:PORT]/*.crt, client certificates from client.cert/.key there
  dockyard build --build-context shared=../libs --build-context alpine=docker-image://alpine@sha256:... .
      # COPY --from=shared ... reads ../libs; FROM alpine is that image (oci-layout://DIR and git URLs too)

exit codes:
""" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors become our UsageError (exit 2, no traceback)
        raise UsageError(message, hint=f"see `{self.prog} --help`")


if TYPE_CHECKING:
    # What add_subparsers returns; argparse has no public name for its type.
    SubParsers = argparse._SubParsersAction[_Parser]


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dockyard", description="Build container images from Dockerfiles, without a daemon.")
    parser.add_argument("--version", action="version", version=f"dockyard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    b = sub.add_parser("build", help="build an image from a Dockerfile", epilog=BUILD_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Build an image from the Dockerfile in CONTEXT (or -f) and push or save it.")
    b.add_argument("context", metavar="CONTEXT", help="the build context directory")
    b.add_argument("-f", "--file", metavar="DOCKERFILE", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    b.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                   help="name and tag the image (repeatable)")
    b.add_argument("--build-arg", action="append", default=[], metavar="KEY[=VALUE]",
                   help="set a build argument; a bare KEY takes its value from the environment (repeatable)")
    b.add_argument("--target", help="build only up to this stage")
    b.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="add a label (repeatable)")
    b.add_argument("--annotation", action="append", default=[], metavar="[TYPE:]KEY=VALUE",
                   help="add an annotation (repeatable); TYPE is manifest (the default), index, manifest-descriptor "
                        "or index-descriptor, optionally for one platform: manifest[linux/arm64]:KEY=VALUE")
    b.add_argument("--platform", action="append", default=[], metavar="OS/ARCH[/VARIANT][,...]",
                   help="the platform(s) to build for, comma-separated or repeated (default linux/amd64); "
                        "several make one image index")
    b.add_argument("--build-context", action="append", default=[], metavar="NAME=VALUE",
                   help="a named context for FROM NAME, COPY --from=NAME and RUN --mount=from=NAME: a directory, "
                        "docker-image://REF, oci-layout://PATH[:TAG|@DIGEST], a git URL or an http(s) URL; a "
                        "stage or image of that name is replaced (repeatable)")
    b.add_argument("--push", action="store_true", help="push every tag to its registry")
    b.add_argument("-o", "--output", action="append", default=[], metavar="SPEC",
                   help="type=registry[,name=REF][,push-by-digest=true] | type=oci,dest=DIR | "
                        "type=docker,dest=FILE.tar; oci-mediatypes=false writes Docker media types (repeatable)")
    b.add_argument("--sign", metavar="key=PATH[,passphrase-env=VAR|passphrase-file=FILE]|keyless",
                   help="sign the pushed image (and its attestations) as cosign does, before any tag is put: with "
                        "an ECDSA P-256 PEM key or a cosign key (its passphrase from VAR, FILE or COSIGN_PASSWORD)")
    b.add_argument("--digest-file", metavar="FILE", help="write the image digest to FILE")
    b.add_argument("--metadata-file", metavar="FILE", help="write build metadata (JSON) to FILE")
    b.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="allow plain HTTP to this registry (loopback registries are always allowed)")
    b.add_argument("--skip-tls-verify-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="use HTTPS with this registry but do not verify its certificate (repeatable)")
    b.add_argument("--registry-ca", "--registry-certificate", action="append", default=[], metavar="HOST=FILE",
                   help="trust the CA certificate(s) in FILE for this registry, besides the system CAs and "
                        "/etc/docker/certs.d/HOST/*.crt (repeatable)")
    b.add_argument("--registry-client-cert", action="append", default=[], metavar="HOST=CERT,KEY",
                   help="present this client certificate and key to the registry (mutual TLS) (repeatable)")
    b.add_argument("--registry-mirror", action="append", default=[], metavar="HOST[/PATH]",
                   help="pull docker.io images through this mirror first (repeatable, tried in order)")
    b.add_argument("--registry-map", action="append", default=[], metavar="FROM=TO[;TO...]",
                   help="pull images of registry FROM through the registries TO first (repeatable)")
    b.add_argument("--skip-default-registry-fallback", action="store_true",
                   help="if every mirror fails, fail instead of pulling from the image's own registry")
    b.add_argument("--push-retry", type=_retry_count, metavar="N",
                   help="retry a failed registry request N times (default 3), with exponential backoff")
    b.add_argument("--image-download-retry", type=_retry_count, metavar="N",
                   help="retry a failed pull request N times (default: as --push-retry)")
    b.add_argument("--secret", action="append", default=[], metavar="id=ID[,src=FILE|,env=VAR]",
                   help="a secret for RUN --mount=type=secret, from a file or an environment variable; a bare "
                        "id=ID uses the variable ID if set, else the file ID (repeatable)")
    b.add_argument("--ssh", action="append", default=[], metavar="default|ID[=SOCKET]",
                   help="an ssh-agent socket for RUN --mount=type=ssh (default: $SSH_AUTH_SOCK) (repeatable)")
    b.add_argument("--jobs", "-j", type=_job_count, metavar="N",
                   help="build up to N independent stages at the same time (default: the number of cores, 2 to 4; "
                        "1 builds one stage at a time)")
    b.add_argument("--progress", choices=["auto", "plain", "json"], default="auto",
                   help="progress output: live view on a terminal, plain lines in CI, or JSON events")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")
    b.add_argument("--compression", choices=["gzip", "zstd", "uncompressed"], default="gzip",
                   help="layer compression (default gzip)")
    b.add_argument("--compression-level", type=int, metavar="N",
                   help="compression level: gzip 0-9 (mapped onto ISA-L's 0-3; default ISA-L 1), zstd 1-22 (default 3)")
    b.add_argument("--reproducible", action="store_true",
                   help="pin every timestamp (layer files, history, config) to $SOURCE_DATE_EPOCH, or to 0 "
                        "when it is not set, so the same inputs give the same image digest")
    b.add_argument("--work-dir", metavar="DIR", help="scratch space for the build (default /var/tmp)")
    _add_cache_dir(b)
    b.add_argument("--isolation", choices=("auto", "namespaces", "proot"), default="auto",
                   help="how RUN is isolated: namespaces (root with CAP_SYS_ADMIN, overlayfs) or proot (no "
                        "privileges; snapshots by scanning); auto picks the best this environment allows")
    b.add_argument("--no-cache", action="store_true",
                   help="run every step instead of taking it from the cache (results are still recorded)")
    b.add_argument("--cache-ttl", metavar="DURATION",
                   help="cached steps older than this are run again, e.g. 6h, 7d (kaniko's --cache-ttl)")
    b.add_argument("--check", action="store_true",
                   help="run the build checks (as `dockyard lint`) first; stop before building when one is at or "
                        "above --fail-on")
    b.add_argument("--sbom", metavar="true|false|generator=IMAGE", nargs="?", const="true",
                   help="attest the image's SBOM (SPDX), as buildx's --sbom (= --attest type=sbom)")
    b.add_argument("--provenance", metavar="true|false|mode=min|max[,version=v1][,builder-id=URL]", nargs="?",
                   const="true", help="attest SLSA provenance, as buildx's --provenance "
                                      "(= --attest type=provenance,...)")
    b.add_argument("--attest", action="append", default=[], metavar="type=sbom|provenance[,...]",
                   help="an attestation to write into the image index (repeatable; buildx's syntax)")
    b.add_argument("--sbom-output", action="append", default=[], metavar="spdx-json|cyclonedx-json=FILE",
                   help="also write the image's SBOM to FILE (one per platform: FILE's {platform}, or the "
                        "platform before its extension)")
    b.add_argument("--cache-from", action="append", default=[], metavar="type=registry,ref=REF",
                   help="take cached steps from the registry cache at REF (or a bare REF), a directory "
                        "(type=local,src=DIR) or the GitHub Actions cache (type=gha[,scope=NAME]) when the local "
                        "cache misses; a cache that cannot be read is a warning (repeatable)")
    b.add_argument("--cache-to", action="append", default=[], metavar="type=registry,ref=REF[,mode=min|max]",
                   help="write this build's steps as a registry cache at REF, to a directory "
                        "(type=local,dest=DIR) or to the GitHub Actions cache (type=gha[,scope=NAME]) after the "
                        "build: mode=min (default) the final image's steps, mode=max every stage's (repeatable)")
    b.add_argument("--cache-repo", metavar="REGISTRY/REPOSITORY",
                   help="kaniko's registry cache: read and write the cache at REGISTRY/REPOSITORY:cache "
                        "(mode=max)")
    _add_findings_options(b)
    b.add_argument("--scan", action="store_true",
                   help="scan the image for vulnerabilities (OSV advisories of its distribution and Python "
                        "packages) before anything is pushed; implied by the other scan options")
    _add_scan_options(b)
    _add_lint_command(sub)
    _add_manifest_commands(sub)
    # Listed for --help only: main() hands `dockyard kaniko ...` to the kaniko front end before argparse.
    sub.add_parser("kaniko", add_help=False, help="build with kaniko's executor flags (the builder image's entrypoint)")
    _add_login_commands(sub)
    _add_cache_commands(sub)
    _add_sbom_command(sub)
    _add_scan_command(sub)
    return parser


def _add_scan_options(parser: argparse.ArgumentParser) -> None:
    """The options `dockyard scan` and `dockyard build --scan` share (scan/settings.py)."""
    from .scan.settings import FAIL_ON_VULN

    parser.add_argument("--fail-on-vuln", choices=FAIL_ON_VULN, default=None,
                        help="fail (exit 12) when a vulnerability at or above this severity is found; with a build "
                             "nothing is pushed or written (default none)")
    parser.add_argument("--ignore-unfixed", action="store_true",
                        help="set aside vulnerabilities that have no fixed version yet")
    parser.add_argument("--vuln-ignore-file", metavar="FILE",
                        help="advisories to set aside, each with a reason and an expiry date (Trivy's "
                             ".trivyignore.yaml or .trivyignore)")
    parser.add_argument("--vuln-db", metavar="DIR|ZIP",
                        help="use this OSV database instead of downloading one: a directory of <Ecosystem>/all.zip "
                             "or one zip of OSV records (air-gapped runners)")
    parser.add_argument("--vuln-db-url", metavar="URL",
                        help="download the OSV archives from this mirror (URL/<Ecosystem>/all.zip) instead of "
                             "osv.dev's")
    parser.add_argument("--scan-report", action="append", default=[], metavar="FORMAT=FILE",
                        help="write the scan's report to FILE (repeatable)")


def scan_settings_from_args(args: argparse.Namespace, *, requested: bool) -> object:
    """The ScanSettings the scan options ask for; None when no scan is asked for (`requested` is --scan)."""
    from .scan.settings import ScanReportSpec, ScanSettings

    given = (args.fail_on_vuln is not None or args.ignore_unfixed or args.vuln_ignore_file or args.vuln_db
             or args.vuln_db_url or args.scan_report)
    if not requested and not given:
        return None
    if args.vuln_ignore_file:
        from .scan.ignores import load_ignore_file

        load_ignore_file(Path(args.vuln_ignore_file))  # a bad ignore file stops the build before it starts
    return ScanSettings(fail_on=args.fail_on_vuln or "none", ignore_unfixed=args.ignore_unfixed,
                        ignore_file=Path(args.vuln_ignore_file) if args.vuln_ignore_file else None,
                        db=Path(args.vuln_db) if args.vuln_db else None, db_url=args.vuln_db_url,
                        reports=tuple(ScanReportSpec.parse(r) for r in args.scan_report))


def _add_scan_command(sub: SubParsers) -> None:
    scan = sub.add_parser("scan", help="scan an image for vulnerabilities (OSV advisories)",
                          description="Match the packages of an image (its SBOM catalog) against OSV advisories of "
                                      "their ecosystems (Debian, Ubuntu, Alpine, PyPI, npm), each in its own version "
                                      "order. The database is downloaded into the cache (conditional requests) "
                                      "and reused offline, or given with --vuln-db.")
    scan.add_argument("source", metavar="SOURCE",
                      help="the image: a registry reference, oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG]")
    scan.add_argument("--format", choices=("table", "json"), default="table",
                      help="how to print the result (default table; json: the report as the metadata file has it)")
    scan.add_argument("--output", "-o", metavar="FILE", help="write the result to FILE instead of standard output")
    scan.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                      help="the platform of a multi-platform image to scan (default this machine's)")
    scan.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                      help="allow plain HTTP to this registry (loopback registries are always allowed)")
    _add_cache_dir(scan)
    _add_scan_options(scan)


def _add_findings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fail-on", choices=["error", "warning", "info", "none"], default="error",
                        help="fail (exit 10) when a check finds a problem at or above this level (default error)")
    parser.add_argument("--report", action="append", default=[], metavar="FORMAT=FILE",
                        help="write the findings to FILE as text, json, sarif, github, gitlab or jenkins; for build "
                             "also the failure at its Dockerfile line, written even when the build fails "
                             "(repeatable)")


def _add_lint_command(sub: SubParsers) -> None:
    lint = sub.add_parser("lint", help="check a Dockerfile: dockyard's build checks and hadolint's rules",
                          description="Check the Dockerfile of CONTEXT (or -f) without building it.")
    lint.add_argument("context", metavar="CONTEXT", nargs="?", default=".",
                      help="the build context directory (default .)")
    lint.add_argument("-f", "--file", metavar="DOCKERFILE", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    lint.add_argument("--build-arg", action="append", default=[], metavar="KEY[=VALUE]",
                      help="a build argument the build will get (repeatable)")
    lint.add_argument("--target", help="the stage the build will target")
    lint.add_argument("--build-context", action="append", default=[], metavar="NAME=VALUE",
                      help="a named context the build will get: NAME is then no unknown stage (repeatable)")
    lint.add_argument("--format", choices=["text", "json", "sarif", "github", "gitlab", "jenkins"], default="text",
                      help="how to print the findings (default text)")
    lint.add_argument("--output", metavar="FILE", help="write the findings to FILE instead of standard output")
    lint.add_argument("--no-hadolint", action="store_true", help="run dockyard's checks only")
    _add_findings_options(lint)


MANIFEST_EXAMPLES = """\
examples:
  dockyard manifest create -t registry.example.com/app:1.0 \\
      registry.example.com/app@sha256:<amd64 digest> registry.example.com/app@sha256:<arm64 digest>
  dockyard manifest create --append -t registry.example.com/app:1.0 registry.example.com/app@sha256:<riscv64>
  dockyard manifest create --annotation index:org.opencontainers.image.source=https://git.example.com/app \\
      --dry-run registry.example.com/app:amd64 registry.example.com/app:arm64
"""


def _add_manifest_commands(sub: SubParsers) -> None:
    manifest = sub.add_parser("manifest", help="create or inspect a multi-platform image index in a registry",
                              description="Work with image indexes (manifest lists) in registries.")
    actions = manifest.add_subparsers(dest="manifest_command", metavar="ACTION", parser_class=_Parser)
    create = actions.add_parser(
        "create", help="assemble images already pushed (by tag or digest) into one index, and push it",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=MANIFEST_EXAMPLES,
        description="Assemble SOURCE images into one image index and push it under every -t. An image manifest\n"
                    "becomes one entry (its platform from its config); an index gives all its entries, attestation\n"
                    "manifests included. Entries are copied into the target repository when they are elsewhere;\n"
                    "the tags move last.")
    create.add_argument("sources", metavar="SOURCE", nargs="*",
                        help="an image or index in a registry: NAME:TAG, NAME@sha256:DIGEST, or sha256:DIGEST "
                             "in the first -t's repository")
    create.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                        help="where to push the index (repeatable)")
    create.add_argument("--append", action="store_true",
                        help="merge into the index (or image) already at the first -t; a source's platform "
                             "replaces the entry it had there")
    create.add_argument("--annotation", action="append", default=[], metavar="[LEVEL:]KEY=VALUE",
                        help="annotate the index (index:, the default) or its entries "
                             "(manifest-descriptor[PLATFORM]:) (repeatable)")
    create.add_argument("--dry-run", action="store_true", help="print the index instead of pushing it")
    create.add_argument("--sign", metavar="key=PATH[,passphrase-env=VAR|passphrase-file=FILE]|keyless",
                        help="sign the index (and the attestation manifests it lists) as cosign does, before the "
                             "tags move (as dockyard build --sign)")
    create.add_argument("--digest-file", metavar="FILE", help="write the index digest to FILE")
    create.add_argument("--progress", choices=["auto", "plain", "json"], default="auto",
                        help="progress output on standard error: plain lines or JSON events")
    _add_registry_options(create)
    inspect = actions.add_parser("inspect", help="show an index's platforms (or an image's) with their digests",
                                 description="Show what a registry holds under REF: an index's entries with their "
                                             "platforms and digests (attestation manifests marked), or an image.")
    inspect.add_argument("reference", metavar="REF", help="NAME:TAG or NAME@sha256:DIGEST")
    inspect.add_argument("--raw", action="store_true", help="print the manifest's bytes as the registry has them")
    inspect.add_argument("--format", choices=["text", "json"], default="text", help="text (a table) or json")
    _add_registry_options(inspect)


def _add_registry_options(parser: argparse.ArgumentParser) -> None:
    """The registry connection options of `dockyard build`, for commands that only talk to registries."""
    parser.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                        help="allow plain HTTP to this registry (loopback registries are always allowed)")
    parser.add_argument("--skip-tls-verify-registry", action="append", default=[], metavar="HOST[:PORT]",
                        help="use HTTPS with this registry but do not verify its certificate (repeatable)")
    parser.add_argument("--registry-ca", "--registry-certificate", action="append", default=[], metavar="HOST=FILE",
                        help="trust the CA certificate(s) in FILE for this registry (repeatable)")
    parser.add_argument("--registry-client-cert", action="append", default=[], metavar="HOST=CERT,KEY",
                        help="present this client certificate and key to the registry (repeatable)")
    parser.add_argument("--push-retry", type=_retry_count, metavar="N",
                        help="retry a failed registry request N times (default 3), with exponential backoff")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="scratch space for blobs copied between registries (default /var/tmp)")


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="the local cache: unpacked layers, cached steps and blobs (default "
                             "$XDG_CACHE_HOME/dockyard or ~/.cache/dockyard)")


def _add_cache_commands(sub: SubParsers) -> None:
    cache = sub.add_parser("cache", help="show or prune the local build cache",
                           description="The local cache: cached steps and unpacked layers.")
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=_Parser)
    ls = actions.add_parser("ls", help="list cached steps and unpacked layers with their sizes and last use")
    _add_cache_dir(ls)
    prune = actions.add_parser("prune", help="remove cache entries")
    _add_cache_dir(prune)
    prune.add_argument("--older-than", metavar="DURATION", help="only entries not used for this long, e.g. 7d")
    prune.add_argument("--all", action="store_true", help="everything, blobs included")
    prune.add_argument("--work-dir", metavar="DIR", help="where builds make their scratch directories, whose "
                       "leftovers from killed builds are removed too (default $DOCKYARD_WORK_DIR or /var/tmp)")


def _add_sbom_command(sub: SubParsers) -> None:
    sbom = sub.add_parser("sbom", help="list an image's packages as an SBOM (SPDX 2.3 JSON, CycloneDX 1.5 JSON "
                                       "or a table)",
                          description="Catalog the packages of an image (dpkg, apk, rpm's sqlite database, Python "
                                      "distributions, Node.js modules), read from its layers, and write its SBOM.")
    sbom.add_argument("source", metavar="SOURCE",
                      help="a registry reference (REGISTRY/REPO:TAG), oci:DIR[:TAG] or oci:DIR@DIGEST (an OCI "
                           "layout), or docker-archive:FILE[:NAME:TAG] (a docker save tarball)")
    sbom.add_argument("--format", choices=("spdx-json", "cyclonedx-json", "table"), default="spdx-json",
                      help="the SBOM's format (default spdx-json)")
    sbom.add_argument("--output", "-o", metavar="FILE", help="write the SBOM to FILE instead of standard output")
    sbom.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                      help="the platform to take from a multi-platform image (default: this machine's)")
    sbom.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                      help="pull from this registry over plain HTTP or without verifying its certificate "
                           "(repeatable)")


def _job_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of stages, 1 or more, got {text!r}")
    return int(text)


def _retry_count(text: str) -> int:
    from .options import parse_retry_count

    return parse_retry_count(text)


def _add_login_commands(sub: SubParsers) -> None:
    doctor = sub.add_parser("doctor", help="report what this environment allows for builds and the mode a build "
                                           "would use (capabilities, namespaces, overlayfs, seccomp, proot)")
    doctor.add_argument("--isolation", choices=("auto", "namespaces", "proot"), default="auto",
                        help="the --isolation a build would be given")
    doctor.add_argument("--work-dir", metavar="DIR", help="the build's scratch space, where overlayfs is tried "
                                                          "(default /var/tmp)")
    login = sub.add_parser("login", help="log in to a registry (writes the docker config, like docker login)",
                           description="Check credentials against REGISTRY and store them in the docker config "
                                       "($DOCKER_CONFIG/config.json or ~/.docker/config.json), like docker login.")
    login.add_argument("registry", metavar="REGISTRY", nargs="?", default="docker.io",
                       help="the registry host[:port] (default docker.io)")
    login.add_argument("-u", "--username", help="the user name")
    login.add_argument("-p", "--password", help="the password (insecure: prefer --password-stdin)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    logout = sub.add_parser("logout", help="remove a registry's credentials from the docker config")
    logout.add_argument("registry", metavar="REGISTRY", nargs="?", default="docker.io",
                        help="the registry host[:port] (default docker.io)")


def options_from_args(args: argparse.Namespace, environ: dict[str, str]) -> BuildOptions:
    from .attest.spec import SbomOutput
    from .attest.spec import parse_attestations
    from .options import (BuildOptions, OutputSpec, RegistryCache, ReportSpec, SecretSource, SshSource,
                          parse_annotations, parse_duration, parse_key_values, parse_platforms,
                          parse_registry_ca, parse_registry_client_cert)

    context = Path(args.context)
    cache_repo = (RegistryCache.from_cache_repo(args.cache_repo),) if args.cache_repo else ()
    return BuildOptions(
        context=context,
        dockerfile=Path(args.file) if args.file else None,
        tags=tuple(args.tag),
        build_args=parse_key_values(args.build_arg, "--build-arg", environ),
        target=args.target,
        labels=parse_key_values(args.label, "--label"),
        annotations=parse_annotations(args.annotation),
        platforms=parse_platforms(args.platform),
        push=args.push,
        outputs=tuple(OutputSpec.parse(o) for o in args.output),
        digest_file=Path(args.digest_file) if args.digest_file else None,
        metadata_file=Path(args.metadata_file) if args.metadata_file else None,
        insecure_registries=tuple(args.insecure_registry),
        skip_tls_verify_registries=tuple(args.skip_tls_verify_registry),
        registry_cas=tuple(parse_registry_ca(c) for c in args.registry_ca),
        registry_client_certs=tuple(parse_registry_client_cert(c) for c in args.registry_client_cert),
        registry_mirrors=tuple(args.registry_mirror),
        registry_maps=tuple(args.registry_map),
        skip_default_registry_fallback=args.skip_default_registry_fallback,
        push_retry=args.push_retry,
        image_download_retry=args.image_download_retry,
        secrets=tuple(SecretSource.parse(s, environ) for s in args.secret),
        ssh=tuple(SshSource.parse(s, environ) for s in args.ssh),
        build_contexts=_build_contexts(args.build_context),
        compression=args.compression,
        compression_level=args.compression_level,
        reproducible=args.reproducible,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        no_cache=args.no_cache, isolation=args.isolation,
        cache_ttl=parse_duration(args.cache_ttl, "--cache-ttl") if args.cache_ttl else None,
        cache_from=tuple(RegistryCache.parse(c, "--cache-from") for c in args.cache_from) + cache_repo,
        cache_to=tuple(RegistryCache.parse(c, "--cache-to") for c in args.cache_to) + cache_repo,
        check=args.check, fail_on=args.fail_on, reports=tuple(ReportSpec.parse(r) for r in args.report),
        signing=_signing(args.sign),
        attestations=parse_attestations(sbom=args.sbom, provenance=args.provenance, attest=args.attest),
        sbom_outputs=tuple(SbomOutput.parse(o) for o in args.sbom_output),
        scan=scan_settings_from_args(args, requested=args.scan),  # type: ignore[arg-type]
        jobs=args.jobs,
        environ=environ,
    )


def _signing(value: str | None) -> SigningSpec | None:
    if value is None:
        return None
    from .signing.spec import SigningSpec

    return SigningSpec.parse(value)


def _build_contexts(values: list[str]) -> tuple[NamedContext, ...]:
    if not values:
        return ()
    from .named_contexts import parse_build_context

    return tuple(parse_build_context(v) for v in values)


def run_build(args: argparse.Namespace, argv: list[str]) -> int:
    with failure_event_on_error(args.progress, quiet=args.quiet):
        options = options_from_args(args, dict(os.environ))
        if options.isolation != "proot":
            # Not root: with subordinate ids the whole build runs again as root of a user namespace (mode 1).
            code = _in_user_namespace(argv, str(options.work_parent), options.isolation)
            if code is not None:
                return code
            _start_overlay_probe(options.work_parent)
        from .api import build  # the bulk of dockyard's imports (the builder's), while the probe runs
        from .events import Events
        from .progress import make_renderer

        renderer = make_renderer(args.progress, quiet=args.quiet)
    # From here on the API reports a failure itself (its BuildFailed event).
    try:
        result = build(options, events=Events(renderer))
    finally:
        renderer.close()
    print(result.digest)
    return 0


@contextmanager
def failure_event_on_error(progress: str, *, quiet: bool) -> Iterator[None]:
    """An error before the build starts (a bad flag) ends a `--progress json` stream with BuildFailed too, as the
    API's build ends it for errors during the build. Other renderers would not show it: the CLI prints the error."""
    try:
        yield
    except (Exception, KeyboardInterrupt) as exc:
        if progress == "json" and not quiet:
            from .events import BuildFailed
            from .progress import make_renderer

            renderer = make_renderer(progress)
            renderer(BuildFailed.from_exception(exc))
            renderer.close()
        raise


def progress_in_argv(argv: list[str]) -> tuple[str, bool]:
    """`dockyard build`'s --progress mode and whether -q/--quiet was given, read from the raw arguments: what
    an argv that argparse refused asked for."""
    mode, quiet = "auto", False
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--progress" and index + 1 < len(argv):
            mode = argv[index + 1]
        elif arg.startswith("--progress="):
            mode = arg.partition("=")[2]
        elif arg in ("-q", "--quiet"):
            quiet = True
    return mode, quiet


def run_doctor(args: argparse.Namespace) -> int:
    from .isolation.detect import probe
    from .isolation.doctor import report

    work_dir = args.work_dir or os.environ.get("DOCKYARD_WORK_DIR") or "/var/tmp"
    lines, runnable = report(probe(work_dir), work_dir, args.isolation)
    print("\n".join(lines))
    return 0 if runnable else IsolationError.exit_code


def run_lint(args: argparse.Namespace) -> int:
    from .api import check, conclude_checks
    from .diagnostics import render, render_text
    from .diagnostics.reports import write_report
    from .named_contexts import split_build_context
    from .options import BuildOptions, ReportSpec, parse_key_values

    environ = dict(os.environ)
    reports = tuple(ReportSpec.parse(r) for r in args.report)
    options = BuildOptions(context=Path(args.context), dockerfile=Path(args.file) if args.file else None,
                           build_args=parse_key_values(args.build_arg, "--build-arg", environ), target=args.target,
                           fail_on=args.fail_on, reports=reports, environ=environ)
    # Only the names: a named context's value is read by the build, not by the checks.
    findings = check(options, hadolint=not args.no_hadolint,
                     context_names=[split_build_context(c)[0] for c in args.build_context])
    if args.output:
        write_report(findings, args.format, Path(args.output))
    elif args.format == "text":
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(render_text(findings), end="")
    else:
        sys.stdout.write(render(findings, args.format))
    conclude_checks(findings, options)
    return 0


# docker login's own words, so that CI logs read the same.
PASSWORD_ARG_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."


def read_login_password(args: argparse.Namespace, stdin: TextIO) -> str:
    """The password from -p, --password-stdin (without its trailing newline, as docker strips it) or a prompt."""
    if args.password is not None and args.password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if args.password_stdin:
        password = stdin.read().removesuffix("\n").removesuffix("\r")
    elif args.password is not None:
        print(PASSWORD_ARG_WARNING, file=sys.stderr)
        password = str(args.password)
    elif stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
    else:
        raise UsageError("no password given and standard input is not a terminal",
                         hint="pipe it in with --password-stdin")
    if not password:
        raise UsageError("the password is empty", hint="check what you pipe into --password-stdin")
    return password


def read_login_username(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.username:
        return str(args.username)
    if args.password_stdin or not stdin.isatty():
        raise UsageError("must provide --username with --password-stdin" if args.password_stdin else
                         "no username given and standard input is not a terminal",
                         hint='e.g. echo "$TOKEN" | dockyard login -u USER --password-stdin REGISTRY')
    return input("Username: ").strip()


def run_login(args: argparse.Namespace) -> int:
    from .registry.login import login
    from .registry.tls import TLSSettings

    username = read_login_username(args, sys.stdin)
    password = read_login_password(args, sys.stdin)
    environ = dict(os.environ)
    # The registry's CAs and client certificate come from certs.d, as for docker login.
    tls = TLSSettings.from_environment(environ)
    try:
        path = login(args.registry, username, password, environ, tls=tls)
    finally:
        tls.close()
    print(f"Login Succeeded (credentials stored in {path})")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    from .registry.login import logout

    logout(args.registry, dict(os.environ))
    print(f"Removing login credentials for {args.registry}")
    return 0


def _start_overlay_probe(work_parent: Path) -> None:
    """As root, the build's isolation probe (does overlayfs mount in the work directory?) starts in a child
    before the builder is imported, so that the two overlap; the builder collects its answer."""
    if os.geteuid() != 0:
        return
    from .isolation.detect import start_overlay_probe

    try:
        work_parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # the builder makes it again and reports why it cannot
    start_overlay_probe(str(work_parent))


def _in_user_namespace(argv: list[str], work_dir: str, isolation: str = "auto") -> int | None:
    """For a user who is not root but has subordinate ids: runs this command again as root of a user namespace
    (isolation/userns.py) and returns its exit status; None when the command should run here."""
    if os.geteuid() == 0:
        return None
    from .isolation.detect import choose, probe
    from .isolation.userns import reenter

    environment = probe(work_dir)
    if choose(environment, isolation).name != "userns" or environment.subordinates is None:
        return None  # (the userns mode is chosen only for a user with subordinate ids)
    return reenter(argv, environment.subordinates)


def _cache_root(args: argparse.Namespace) -> Path:
    from .options import default_cache_root

    return Path(args.cache_dir) if args.cache_dir else default_cache_root(dict(os.environ))


def run_cache(args: argparse.Namespace, argv: list[str]) -> int:
    from .cache.admin import list_cache, prune_cache
    from .options import parse_duration

    root = _cache_root(args)
    if args.cache_command == "ls":
        import datetime as dt

        items = list_cache(root)
        print(f"{'KIND':<6} {'SIZE':>10}  {'LAST USED':<19}  WHAT")
        for item in sorted(items, key=lambda i: i.last_used, reverse=True):
            when = dt.datetime.fromtimestamp(item.last_used).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{item.kind:<6} {_size(item.size):>10}  {when:<19}  {item.name}")
        print(f"{len(items)} entries, {_size(sum(i.size for i in items))} in {root}")
        return 0
    if args.cache_command == "prune":
        if not args.all and not args.older_than:
            raise UsageError("cache prune needs --older-than DURATION or --all",
                             hint="e.g. dockyard cache prune --older-than 7d")
        older = parse_duration(args.older_than, "--older-than") if args.older_than else None
        # Builds in a user namespace leave files owned by the user's subordinate ids: prune where they were made.
        code = _in_user_namespace(argv, str(root if root.is_dir() else root.parent))
        if code is not None:
            return code
        removed, freed = prune_cache(root, older_than=older, everything=args.all)
        print(f"removed {removed} entries, freed {_size(freed)}")
        return _prune_work_dirs(Path(args.work_dir or os.environ.get("DOCKYARD_WORK_DIR") or "/var/tmp"))
    raise UsageError("dockyard cache needs an action: ls or prune", hint="see `dockyard cache --help`")


def _prune_work_dirs(parent: Path) -> int:
    """Removes the work directories killed builds left under `parent`, and says so; running builds' stay."""
    from .workdirs import sweep

    leftovers = sweep(parent)
    removed = [l for l in leftovers if l.kept is None]
    print(f"removed {len(removed)} work directories of stopped builds from {parent}, freed "
          f"{_size(sum(l.freed for l in removed))}")
    for leftover in leftovers:
        if leftover.kept is not None:
            print(f"warning: cannot remove {leftover.path}: {leftover.kept}", file=sys.stderr)
    return 0


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        from .cmdline import hide_secrets

        hide_secrets()  # build-arg values and passwords, out of /proc/PID/cmdline (a RUN step could read it)
    argv = sys.argv[1:] if argv is None else argv
    from .stopping import Stopped, stopping_on_signals

    try:
        with stopping_on_signals():
            return _dispatch(argv)
    except DockyardError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        building = argv[:1] in (["build"], ["kaniko"])
        print(f"error: stopped by {exc.name}" + ("; the build was cancelled, its work directory and RUN processes "
                                                 "removed" if building else ""), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


# buildx's --sbom and --provenance take a value only as --sbom=VALUE (pflag's optional values); dockyard also
# takes `--provenance mode=max`, when the next word is such a value (a context directory is not).
_ATTESTATION_FLAGS = ("--sbom", "--provenance")
_ATTESTATION_VALUE = re.compile(r"^(true|false|1|0|(mode|version|builder-id|generator|disabled)=.*)$", re.IGNORECASE)


def attestation_flag_values(args: list[str]) -> list[str]:
    """`args` with each bare --sbom/--provenance given its value: the next word when it is one, else true."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        if arg in _ATTESTATION_FLAGS:
            following = args[i + 1] if i + 1 < len(args) else None
            if following is not None and _ATTESTATION_VALUE.match(following):
                out.append(f"{arg}={following}")
                i += 2
                continue
            out.append(f"{arg}=true")
        else:
            out.append(arg)
        i += 1
    return out


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["kaniko"]:
        # kaniko's flags follow pflag's rules, not argparse's: the kaniko front end reads them itself.
        from .kaniko.command import run_kaniko

        return run_kaniko(argv[1:])
    parser = make_parser()
    if argv[:1] == ["build"]:
        argv = ["build", *attestation_flag_values(argv[1:])]
        # A bad flag ends a `--progress json` stream with BuildFailed too: read the mode from the raw arguments.
        progress, quiet = progress_in_argv(argv[1:])
        with failure_event_on_error(progress, quiet=quiet):
            args = parser.parse_args(argv)
    else:
        args = parser.parse_args(argv)
    if args.command == "build":
        return run_build(args, argv)
    if args.command == "doctor":
        return run_doctor(args)
    if args.command == "lint":
        return run_lint(args)
    if args.command == "manifest":
        from .manifest_command import run_manifest

        return run_manifest(args)
    if args.command == "login":
        return run_login(args)
    if args.command == "logout":
        return run_logout(args)
    if args.command == "cache":
        return run_cache(args, argv)
    if args.command == "scan":
        from .scan.command import run_scan

        return run_scan(args.source, settings=scan_settings_from_args(args, requested=True),  # type: ignore[arg-type]
                        output_format=args.format, output=args.output, platform=args.platform,
                        environ=dict(os.environ), cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                        insecure_registries=tuple(args.insecure_registry))
    if args.command == "sbom":
        from .sbom.command import run_sbom

        return run_sbom(args.source, output_format=args.format, output=args.output, platform=args.platform,
                        environ=dict(os.environ), insecure_registries=tuple(args.insecure_registry))
    parser.print_help(sys.stderr)
    return UsageError.exit_code


def entry_point() -> None:
    """The `dockyard` command and `python -m dockyard`: main(), and then the process ends."""
    code = main()
    # Everything still alive dies with the process. Frozen, it is out of the cyclic collector's reach, so
    # the interpreter's last collection at exit does not walk every object the build made: 35 ms of a small
    # build (benchmarks/run_overhead.py's five RUNs) on the development machine.
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
