"""The job summary (Markdown for $GITHUB_STEP_SUMMARY): the image, where it went, and every step.

Image facts come from dockyard's `--metadata-file`; the step table from the build's events, which also exist
when the build failed half-way (then there is no metadata file) and name each step's stage; a failure from its
`BuildFailed` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard import ScanReport, render_scan

from ..common.failure import location, paragraph, title
from ..common.public import format_duration, format_size
from ..common.supplychain import attestation_lines, signature_lines
from ..common.timeline import gantt
from .log import GroupedLog


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code_digests(text: str) -> str:
    """The line with each digest and reference (`sha256:...`, `REPO:sha256-....sig`) in code spans."""
    return " ".join(f"`{word}`" if "sha256" in word else word for word in text.split(" "))


def render(log: GroupedLog, metadata: dict[str, Any] | None) -> str:
    failed = metadata is None
    lines = ["## dockyard build " + ("failed" if failed else "succeeded"), ""]
    if metadata is not None:
        platforms = metadata.get("platforms") or []
        lines.append(f"- digest: `{metadata['digest']}`" + (" (the image index)" if len(platforms) > 1 else ""))
        if len(platforms) > 1:
            lines += [f"- platform `{entry['platform']}`: `{entry['digest']}`" for entry in platforms]
        else:
            lines += [f"- image id: `{metadata['config_digest']}`", f"- platform: `{metadata['platform']}`"]
        lines += [f"- pushed: `{ref}`" for ref in metadata.get("pushed", [])]
        lines += [f"- tag (not pushed): `{t}`" for t in metadata.get("tags", []) if t not in metadata.get("pushed", [])]
        cache = metadata.get("cache") or {}
        lines += [f"- cache: {cache.get('hits', 0)} hit(s), {cache.get('misses', 0)} miss(es)",
                  f"- layers: {len(metadata['layers'])}, "
                  f"{format_size(sum(layer['size'] for layer in metadata['layers']))} compressed"]
        lines += [f"- attested {_code_digests(line)}" for line in attestation_lines(metadata)]
        lines += [f"- signed {_code_digests(line)}" for line in signature_lines(metadata)]
        lines.append("")
        lines += timeline_section(metadata)
    elif log.failure is not None:
        where = location(log.failure)
        lines += [f"**{title(log.failure)}**" + (f" at `{where}`" if where else ""), "",
                  "```", *paragraph(log.failure, with_location=False).splitlines(), "```", ""]
    elif log.other_lines:
        lines += ["```", *log.other_lines, "```", ""]
    lines += ["| step | stage | instruction | result | duration | layer |", "| ---: | --- | --- | --- | ---: | ---: |"]
    for number, started in sorted(log.steps.items()):
        done = log.finished.get(number)
        if done is None:
            result, duration, layer = "not finished", "", ""
        else:
            result = "failed" if done.failed else "cached" if done.cached else "ran"
            duration = format_duration(done.duration)
            layer = format_size(done.layer_size) if done.layer_size is not None else ""
        lines.append(f"| {number} | {_cell(started.stage)} | `{_cell(started.text)}` | {result} | {duration} "
                     f"| {layer} |")
    return "\n".join(lines) + "\n"


def timeline_section(metadata: dict[str, Any]) -> list[str]:
    """The build's timeline as a mermaid Gantt chart (GitHub renders it): which stages ran at the same time,
    what came from the cache, the slowest step. Nothing for a metadata file without a timeline."""
    chart = gantt(metadata.get("timeline") or {})
    if not chart:
        return []
    duration = (metadata.get("timeline") or {}).get("duration")
    heading = "### Timeline" + (f" ({format_duration(duration)})" if duration is not None else "")
    return [heading, "", "```mermaid", *chart, "```", ""]


def render_merge(log: GroupedLog, metadata: dict[str, Any] | None) -> str:
    """The summary of merge mode: the index, its tags, the sources, and each platform's entry."""
    if metadata is None:
        lines = ["## dockyard manifest create failed", ""]
        if log.failure is not None:
            lines += ["```", *paragraph(log.failure).splitlines(), "```"]
        elif log.other_lines:
            lines += ["```", *log.other_lines, "```"]
        return "\n".join(lines) + "\n"
    lines = ["## dockyard manifest create succeeded", "", f"- index: `{metadata['digest']}`"]
    lines += [f"- pushed: `{ref}`" for ref in metadata["pushed"]]
    lines += [f"- tag (not pushed): `{t}`" for t in metadata["tags"] if t not in metadata["pushed"]]
    lines += [f"- source: `{source}`" for source in metadata["sources"]]
    if metadata["platforms"]:
        lines += ["", "| platform | manifest |", "| --- | --- |"]
        lines += [f"| {_cell(entry['platform'] or '(none: an attestation)')} | `{entry['digest']}` |"
                  for entry in metadata["platforms"]]
    return "\n".join(lines) + "\n"


def scan_section(reports: Sequence[ScanReport]) -> str:
    """The vulnerability scan's table per platform (core/scan/reports.py's markdown); "" without a scan."""
    if not reports:
        return ""
    return "\n" + render_scan(reports, "markdown", heading="###")
