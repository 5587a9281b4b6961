"""`dockyard manifest create|inspect` run from parsed command-line arguments (the parser is in cli.py).

The registry client is set up as `dockyard build` sets it up: the docker config's credentials, certs.d and
--registry-ca/--registry-client-cert for TLS, --insecure-registry for plain HTTP, --push-retry. Blobs that must
travel between registries stream through a blob store in a scratch directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, UsageError
from .events import BuildFailed, Events
from .files import replace_file
from .image.blobs import BlobStore
from .image.reference import parse_reference
from .registry.client import RegistryClient


def run_manifest(args: argparse.Namespace) -> int:
    if args.manifest_command == "create":
        return run_create(args)
    if args.manifest_command == "inspect":
        return run_inspect(args)
    raise UsageError("dockyard manifest needs an action: create or inspect", hint="see `dockyard manifest --help`")


def run_create(args: argparse.Namespace) -> int:
    from .index_assembly import CreateRequest, create_index, parse_index_annotations, source_reference

    targets = tuple(parse_reference(t) for t in args.tag)
    request = CreateRequest(sources=tuple(source_reference(s, targets) for s in args.sources),
                            targets=targets, append=args.append,
                            annotations=parse_index_annotations(args.annotation), dry_run=args.dry_run)
    from .progress import make_renderer

    renderer = make_renderer("plain" if args.progress == "auto" else args.progress)
    try:
        events = Events(renderer)
        signer = None
        if args.sign is not None:
            from .signing.sign import signer_for
            from .signing.spec import SigningSpec

            if args.dry_run:
                raise UsageError("--sign signs the index in the registry, and --dry-run pushes nothing",
                                 hint="drop --dry-run or --sign")
            # Read (and decrypt) the key before any request: a bad key or passphrase changes nothing.
            signer = signer_for(SigningSpec.parse(args.sign), dict(os.environ), events)
        with registry_client(args, events) as (client, store):
            created = create_index(client, request, store, signer)
    except (Exception, KeyboardInterrupt) as exc:
        if args.progress == "json":
            renderer(BuildFailed.from_exception(exc))  # a JSON stream ends with its failure, as a build's does
        raise
    finally:
        renderer.close()
    if args.digest_file:
        try:
            Path(args.digest_file).parent.mkdir(parents=True, exist_ok=True)
            replace_file(Path(args.digest_file), (created.digest + "\n").encode())
        except OSError as exc:
            raise OutputError(f"cannot write {args.digest_file}: {exc.strerror}", subject=args.digest_file) \
                from None
    if args.dry_run:
        sys.stdout.write(created.assembled.body.decode() + "\n")
    else:
        print(created.digest)
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from .manifest_view import describe, render_text

    ref = parse_reference(args.reference)
    with registry_client(args, Events()) as (client, store):
        body, doc = describe(client, ref, store)
    if args.raw:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    elif args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(render_text(doc))
    return 0


@contextmanager
def registry_client(args: argparse.Namespace, events: Events) -> Iterator[tuple[RegistryClient, BlobStore]]:
    """The client `dockyard build` would make from the same registry options, and a scratch blob store."""
    from .options import parse_registry_ca, parse_registry_client_cert
    from .registry.tls import TLSSettings

    environ = dict(os.environ)
    tls = TLSSettings.from_environment(
        environ, ca_files=tuple(parse_registry_ca(c) for c in args.registry_ca),
        client_certs=tuple(parse_registry_client_cert(c) for c in args.registry_client_cert),
        insecure=tuple(args.insecure_registry) + tuple(args.skip_tls_verify_registry), events=events)
    retries = {} if args.push_retry is None else {"retries": args.push_retry}
    work_parent = Path(args.work_dir or environ.get("DOCKYARD_WORK_DIR") or "/var/tmp")
    try:
        work_parent.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.TemporaryDirectory(prefix="dockyard-manifest-", dir=work_parent)
    except OSError as exc:
        raise UsageError(f"cannot make a scratch directory in {work_parent}: {exc.strerror}",
                         hint="pass --work-dir DIR (or set DOCKYARD_WORK_DIR) to a writable directory") from None
    try:
        client = RegistryClient(insecure_registries=tuple(args.insecure_registry), environ=environ, events=events,
                                tls=tls, **retries)
        yield client, BlobStore(scratch.name)
    finally:
        tls.close()
        scratch.cleanup()
