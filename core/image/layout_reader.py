"""Read an image out of an OCI image layout directory (`index.json`, `blobs/ALG/HEX`) into the blob store: the
manifest a ref name or digest picks (an index resolved to the build's platform), its config and its layers,
each checked against its digest as it is copied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ContextError, RegistryError
from .blobs import BlobStore
from .model import Descriptor, Image, Layer, Platform, manifest_descriptors
from .layout import INDEX_FILE, REF_NAME

_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class LayoutImage:
    """An image read from a layout: the image, and the digest of its (platform) manifest."""

    image: Image
    digest: str


def read_oci_layout(layout: str | Path, *, tag: str | None, digest: str | None, platform: Platform,
                    store: BlobStore, what: str) -> LayoutImage:
    """The image `tag` (default latest) or `digest` names in the layout at `layout`. `what` names the layout
    in errors (e.g. the --build-context it came from)."""
    reader = _Layout(Path(layout), what)
    index = reader.document(reader.root / INDEX_FILE, INDEX_FILE)
    entry = _pick(index, tag, digest, reader)
    manifest_digest = entry.digest
    manifest = reader.blob_document(entry.digest)
    media_type = manifest.get("mediaType") or entry.media_type
    if media_type in _INDEX_TYPES or "manifests" in manifest:
        from ..registry.pull import select_platform

        try:
            chosen = select_platform(manifest, platform, what)  # type: ignore[arg-type]  # str() names it
        except RegistryError as exc:
            raise ContextError(exc.message, hint=exc.hint) from None
        manifest_digest = chosen.digest
        manifest = reader.blob_document(chosen.digest)
        media_type = manifest.get("mediaType") or chosen.media_type
    try:
        config_desc, layer_descs = manifest_descriptors(manifest)
    except ValueError:
        raise ContextError(f"{what}: the manifest {manifest_digest} is not an image manifest (no valid config or "
                           "layer list)") from None
    reader.copy_blob(config_desc.digest, store)
    try:
        config = json.loads(store.read_bytes(config_desc.digest))
        diff_ids = list(config["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError):
        raise ContextError(f"{what}: the image config {config_desc.digest} is malformed") from None
    if len(diff_ids) != len(layer_descs):
        raise ContextError(f"{what}: the manifest lists {len(layer_descs)} layers but the config "
                           f"{len(diff_ids)} diff_ids", hint="write the layout again")
    for desc in layer_descs:
        reader.copy_blob(desc.digest, store)
    image = Image.from_documents(manifest, config, [Layer(d, i) for d, i in zip(layer_descs, diff_ids)],
                                 manifest_media_type=media_type)
    return LayoutImage(image, manifest_digest)


def _pick(index: dict[str, Any], tag: str | None, digest: str | None, reader: _Layout) -> Descriptor:
    entries: list[Any] = index["manifests"] if isinstance(index.get("manifests"), list) else []
    parsed = []
    for entry in entries:
        try:
            parsed.append((Descriptor.from_json(entry), (entry.get("annotations") or {}).get(REF_NAME)))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    if digest is not None:
        for desc, _ in parsed:
            if desc.digest == digest:
                return desc
        if reader.blob_path(digest).is_file():  # a manifest below an index entry, pinned by digest
            return Descriptor("", digest, reader.blob_path(digest).stat().st_size)
        raise ContextError(f"{reader.what}: no manifest {digest} in the layout",
                           hint="list its images with `skopeo inspect oci:PATH` or read its index.json")
    wanted = tag or "latest"
    for desc, name in parsed:
        # A ref name may be a tag (`1.0`) or a whole reference (`registry/app:1.0`), as tools write both.
        if name == wanted or (name and ":" in name and name.rsplit(":", 1)[1] == wanted and "/" in name):
            return desc
    names = sorted({n for _, n in parsed if n})
    raise ContextError(f"{reader.what}: the layout has no image tagged {wanted!r}",
                       hint=f"its tags: {', '.join(names)}" if names else
                       "its images have no ref names: pick one with oci-layout://PATH@sha256:DIGEST")


class _Layout:
    def __init__(self, root: Path, what: str):
        self.root = root
        self.what = what

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def document(self, path: Path, shown: str) -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
        except OSError as exc:
            raise ContextError(f"{self.what}: cannot read {path}: {exc.strerror}",
                               hint="an OCI layout is a directory with index.json and blobs/, as written by "
                                    "--output type=oci,dest=DIR or skopeo copy ... oci:DIR") from None
        except ValueError:
            raise ContextError(f"{self.what}: {shown} is not valid JSON", hint="write the layout again") from None
        if not isinstance(data, dict):
            raise ContextError(f"{self.what}: {shown} is not a JSON object", hint="write the layout again")
        return data

    def blob_document(self, digest: str) -> dict[str, Any]:
        path = self.blob_path(digest)
        document = self.document(path, f"blob {digest}")
        from .model import sha256_digest

        if digest.startswith("sha256:") and sha256_digest(path.read_bytes()) != digest:
            raise ContextError(f"{self.what}: blob {digest} does not match its digest", hint="write the layout again")
        return document

    def copy_blob(self, digest: str, store: BlobStore) -> None:
        """Copy one blob into the store; the store's writer checks its digest."""
        path = self.blob_path(digest)
        try:
            if store.has(digest):
                return
            with open(path, "rb") as source, store.writer(expected_digest=digest) as blob:
                while chunk := source.read(1 << 20):
                    blob.write(chunk)
                blob.commit()
        except OSError as exc:
            raise ContextError(f"{self.what}: cannot read blob {digest}: {exc.strerror}",
                               hint="the layout is incomplete: write it again") from None
        except RegistryError:  # the store's digest checks
            raise ContextError(f"{self.what}: blob {digest} does not match its digest (or is no sha256 digest)",
                               hint="the layout is corrupt: write it again") from None
