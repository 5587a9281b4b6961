"""The images an SBOM can be made of, named as skopeo and syft name them: a registry reference
(`registry/repo:tag`, also `docker://...`), an OCI layout (`oci:DIR[:TAG]`, `oci:DIR@sha256:...`) or a docker
tarball (`docker-archive:FILE[:NAME:TAG]`). Each is opened for reading its layers where they are: a registry's
blobs are pulled into dockyard's blob store (shared with builds), a layout's and an archive's are read in place.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple

from ..errors import ContextError, UsageError
from ..image.blobs import BlobStore
from ..image.model import Image, Platform
from .layers import BlobSource


class OpenedImage(NamedTuple):
    """An image to catalog: the image, where its layer blobs are read from, its name and its digest."""

    image: Image
    blobs: BlobSource
    name: str
    digest: str


@contextmanager
def open_image(source: str, *, platform: Platform, environ: Mapping[str, str], store_root: Path | None = None,
               insecure_registries: tuple[str, ...] = ()) -> Iterator[OpenedImage]:
    """Opens SOURCE for `platform` (an index is resolved to it). `store_root`: where pulled blobs go (default
    dockyard's cache); `insecure_registries`: registries reached over plain HTTP or unverified TLS."""
    if source.startswith("oci:"):
        yield _open_layout(source[len("oci:"):], platform)
    elif source.startswith("docker-archive:"):
        from .docker_archive import DockerArchive

        path, _, tag = source[len("docker-archive:"):].partition(":")
        if not Path(path).is_file():
            raise ContextError(f"no docker archive at {path}", hint="give the path of a `docker save` tarball")
        with DockerArchive(path) as archive:
            image, name, image_id = archive.image(tag or None)
            yield OpenedImage(image, archive, name or Path(path).name, image_id)
    elif source.startswith(("oci-archive:", "docker-daemon:", "dir:", "containers-storage:")):
        raise UsageError(f"unsupported image source {source!r}",
                         hint="use a registry reference, oci:DIR[:TAG] or docker-archive:FILE")
    else:
        yield _pull(source.removeprefix("docker://").removeprefix("registry:"), platform, environ, store_root,
                    insecure_registries)


def _open_layout(spec: str, platform: Platform) -> OpenedImage:
    from ..image.layout_reader import read_oci_layout

    directory, digest, tag = spec, None, None
    if "@" in spec:
        directory, _, digest = spec.rpartition("@")
    elif ":" in spec.rsplit("/", 1)[-1]:
        directory, _, tag = spec.rpartition(":")
    if not (Path(directory) / "index.json").is_file():
        raise ContextError(f"no OCI layout at {directory} (it has no index.json)",
                           hint="give a directory written by --output type=oci,dest=DIR or skopeo copy ... oci:DIR")
    if tag is None and digest is None:
        digest = _only_manifest(Path(directory))
    # The layout's blobs/ is a blob store's layout: the reader finds every blob already there and copies none.
    store = BlobStore(directory)
    read = read_oci_layout(directory, tag=tag, digest=digest, platform=platform, store=store,
                           what=f"the OCI layout {directory}")
    name = f"{Path(directory).name}:{tag}" if tag else Path(directory).name
    return OpenedImage(read.image, store, name, read.digest)


def _only_manifest(directory: Path) -> str | None:
    """The digest of the layout's only image, which `oci:DIR` without a tag means (as for skopeo); None when
    the layout has several (then the tag `latest` is looked for) or its index cannot be read (the reader
    reports that)."""
    import json

    try:
        manifests = json.loads((directory / "index.json").read_bytes()).get("manifests")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(manifests, list) and len(manifests) == 1 and isinstance(manifests[0], dict):
        digest = manifests[0].get("digest")
        return digest if isinstance(digest, str) else None
    return None


def _pull(text: str, platform: Platform, environ: Mapping[str, str], store_root: Path | None,
          insecure_registries: tuple[str, ...]) -> OpenedImage:
    from ..image.reference import parse_reference
    from ..options import default_cache_root
    from ..registry.client import RegistryClient
    from ..registry.pull import pull_image
    from ..registry.tls import TLSSettings

    reference = parse_reference(text)
    store = BlobStore(store_root or default_cache_root(dict(environ)) / "store")
    tls = TLSSettings.from_environment(environ, insecure=insecure_registries)
    try:
        client = RegistryClient(environ=environ, tls=tls, insecure_registries=insecure_registries)
        pulled = pull_image(client, reference, platform, store)
    finally:
        tls.close()
    return OpenedImage(pulled.image, store, str(reference), pulled.digest)
