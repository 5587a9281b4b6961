"""A benchmark's comparison as a PNG bar chart, written next to its table: one group of bars per workload, one
bar per tool (median seconds), the ratio printed over the group.

Drawn by Debian's python3 with python3-matplotlib (scripts/install.sh installs it), in a child process: the
benchmarks run in dockyard's virtualenv, which does not have matplotlib and must not need it (it is no
dependency of dockyard). Without it the chart is left out with a note; the table is the record.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"

_DRAW = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

spec = json.load(sys.stdin)
groups, tools = spec["groups"], spec["tools"]
width = 0.8 / len(tools)
fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(groups) + 2), 4.5), dpi=110)
for t, tool in enumerate(tools):
    xs = [g + (t - (len(tools) - 1) / 2) * width for g in range(len(groups))]
    values = [group["seconds"].get(tool) or 0 for group in groups]
    bars = ax.bar(xs, values, width, label=tool)
    ax.bar_label(bars, labels=[f"{v:.2f}" if v else "failed" for v in values], fontsize=7, padding=2)
top = max([v or 0 for group in groups for v in group["seconds"].values()] + [1])
for g, group in enumerate(groups):
    if group.get("note"):
        ax.text(g, top * 1.12, group["note"], ha="center", fontsize=8)
ax.set_ylim(0, top * 1.25)
ax.set_xticks(range(len(groups)), [group["name"] for group in groups], fontsize=8)
ax.set_ylabel("seconds (median)")
ax.set_title(spec["title"], fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(spec["path"])
"""


def write_chart(path: Path, title: str, tools: Sequence[str], groups: Sequence[dict]) -> bool:
    """Draws `groups` ({"name", "seconds": {tool: seconds or None}, "note": e.g. "ratio 0.52"}) into `path`;
    False (and a note printed) when this machine cannot draw it."""
    spec = {"path": str(path), "title": title, "tools": list(tools), "groups": list(groups)}
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", _DRAW], input=json.dumps(spec), capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"no chart: {exc}")
        return False
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"no chart ({last}); install python3-matplotlib to get one")
        return False
    print(f"chart: {path}")
    return True
