"""The build's timeline (the metadata file's `timeline`, core/timeline.py) as a mermaid Gantt chart, which
GitHub renders in a job summary: a section per stage, a bar per step, so stages that ran at the same time,
cache hits and the slow step show at a glance."""

from __future__ import annotations

import re
from typing import Any

# A task's name ends at a colon in mermaid's Gantt syntax, and `#`, `;` start comments or end statements.
_UNSAFE = re.compile(r"[:#;\n\r]+")
NAME_LIMIT = 48


def _name(text: str) -> str:
    name = " ".join(_UNSAFE.sub(" ", text).split())
    return name if len(name) <= NAME_LIMIT else name[:NAME_LIMIT - 1] + "…"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def gantt(timeline: dict[str, Any]) -> list[str]:
    """The mermaid lines (inside no fence): times in milliseconds after the build's start (`dateFormat x`);
    a cache hit is `done`, a step that failed or the slowest step that ran is `crit`, any other step `active`."""
    steps = timeline.get("steps") or []
    if not steps:
        return []
    ran = [s for s in steps if not s.get("cached")]
    slowest = max(ran, key=lambda s: s["end"] - s["start"], default=None)
    lines = ["gantt", "    dateFormat x", "    axisFormat %M:%S", "    todayMarker off"]
    by_step = {s["step"]: s for s in steps}
    for stage in timeline.get("stages") or []:
        label = (stage["stage"] or "stage") + (f" ({stage['platform']})" if stage.get("platform") else "")
        lines.append(f"    section {_name(label)}")
        for number in stage["steps"]:
            step = by_step.get(number)
            if step is None:
                continue
            tag = ("done" if step.get("cached") else
                   "crit" if step is slowest or step.get("failed") else "active")
            start, end = _ms(step["start"]), max(_ms(step["end"]), _ms(step["start"]) + 1)  # a bar, not a point
            text = f"[{number}] {step['instruction']}" + (" (cached)" if step.get("cached") else "")
            lines.append(f"    {_name(text)} :{tag}, s{number}, {start}, {end}")
    return lines
