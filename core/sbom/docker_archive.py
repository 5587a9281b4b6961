"""Reading an image out of a `docker save` tarball (docker-archive): its `manifest.json` names the config and
the layer tars, which are read in place (nothing is extracted or copied)."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from typing import Any, BinaryIO, cast

from ..errors import ContextError
from ..image.model import OCI_LAYER, Descriptor, Image, Layer

_BLOB_NAME = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")


class DockerArchive:
    """An open docker-archive; `open(digest)` reads one of its layers (the BlobSource the catalog reads)."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._tar = tarfile.open(path, mode="r:*")
        except (OSError, tarfile.TarError) as exc:
            raise ContextError(f"cannot read the docker archive {path}: {getattr(exc, 'strerror', None) or exc}",
                               hint="give a tarball written by `docker save` or `--output type=docker`") from None
        self._members: dict[str, str] = {}

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> DockerArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, name: str) -> bytes:
        try:
            member = self._tar.extractfile(name.lstrip("/"))
        except KeyError:
            member = None
        if member is None:
            raise ContextError(f"the docker archive {self.path} has no file {name}",
                               hint="the archive is incomplete: write it again")
        return member.read()

    def image(self, tag: str | None = None) -> tuple[Image, str, str]:
        """The image (the one tagged `tag`, or the only one), its name, and its id (the config's digest: a
        docker archive holds no manifest digest)."""
        try:
            entries = json.loads(self._read("manifest.json"))
        except ValueError:
            raise ContextError(f"{self.path}: manifest.json is not valid JSON") from None
        if not isinstance(entries, list) or not entries:
            raise ContextError(f"{self.path}: manifest.json lists no image")
        entry = _choose(entries, tag, self.path)
        config_bytes = self._read(str(entry.get("Config", "")))
        try:
            config = json.loads(config_bytes)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise ContextError(f"{self.path}: the image config {entry.get('Config')} is malformed") from None
        layer_names = [str(name) for name in entry.get("Layers") or []]
        if len(layer_names) != len(diff_ids):
            raise ContextError(f"{self.path}: manifest.json lists {len(layer_names)} layers but the config "
                               f"{len(diff_ids)} diff_ids", hint="write the archive again")
        layers = []
        for name, diff_id in zip(layer_names, diff_ids):
            match = _BLOB_NAME.match(name)
            # A legacy ID/layer.tar is the uncompressed tar, whose digest is its diff_id.
            digest = f"sha256:{match.group(1)}" if match else diff_id
            self._members[digest] = name
            layers.append((Descriptor(OCI_LAYER, digest, 0), diff_id))

        image = Image.from_documents({}, config, [Layer(d, i) for d, i in layers])
        tags = entry.get("RepoTags") or []
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        return image, str(tags[0]) if tags else "", image_id

    def open(self, digest: str) -> BinaryIO:
        name = self._members.get(digest)
        member = self._tar.extractfile(name) if name is not None else None
        if member is None:
            raise FileNotFoundError(digest)
        return cast(BinaryIO, member)


def _choose(entries: list[Any], tag: str | None, path: str) -> dict[str, Any]:
    images = [e for e in entries if isinstance(e, dict)]
    if tag is None:
        if len(images) != 1:
            names = ", ".join(t for e in images for t in e.get("RepoTags") or []) or "untagged images"
            raise ContextError(f"the docker archive {path} holds {len(images)} images ({names})",
                               hint="choose one with docker-archive:FILE:NAME:TAG")
        return images[0]
    for entry in images:
        if tag in (entry.get("RepoTags") or []):
            return entry
    raise ContextError(f"the docker archive {path} has no image tagged {tag}",
                       hint="its tags: " + (", ".join(t for e in images for t in e.get("RepoTags") or []) or "none"))
