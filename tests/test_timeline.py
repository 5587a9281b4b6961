"""The build's timeline (core/timeline.py) from the steps' records, and its mermaid Gantt chart in the GitHub job
summary (integrations/common/timeline.py, integrations/github/summary.py)."""

from __future__ import annotations

from dockyard.stage.services import StepRecord
from dockyard.timeline import timeline

from integrations.common.timeline import gantt
from integrations.github.log import GroupedLog
from integrations.github.summary import render

T0 = 1_700_000_000.0


def record(step: int, stage: str, text: str, start: float, duration: float, cached: bool | None = None) -> StepRecord:
    return StepRecord(step, text, "Dockerfile", step, duration=duration, cached=cached, started=T0 + start,
                      stage=stage)


STEPS = [record(1, "a", "FROM busybox AS a", 0.0, 0.2), record(2, "a", "RUN make: all # slow; really", 0.2, 3.0),
         record(3, "b", "FROM busybox AS b", 0.1, 0.2), record(4, "b", "RUN fetch", 0.3, 1.0, cached=True),
         record(5, "", "FROM busybox", 3.3, 0.1), record(6, "", "COPY --from=a /x /x", 3.4, 0.2, cached=False)]


def test_timeline_of_two_stages_that_overlapped():
    doc = timeline(STEPS, T0, 3.7)
    stages = {s["stage"]: s for s in doc["stages"]}
    assert [s["stage"] for s in doc["stages"]] == ["a", "b", ""]  # in the order they started
    assert (stages["a"]["start"], stages["a"]["end"], stages["a"]["steps"]) == (0.0, 3.2, [1, 2])
    assert (stages["b"]["start"], stages["b"]["end"], stages["b"]["steps"]) == (0.1, 1.3, [3, 4])
    assert stages["b"]["start"] < stages["a"]["end"]
    assert [(s["step"], s["cached"]) for s in doc["steps"]] == [(1, None), (2, None), (3, None), (4, True),
                                                                 (5, None), (6, False)]
    assert doc["duration"] == 3.7


def test_gantt_marks_cache_hits_and_the_slowest_step_and_keeps_names_safe():
    lines = gantt(timeline(STEPS, T0, 3.7))
    assert lines[:2] == ["gantt", "    dateFormat x"]
    assert "    section a" in lines and "    section b" in lines
    slow = next(line for line in lines if "[2]" in line)
    assert slow == "    [2] RUN make all slow really :crit, s2, 200, 3200"  # no `:`, `#`, `;` in a name
    assert next(line for line in lines if "[4]" in line) == "    [4] RUN fetch (cached) :done, s4, 300, 1300"
    assert next(line for line in lines if "[6]" in line).endswith(":active, s6, 3400, 3600")
    assert gantt({}) == []


def test_the_job_summary_carries_the_chart():
    metadata = {"digest": "sha256:" + "1" * 64, "config_digest": "sha256:" + "2" * 64, "platform": "linux/amd64",
                "platforms": [], "pushed": [], "tags": [], "layers": [], "cache": {},
                "timeline": timeline(STEPS, T0, 3.7)}
    text = render(GroupedLog(), metadata)
    assert "### Timeline (3.7s)\n\n```mermaid\ngantt\n" in text
    assert "```mermaid" not in render(GroupedLog(), {**metadata, "timeline": {}})
