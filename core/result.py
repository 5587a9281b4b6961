"""What a build made: the image, its digest, where it went and what each step did."""

from __future__ import annotations

from dataclasses import dataclass, field

from .executor import StepRecord
from .image.model import Image


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

    @property
    def config_digest(self) -> str:
        return self.image.config_descriptor().digest
