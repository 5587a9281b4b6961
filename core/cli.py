"""`dockyard` on the command line: docker-compatible option names mapped onto BuildOptions.

Heavy modules are imported only once a command runs, so `dockyard --version` and `--help` stay instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__
from .errors import EXIT_CODES, DockyardError, UsageError

BUILD_EXAMPLES = """\
examples:
  dockyard build -t registry.example.com/team/app:1.0 --push .
  dockyard build -f docker/Dockerfile --build-arg VERSION=1.2 --target runtime -t app:dev \\
      --output type=oci,dest=out/app .
  dockyard build -t app:1 --output type=docker,dest=app.tar .     # then: docker load -i app.tar
  dockyard build -q --digest-file digest.txt -t localhost:5000/app:ci --push .
  dockyard build --secret id=npmrc,src=$HOME/.npmrc --secret id=token,env=API_TOKEN --ssh default -t app:1 .
      # RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci
      # RUN --mount=type=ssh git clone git@github.com:org/private.git

exit codes:
""" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors become our UsageError (exit 2, no traceback)
        raise UsageError(message, hint=f"see `{self.prog} --help`")


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
    b.add_argument("--platform", default="linux/amd64", help="the platform to build for (default linux/amd64)")
    b.add_argument("--push", action="store_true", help="push every tag to its registry")
    b.add_argument("-o", "--output", action="append", default=[], metavar="SPEC",
                   help="type=registry | type=oci,dest=DIR | type=docker,dest=FILE.tar (repeatable)")
    b.add_argument("--digest-file", metavar="FILE", help="write the image digest to FILE")
    b.add_argument("--metadata-file", metavar="FILE", help="write build metadata (JSON) to FILE")
    b.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="allow plain HTTP to this registry (loopback registries are always allowed)")
    b.add_argument("--secret", action="append", default=[], metavar="id=ID[,src=FILE|,env=VAR]",
                   help="a secret for RUN --mount=type=secret, from a file or an environment variable; a bare "
                        "id=ID uses the variable ID if set, else the file ID (repeatable)")
    b.add_argument("--ssh", action="append", default=[], metavar="default|ID[=SOCKET]",
                   help="an ssh-agent socket for RUN --mount=type=ssh (default: $SSH_AUTH_SOCK) (repeatable)")
    b.add_argument("--progress", choices=["auto", "plain", "json"], default="auto",
                   help="progress output: live view on a terminal, plain lines in CI, or JSON events")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")
    b.add_argument("--compression", choices=["gzip", "zstd", "uncompressed"], default="gzip",
                   help="layer compression (default gzip)")
    b.add_argument("--compression-level", type=int, metavar="N", help="compression level")
    b.add_argument("--work-dir", metavar="DIR", help="scratch space for the build (default /var/tmp)")
    return parser


def options_from_args(args: argparse.Namespace, environ: dict[str, str]):
    from .options import BuildOptions, OutputSpec, SecretSource, SshSource, parse_key_values

    context = Path(args.context)
    return BuildOptions(
        context=context,
        dockerfile=Path(args.file) if args.file else None,
        tags=tuple(args.tag),
        build_args=parse_key_values(args.build_arg, "--build-arg", environ),
        target=args.target,
        labels=parse_key_values(args.label, "--label"),
        platform=args.platform,
        push=args.push,
        outputs=tuple(OutputSpec.parse(o) for o in args.output),
        digest_file=Path(args.digest_file) if args.digest_file else None,
        metadata_file=Path(args.metadata_file) if args.metadata_file else None,
        insecure_registries=tuple(args.insecure_registry),
        secrets=tuple(SecretSource.parse(s, environ) for s in args.secret),
        ssh=tuple(SshSource.parse(s, environ) for s in args.ssh),
        compression=args.compression,
        compression_level=args.compression_level,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        environ=environ,
    )


def run_build(args: argparse.Namespace) -> int:
    from .builder import build
    from .events import Events
    from .progress import make_renderer

    options = options_from_args(args, dict(os.environ))
    renderer = make_renderer(args.progress, quiet=args.quiet)
    try:
        result = build(options, events=Events(renderer))
    finally:
        renderer.close()
    print(result.digest)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        parser = make_parser()
        args = parser.parse_args(argv)
        if args.command == "build":
            return run_build(args)
        parser.print_help(sys.stderr)
        return UsageError.exit_code
    except DockyardError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
