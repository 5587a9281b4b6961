"""`dockyard kaniko [kaniko executor flags]`: the builder image's entrypoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .context import materialized
from .flags import parse_flags
from .options import context_source, kaniko_run
from .results import write_result_files

USAGE = """\
usage: dockyard kaniko [kaniko executor flags]

Runs a build the way kaniko's /kaniko/executor was asked to, e.g.
  dockyard kaniko --context dir://. --dockerfile Dockerfile --destination registry.example.com/app:1.0 \\
      --digest-file digest.txt
Credentials: $DOCKER_CONFIG/config.json, ~/.docker/config.json or /kaniko/.docker/config.json (and the
other sources of `dockyard build`). Every flag, and what it maps to: docs/migrating-from-kaniko.md.
"""


def run_kaniko(argv: list[str]) -> int:
    from ..api import build
    from ..events import Events
    from ..progress import make_renderer

    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    flags = parse_flags(argv)
    environ = dict(os.environ)
    with materialized(context_source(flags)) as context_dir:
        run = kaniko_run(flags, context_dir, environ, Path.cwd())
        for note in run.notes:
            print(f"note: {note}", file=sys.stderr)
        quiet = run.progress == "quiet"
        renderer = make_renderer("plain" if quiet else run.progress, quiet=quiet)
        try:
            result = build(run.options, events=Events(renderer))
        finally:
            renderer.close()
    write_result_files(run, result.digest)
    print(result.digest)
    return 0
