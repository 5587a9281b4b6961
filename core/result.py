"""What a build made: the image (one per platform, and their index), its digest, where it went and what each
step did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stage.services import StepRecord
from .timeline import timeline
from .image.index import ImageIndex
from .image.model import Image

# BuildKit's key in a manifest descriptor of its metadata for the image's config digest.
CONFIG_DIGEST_ANNOTATION = "config.digest"


@dataclass(frozen=True)
class BuildResult:
    """What a build made: the image and its digest, where it was tagged and pushed, and what each step did.
    A multi-platform build made `images` (one per platform, in --platform order; `image` is the first) and
    their `index`, whose digest is `digest`."""

    digest: str
    image: Image
    tags: tuple[str, ...]
    steps: tuple[StepRecord, ...]
    pushed: tuple[str, ...] = ()
    duration: float = 0.0
    warnings: tuple[str, ...] = field(default=())
    images: tuple[Image, ...] = ()
    index: ImageIndex | None = None
    # --sign: each signature stored (digest, repository, kind, and the `.sig` tag or the referrer's digest)
    signatures: tuple[dict[str, str], ...] = ()
    # One per attestation manifest written: {"platform", "digest", "subject", "predicateTypes"}.
    attestations: tuple[dict[str, Any], ...] = ()
    # --scan: each platform's scan report, as scan/model.py's report_to_json writes it.
    scans: tuple[dict[str, Any], ...] = ()
    # When the build started (seconds since the epoch): the origin of the metadata's timeline.
    started: float = 0.0

    @property
    def platform_images(self) -> tuple[Image, ...]:
        """The image of each platform (`image` alone when the builder gave no list)."""
        return self.images or (self.image,)

    @property
    def descriptor(self) -> dict[str, Any]:
        """BuildKit's containerimage.descriptor: the index's, or the manifest's with its platform and config."""
        if self.index is not None:
            return self.index.descriptor().to_json()
        body = self.image.manifest_bytes()
        platform = {"architecture": self.image.platform.architecture, "os": self.image.platform.os}
        if self.image.platform.variant:
            platform["variant"] = self.image.platform.variant
        return {"mediaType": self.image.manifest_media_type, "digest": self.image.digest, "size": len(body),
                "annotations": {CONFIG_DIGEST_ANNOTATION: self.config_digest}, "platform": platform}

    @property
    def config_digest(self) -> str:
        return self.image.config_descriptor().digest

    def metadata(self) -> dict[str, Any]:
        """--metadata-file's document: BuildKit's containerimage.* keys, then dockyard's own account of the build."""
        doc: dict[str, Any] = {
            "containerimage.digest": self.digest,
            "containerimage.config.digest": self.config_digest,
            "containerimage.descriptor": self.descriptor,
            "image.name": ",".join(self.tags),
            "digest": self.digest,
            "config_digest": self.config_digest,
            "tags": list(self.tags),
            "pushed": list(self.pushed),
            "platform": str(self.image.platform),
            "platforms": [{"platform": str(image.platform), "digest": image.digest,
                           "config_digest": image.config_descriptor().digest} for image in self.platform_images],
            "layers": [{"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type,
                        "diff_id": layer.diff_id} for layer in self.image.layers],
            "steps": [{"step": s.step, "instruction": s.instruction, "file": s.file, "line": s.line,
                       "duration": round(s.duration, 4), "cached": s.cached, "cache_source": s.cache_source,
                       "layer": s.layer.digest if s.layer else None} for s in self.steps],
            "cache": {"hits": sum(s.cached is True for s in self.steps),
                      "misses": sum(s.cached is False for s in self.steps)},
            "duration": round(self.duration, 4),
            "attestations": [dict(a) for a in self.attestations],
        }
        if self.scans:  # --scan: one report per platform (scan/model.py's report_from_json reads them back)
            doc["dockyard.scan"] = [dict(s) for s in self.scans]
        if self.started:  # when each stage and step ran (timeline.py)
            doc["timeline"] = timeline(self.steps, self.started, self.duration)
        if self.signatures:  # --sign: what was signed and where each signature is stored
            doc["signatures"] = [dict(s) for s in self.signatures]
        return doc
