"""Session-wide state of the compatibility corpus: base images, buildah's shared storage, dockyard's shared
blob cache, and the per-case timings printed at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class CorpusSession:
    bases: dict[str, str]  # build args every case gets: BASE, FIDELITY_BASE
    buildah_workdir: Path  # one storage for every case: buildah's layer cache and pulled bases are shared
    dockyard_cache: Path  # XDG_CACHE_HOME of every dockyard build: pulled base blobs are shared
    timings: list[tuple[str, dict[str, float]]] = field(default_factory=list)


_sessions: list[CorpusSession] = []


@pytest.fixture(scope="session")
def corpus_session(busybox_base, fidelity_base, tmp_path_factory) -> CorpusSession:
    session = CorpusSession(
        bases={"BASE": busybox_base, "FIDELITY_BASE": fidelity_base},
        buildah_workdir=tmp_path_factory.mktemp("corpus-buildah"),
        dockyard_cache=tmp_path_factory.mktemp("corpus-dockyard-cache"),
    )
    _sessions.append(session)
    return session


def pytest_terminal_summary(terminalreporter):
    timings = [t for s in _sessions for t in s.timings]
    if not timings:
        return
    total = sum(sum(phases.values()) for _, phases in timings)
    terminalreporter.section("compat corpus timing")
    terminalreporter.write_line(f"{len(timings)} cases, {total:.1f} s, {total / len(timings):.1f} s per case")
    phases: dict[str, float] = {}
    for _, per_case in timings:
        for phase, secs in per_case.items():
            phases[phase] = phases.get(phase, 0.0) + secs
    terminalreporter.write_line("by phase: " + ", ".join(f"{p} {s:.1f} s" for p, s in phases.items()))
    slowest = sorted(timings, key=lambda t: -sum(t[1].values()))[:5]
    terminalreporter.write_line("slowest: " + ", ".join(f"{n} {sum(p.values()):.1f} s" for n, p in slowest))
