"""What a build made: the image, its digest, where it went and what each step did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TYPE_CHECKING

from .stage.services import StepRecord
from .image.model import Image

if TYPE_CHECKING:
    from .image.index import ImageIndex


@dataclass(frozen=True)
class BuildResult:
    """What a build made: the image and its digest, where it was tagged and pushed, and what each step did."""

    digest: str
    image: Image
    tags: tuple[str, ...]
    steps: tuple[StepRecord, ...]
    pushed: tuple[str, ...] = ()
    duration: float = 0.0
    warnings: tuple[str, ...] = field(default=())
    images: tuple[Image, ...] = ()  # one per platform, in --platform order (`image` is the first)
    index: ImageIndex | None = None  # the image index of a build of several platforms

    @property
    def config_digest(self) -> str:
        return self.image.config_descriptor().digest

    def metadata(self) -> dict[str, Any]:
        """--metadata-file's document: BuildKit's containerimage.* keys, then dockyard's own account of the build."""
        return {
            "containerimage.digest": self.digest,
            "containerimage.config.digest": self.config_digest,
            "image.name": ",".join(self.tags),
            "digest": self.digest,
            "config_digest": self.config_digest,
            "tags": list(self.tags),
            "pushed": list(self.pushed),
            "platform": str(self.image.platform),
            "layers": [{"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type,
                        "diff_id": layer.diff_id} for layer in self.image.layers],
            "steps": [{"step": s.step, "instruction": s.instruction, "file": s.file, "line": s.line,
                       "duration": round(s.duration, 4), "cached": s.cached, "cache_source": s.cache_source,
                       "layer": s.layer.digest if s.layer else None} for s in self.steps],
            "cache": {"hits": sum(s.cached is True for s in self.steps),
                      "misses": sum(s.cached is False for s in self.steps)},
            "duration": round(self.duration, 4),
        }
