"""The version in one place: scripts/release.py finds every place that names dockyard's version and says which
disagree with pyproject.toml's; `set` writes one everywhere; the release's image tags and notes come from it.

The places are checked in this checkout (the test that fails when they disagree), and in copies of it where one
place was changed by hand (so the check can fail) or the version was set anew (so `set` reaches them all)."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "release.py"


def release(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(cwd / "scripts" / "release.py"), *args], capture_output=True,
                          text=True, timeout=60, env=env)


def places(root: Path = REPO) -> list[str]:
    """The files scripts/release.py checks (read from the script itself: one Place per line)."""
    import re

    return sorted(set(re.findall(r'Place\("([^"]+)"', (root / "scripts" / "release.py").read_text())))


def copy_checkout(target: Path) -> Path:
    for name in ["pyproject.toml", "CHANGELOG.md", "scripts/release.py", *places()]:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    return target


def test_every_place_names_pyprojects_version():
    result = release("check")
    assert result.returncode == 0, result.stderr
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout.strip() == version
    from dockyard.version import __version__

    assert __version__ == version


def test_a_place_left_behind_fails_the_check(tmp_path):
    root = copy_checkout(tmp_path)
    tekton = root / "examples/tekton/task/dockyard/0.1/dockyard.yaml"
    tekton.write_text(tekton.read_text().replace("dockyard:0.1.0", "dockyard:0.0.9"))
    gitlab_docs = root / "docs/gitlab.md"
    gitlab_docs.write_text(gitlab_docs.read_text().replace("build@0.1.0", "build@0.2.0", 1))
    result = release("check", cwd=root)
    assert result.returncode == 1
    assert ("examples/tekton/task/dockyard/0.1/dockyard.yaml: the Tekton Task's BUILDER_IMAGE names 0.0.9"
            in result.stderr)
    assert "docs/gitlab.md: the GitLab docs' component version and builder image names 0.2.0" in result.stderr
    assert "scripts/release.py set X.Y.Z" in result.stderr


def test_a_place_naming_no_version_fails_the_check(tmp_path):
    root = copy_checkout(tmp_path)
    template = root / "templates/build.yml"
    template.write_text(template.read_text().replace("ghcr.io/dockyard-build/dockyard:0.1.0", "example.com/x:1"))
    result = release("check", cwd=root)
    assert result.returncode == 1
    assert "templates/build.yml: names no version (the GitLab component's default builder-image)" in result.stderr


def test_set_writes_the_version_everywhere(tmp_path):
    root = copy_checkout(tmp_path)
    assert release("set", "1.2.3", cwd=root).returncode == 0
    assert release("check", "--tag", "v1.2.3", cwd=root).stdout.strip() == "1.2.3"
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"] == "1.2.3"
    assert "ghcr.io/dockyard-build/dockyard:1.2.3-debug" in (root / "docs/migrating-from-kaniko.md").read_text()
    assert "dockyard@v1.2.3'" in (root / "docs/jenkins.md").read_text()
    assert "0.1.0" not in (root / "templates/build.yml").read_text()


def test_a_tag_that_is_not_the_version_fails(tmp_path):
    result = release("check", "--tag", "v9.9.9")
    assert result.returncode == 1 and "the tag v9.9.9 is not pyproject.toml's version" in result.stderr


@pytest.mark.parametrize(("version", "existing", "expected"), [
    ("1.2.3", "v1.2.2 v1.1.0", ["1.2.3", "1.2", "1", "latest"]),
    ("1.2.3", "v1.2.2 v2.0.0", ["1.2.3", "1.2", "1"]),          # a patch of an older line: not latest
    ("1.2.3", "v1.2.3 v1.3.0rc1", ["1.2.3", "1.2", "1", "latest"]),  # a pre-release does not count
    ("2.0.0rc1", "v1.2.3", ["2.0.0rc1"]),                        # a pre-release gets its own tag only
])
def test_image_tags(version, existing, expected):
    result = release("image-tags", version, "--existing-tags", existing)
    assert result.stdout.split() == expected


def test_notes_are_the_changelog_section(tmp_path):
    root = copy_checkout(tmp_path)
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n\n## [1.0.0] - 2027-01-02\n\n### Fixed\n\n"
                                       "- a thing\n\n## [0.9.0] - 2026-12-01\n\n- older\n\n"
                                       "[1.0.0]: https://example.com/1\n")
    assert release("notes", "1.0.0", cwd=root).stdout == "### Fixed\n\n- a thing\n"
    missing = release("notes", "1.1.0", cwd=root)
    assert missing.returncode != 0 and "CHANGELOG.md has no section `## [1.1.0]" in missing.stderr


def test_publish_release_posts_the_notes_and_digests(tmp_path):
    """GitHub's "create a release" call (POST /repos/OWNER/REPO/releases), answered by a loopback stand-in that
    records what it got."""
    received: list[tuple[str, dict, str]] = []

    class ReleaseAPI(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body, self.headers.get("Authorization", "")))
            answer = json.dumps({"html_url": "https://github.example/o/r/releases/tag/v0.1.0"}).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ReleaseAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    executor, debug = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    try:
        result = release("publish-release", "0.1.0", "--api-url", f"http://127.0.0.1:{server.server_port}",
                         "--repository", "o/r", "--tag", "v0.1.0", "--image", "ghcr.io/o/r",
                         "--executor", executor, "--tags", "ghcr.io/o/r:0.1.0,ghcr.io/o/r:latest",
                         "--debug", debug, "--debug-tags", "ghcr.io/o/r:0.1.0-debug",
                         env={"GITHUB_TOKEN": "job-token", "PATH": "/usr/bin:/bin"})
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    [(path, body, auth)] = received
    assert path == "/repos/o/r/releases" and auth == "Bearer job-token"
    assert body["tag_name"] == "v0.1.0" and body["name"] == "dockyard 0.1.0" and body["prerelease"] is False
    notes = release("notes", "0.1.0").stdout
    assert body["body"].startswith(notes)
    assert f"`ghcr.io/o/r@{executor}`, tagged `ghcr.io/o/r:0.1.0`, `ghcr.io/o/r:latest`" in body["body"]
    assert f"`ghcr.io/o/r@{debug}`" in body["body"]


def test_the_release_workflow_is_valid_and_gives_the_action_only_its_inputs():
    """.github/workflows/release.yml: valid for @action-validator/cli; each `uses: ./` step gives the action only
    inputs action.yml declares; no `${{` expression is interpolated into a `run:` script (script injection: values
    reach scripts through `env:`). tests/e2e/test_release_workflow.py runs it under act."""
    import yaml

    workflow = REPO / ".github" / "workflows" / "release.yml"
    validator = REPO / ".ci" / "node" / "node_modules" / ".bin" / "action-validator"
    assert validator.exists(), "run scripts/install.sh (npm ci --prefix .ci/node)"
    result = subprocess.run([str(validator), str(workflow)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = yaml.safe_load((REPO / "action.yml").read_text())["inputs"]
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    steps = [step for job in jobs.values() for step in job["steps"]]
    ours = [step for step in steps if step.get("uses") == "./"]
    assert len(ours) == 4 and all(set(step["with"]) <= set(declared) for step in ours)
    assert all("${{" not in step["run"] for step in steps if "run" in step)
    assert {"id-token": "write", "contents": "read"} == jobs["pypi"]["permissions"]
    assert jobs["merge"]["permissions"]["id-token"] == "write"
