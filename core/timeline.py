"""The build's timeline, for the metadata file: when each stage and step started and ended (seconds after the
build started), and whether a step came from the cache; what a CI summary draws as a Gantt chart to show which
stages ran at the same time, what was cached and which step was slow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .stage.services import StepRecord


def _seconds(value: float) -> float:
    return round(max(value, 0.0), 3)


def timeline(steps: Sequence[StepRecord], started: float, duration: float) -> dict[str, Any]:
    """{"duration", "stages": [{"stage", "platform", "start", "end", "steps": [numbers]}], "steps": [{"step",
    "stage", "platform", "instruction", "start", "end", "cached"}]}: stages in the order they started, steps in
    the build's numbering; times in seconds after `started` (the build's start, seconds since the epoch)."""
    timed = [s for s in steps if s.started]
    step_rows: list[dict[str, Any]] = [
        {"step": s.step, "stage": s.stage, "platform": s.platform, "instruction": s.instruction,
         "start": _seconds(s.started - started), "end": _seconds(s.started + s.duration - started),
         "cached": s.cached} for s in timed]
    stages: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in sorted(step_rows, key=lambda r: (r["start"], r["step"])):
        stage = stages.setdefault((row["stage"], row["platform"]), {
            "stage": row["stage"], "platform": row["platform"], "start": row["start"], "end": row["end"],
            "steps": []})
        stage["start"] = min(stage["start"], row["start"])
        stage["end"] = max(stage["end"], row["end"])
        stage["steps"].append(row["step"])
    for stage in stages.values():
        stage["steps"].sort()
    return {"duration": _seconds(duration), "stages": list(stages.values()),
            "steps": sorted(step_rows, key=lambda r: r["step"])}
