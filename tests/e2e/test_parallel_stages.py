"""Independent stages built at the same time (`--jobs N`, core/stage/schedule.py): the stages really overlap,
the image is the one a build of one stage at a time makes, a failure in one stage stops the others (a RUN
running elsewhere is killed) and the build reports that failure, and the metadata file carries the timeline.

That two stages run at the same time is shown without a clock: each stage's RUN waits for a file the other
stage's RUN writes into a shared cache mount, so the build succeeds only when both RUNs are running together
(one stage at a time, the first RUN gives up after its bounded wait and the build fails)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from dockyard.errors import StepFailed

from tests.e2e.helpers import dockyard, write_context

MEET = "--mount=type=cache,target=/meet,id=meet,sharing=shared"


def waits_for(mine: str, other: str) -> str:
    """A RUN that says it runs (the file `mine`) and waits, at most 60 s, until the other stage's RUN runs too."""
    return (f"RUN {MEET} touch /meet/{mine} && i=0; until [ -e /meet/{other} ]; do i=$((i+1)); "
            f"[ $i -lt 600 ] || {{ echo gave up waiting for {other}; exit 9; }}; sleep 0.1; done; "
            f"echo {mine} > /{mine}.txt\n")


def meeting_stages(base: str) -> str:
    return (f"FROM {base} AS a\n{waits_for('a', 'b')}"
            f"FROM {base} AS b\n{waits_for('b', 'a')}"
            f"FROM {base}\nCOPY --from=a /a.txt /\nCOPY --from=b /b.txt /\n")


def build(tmp_path: Path, name: str, dockerfile: str, *args: str) -> tuple[int, str, dict | None]:
    context = write_context(tmp_path / name, {"Dockerfile": dockerfile})
    meta = tmp_path / f"{name}.json"
    done = dockyard("build", "--progress", "plain", "--cache-dir", str(tmp_path / f"{name}-cache"),
                    "--work-dir", str(tmp_path / "work"), "--metadata-file", str(meta),
                    "--output", f"type=oci,dest={tmp_path / name}-oci", *args, str(context),
                    env={"SOURCE_DATE_EPOCH": "1700000000"})
    return done.returncode, done.stderr, json.loads(meta.read_text()) if meta.exists() else None


def test_independent_stages_run_at_the_same_time(busybox_base, tmp_path):
    code, stderr, meta = build(tmp_path, "together", meeting_stages(busybox_base), "--jobs", "2")
    assert code == 0, stderr
    assert meta is not None
    stages = {s["stage"]: s for s in meta["timeline"]["stages"]}
    assert stages["a"]["start"] < stages["b"]["end"] and stages["b"]["start"] < stages["a"]["end"]
    # The final stage starts once both are built.
    final = next(s for name, s in stages.items() if name not in ("a", "b"))
    assert final["start"] >= max(stages["a"]["end"], stages["b"]["end"]) - 0.01
    # Steps are numbered in Dockerfile order whatever order they ran in.
    assert [s["step"] for s in meta["steps"]] == [1, 2, 3, 4, 5, 6, 7]
    assert [s["instruction"].split()[0] for s in meta["steps"]] == ["FROM", "RUN", "FROM", "RUN", "FROM", "COPY",
                                                                    "COPY"]

    # One stage at a time, the same Dockerfile cannot be built: the first RUN waits in vain.
    code, stderr, _ = build(tmp_path, "one-at-a-time", meeting_stages(busybox_base), "--jobs", "1")
    assert code == StepFailed.exit_code
    assert "gave up waiting for b" in stderr


def test_parallel_and_sequential_builds_make_the_same_image(busybox_base, tmp_path):
    dockerfile = (f"FROM {busybox_base} AS tools\nRUN mkdir /out && echo tools > /out/tools && ls /bin | head -3 > "
                  "/out/bin\nENV T=1\n"
                  f"FROM {busybox_base} AS data\nWORKDIR /data\nRUN seq 1 500 | while read n; do echo $n > f$n; done\n"
                  "FROM tools AS more\nRUN echo more >> /out/tools\n"
                  f"FROM {busybox_base}\nCOPY --from=more /out /out\nCOPY --from=data /data /data\n"
                  "RUN cat /out/tools > /summary && ls /data | wc -l >> /summary\n")
    results = {}
    for jobs in ("1", "4"):
        code, stderr, meta = build(tmp_path, f"jobs-{jobs}", dockerfile, "--jobs", jobs, "--reproducible")
        assert code == 0, stderr
        assert meta is not None
        results[jobs] = (meta["digest"], [layer["digest"] for layer in meta["layers"]],
                         [(s["step"], s["instruction"]) for s in meta["steps"]])
    assert results["1"] == results["4"]


def test_a_failed_stage_stops_the_others(busybox_base, tmp_path):
    # Stage b's RUN is running (it said so in the shared cache mount) when stage a's fails: it is killed rather
    # than waited for (the sleep would outlast the test's timeout), and the build reports a's failure.
    marker = f"dockyard-parallel-test-{tmp_path.name}"
    dockerfile = (f"FROM {busybox_base} AS a\n"
                  f"RUN {MEET} until [ -e /meet/b-runs ]; do sleep 0.1; done; echo failing; exit 3\n"
                  f"FROM {busybox_base} AS b\n"
                  f"RUN {MEET} touch /meet/b-runs && sleep 1000 # {marker}\n"
                  f"FROM {busybox_base}\nCOPY --from=a / /a\nCOPY --from=b / /b\n")
    code, stderr, meta = build(tmp_path, "failing", dockerfile, "--jobs", "2")
    assert code == StepFailed.exit_code, stderr
    assert meta is None
    assert "Dockerfile:2" in stderr  # stage a's RUN: the failure reported is the one that happened first
    assert "RUN exited with 3" in stderr
    assert "stopping the stages still running" in stderr
    assert list((tmp_path / "work").iterdir()) == []
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout == "", "stage b's RUN outlived the build"
