"""A step's layer being written on the snapshot thread while the next RUN runs (executor.py commit_layer)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..dockerfile import instructions as ins
from ..errors import DockyardError, StepFailed
from ..image.model import Layer


class LayerWriting:
    """What the step still has to do once its layer is known (put the layer in the image, record its cache entry,
    report it finished) is queued with `then`, and done in order by `finish`, which the executor calls before
    anything that reads the image or the root's ChainID: at the latest, when that next RUN is committed. So a
    RUN's command and the snapshot of the step before it run at the same time, each on a core of its own."""

    def __init__(self, future: Future[tuple[Layer, Any]], inst: ins.Instruction) -> None:
        self._future = future
        self._inst = inst
        self._then: list[Callable[[Layer], None]] = []
        self._failed: list[Callable[[], None]] = []
        self.done_at = 0.0  # when the layer was written: the end of the step, for its duration
        future.add_done_callback(self._mark_done)

    def _mark_done(self, _future: Future[tuple[Layer, Any]]) -> None:
        self.done_at = time.monotonic()

    def then(self, action: Callable[[Layer], None], failed: Callable[[], None] | None = None) -> None:
        self._then.append(action)
        if failed is not None:
            self._failed.append(failed)

    def finish(self) -> Layer:
        try:
            try:
                layer, _ = self._future.result()
            except OSError as exc:
                raise StepFailed(f"{self._inst.keyword} failed: {exc}") from None
        except DockyardError as exc:
            if exc.location is None:
                exc.location = self._inst.location
            for failed in self._failed:
                failed()
            raise
        for action in self._then:
            action(layer)
        return layer
