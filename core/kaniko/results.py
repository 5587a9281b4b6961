"""kaniko's result files, byte for byte as its executor writes them (pkg/executor/push.go):

* `--digest-file`: the manifest digest, `sha256:HEX`, with no newline;
* `--image-name-with-digest-file`: one line per destination, `REGISTRY/REPOSITORY@sha256:HEX\\n`;
* `--image-name-tag-with-digest-file`: the same with the tag, `REGISTRY/REPOSITORY:TAG@sha256:HEX\\n`.

Names are go-containerregistry's (`Repository.Name()`): Docker Hub is `index.docker.io` and its official
images are under `library/`, so pipelines that parse these files see what kaniko wrote.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OutputError
from ..files import replace_file
from ..image.reference import parse_reference
from .options import KanikoRun

_KANIKO_HUB = "index.docker.io"


def repository_name(destination: str) -> str:
    ref = parse_reference(destination)
    registry = _KANIKO_HUB if ref.registry == "docker.io" else ref.registry
    return f"{registry}/{ref.repository}"


def name_lines(destinations: tuple[str, ...], digest: str, *, with_tag: bool) -> str:
    lines = []
    for destination in destinations:
        tag = ":" + (parse_reference(destination).tag or "latest") if with_tag else ""
        lines.append(f"{repository_name(destination)}{tag}@{digest}\n")
    return "".join(lines)


def write_result_files(run: KanikoRun, digest: str) -> None:
    files = ((run.digest_file, digest),
             (run.image_name_digest_file, name_lines(run.destinations, digest, with_tag=False)),
             (run.image_name_tag_digest_file, name_lines(run.destinations, digest, with_tag=True)))
    for path, text in files:
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(Path(path), text.encode())
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}", subject=str(path)) from None


def _write(path: Path, data: bytes) -> None:
    """Replaces a regular file atomically. A file that cannot be replaced is written in place, as kaniko writes
    them all: Kubernetes' `--digest-file=/dev/termination-log` is a file bind-mounted into /dev, where no
    temporary file can be made beside it and nothing can be renamed over it."""
    try:
        replace_file(path, data)
    except OSError:
        if not path.exists():
            raise
        with open(path, "wb") as out:
            out.write(data)
