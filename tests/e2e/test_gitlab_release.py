"""dockyard's own GitLab pipeline (.gitlab-ci.yml) under gitlab-ci-local, from a copy of this repository: the
component test (templates/build.yml from the commit, dockyard from the commit installed in the job) builds and
pushes its image to the project's registry (the loopback test registry, with a password); on a version tag the
catalog release's jobs run as a dry run.

What is a stand-in: gitlab-ci-local's shell executor runs the jobs on this host (it ignores `image:`), pip
installs from a wheelhouse repacked from this virtualenv instead of PyPI, and the `release:` keyword is not
executed (GitLab's release-cli does that on a runner: it creates the release and publishes the catalog version);
the test checks what the keyword would be given: the tag the catalog takes and the notes file the job wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.registry import RegistryServer
from tests.support.repository_copy import copy_repository
from tests.support.wheelhouse import build_wheelhouse

REPO = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = REPO / ".ci" / "node" / "node_modules" / ".bin" / "gitlab-ci-local"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
USER, PASSWORD = "gitlab-ci-token", "job-token-5ecret"

pytestmark = pytest.mark.skipif(not GITLAB_CI_LOCAL.exists() or not shutil.which("skopeo"),
                                reason="gitlab-ci-local (scripts/install.sh: npm ci --prefix .ci/node) or skopeo "
                                       "is missing")


@pytest.fixture(scope="module")
def project_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("gitlab-registry"), htpasswd={USER: PASSWORD})
    yield server
    server.stop()


def run_pipeline(project: Path, registry_host: str, base: str, wheelhouse: Path, *jobs: str,
                 **variables: str) -> subprocess.CompletedProcess:
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    env.pop("DOCKER_CONFIG", None)
    variables = {"CI_REGISTRY": registry_host, "CI_REGISTRY_USER": USER, "CI_REGISTRY_PASSWORD": PASSWORD,
                 "CI_REGISTRY_IMAGE": f"{registry_host}/group/dockyard", "COMPONENT_TEST_BASE": base,
                 "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), **variables}
    command = [str(GITLAB_CI_LOCAL), "--shell-isolation=false", "--force-shell-executor", "--no-color", *jobs]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)


def registry_digest(reference: str) -> str:
    result = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                             "--format", "{{.Digest}}", f"docker://{reference}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_version_tag_tests_the_component_and_dry_runs_the_catalog_release(project_registry, busybox_base,
                                                                             tmp_path):
    wheelhouse = build_wheelhouse(tmp_path / "wheelhouse")
    project = copy_repository(tmp_path / "project", tag=f"v{VERSION}")
    result = run_pipeline(project, project_registry.host, busybox_base, wheelhouse, CI_COMMIT_TAG=f"v{VERSION}")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-8000:]
    for job in ("component-test", "component-test-result", "release-notes", "catalog-publish"):
        assert f"PASS  {job}" in result.stdout, out[-8000:]

    # The component pushed the image built with dockyard from this commit, under the short sha.
    short_sha = subprocess.run(["git", "-C", str(project), "rev-parse", "--short=8", "HEAD"], capture_output=True,
                               text=True, check=True).stdout.strip()
    digest = registry_digest(f"{project_registry.host}/group/dockyard/component-test:{short_sha}")
    assert f"component-test pushed {project_registry.host}/group/dockyard/component-test@{digest}" in out

    # What the release keyword is given: the notes the job wrote (the changelog's section) and the catalog's
    # bare version, checked against the tag in the job.
    notes = subprocess.run([sys.executable, str(REPO / "scripts" / "release.py"), "notes", VERSION],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    assert (project / "release-notes.md").read_text() == notes
    assert f"as {VERSION} to the CI/CD catalog" in out
    release = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())["catalog-publish"]["release"]
    assert release == {"tag_name": "$CATALOG_VERSION", "ref": "$CI_COMMIT_SHA", "name": "dockyard $CATALOG_VERSION",
                       "description": "./release-notes.md"}


def test_a_tag_that_is_not_the_version_publishes_nothing(project_registry, busybox_base, tmp_path):
    """v9.9.9 on a commit whose pyproject.toml says otherwise: the notes job (run alone: the component test is the
    test above's) fails with the check's message, and the catalog job needs it, so nothing is published."""
    project = copy_repository(tmp_path / "project", tag="v9.9.9")
    result = run_pipeline(project, project_registry.host, busybox_base, tmp_path, "release-notes",
                          CI_COMMIT_TAG="v9.9.9")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "FAIL  release-notes" in result.stdout, out[-8000:]
    assert "the tag v9.9.9 is not pyproject.toml's version" in out
    assert not (project / "release-notes.md").exists()
    assert "release-notes" in yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())["catalog-publish"]["needs"]
