"""The GitLab component's `cache-dir` input under gitlab-ci-local (as tests/e2e/test_gitlab_component.py runs
it): two pipelines, the job's `cache:` naming the directory, each run with an empty dockyard cache directory
(XDG_CACHE_HOME) as a fresh runner has; the second pipeline's build takes every step from the directory."""

from __future__ import annotations

import sys
import textwrap

import pytest

from tests.e2e.test_gitlab_component import GITLAB_CI_LOCAL, job_log, make_project, run_pipeline

pytestmark = pytest.mark.skipif(not GITLAB_CI_LOCAL.exists(), reason="gitlab-ci-local is missing "
                                                                    "(scripts/install.sh: npm ci --prefix .ci/node)")


def test_cache_dir_carries_the_steps_to_the_next_pipeline(busybox_base, tmp_path):
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: registry.invalid/group/app
              push: false
              cache: false
              cache-dir: .dockyard-cache
              context: app
              python: {sys.executable}
        dockyard-build:
          cache:
            key: dockyard
            paths: [.dockyard-cache/]
        """)
    dockerfile = f"FROM {busybox_base}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b\n"
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": dockerfile, "a.txt": "a\n"})
    logs = []
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
        result = run_pipeline(project, "registry.invalid", tmp_path / run, "--variable",
                              f"XDG_CACHE_HOME={tmp_path / run / 'xdg'}")
        assert result.returncode == 0, result.stdout + result.stderr
        logs.append(job_log(project, "dockyard-build"))
    assert "has nothing to import yet" in logs[0] and "CACHED" not in logs[0]
    assert "exported 2 cached steps to the local cache .dockyard-cache" in logs[0]
    assert logs[1].count("CACHED (from the local cache .dockyard-cache)") == 2, logs[1][-3000:]
    assert (project / ".dockyard-cache" / "index.json").is_file()
