"""The GitLab component under a real pipeline runner: gitlab-ci-local 4.60.0 (npm, in .ci/node) runs pipelines
that include templates/build.yml with `include: local:` + `inputs:`, on its shell executor (which ignores the
job's `image:`, so the `python` input points the job at this test's virtualenv instead of the builder image's).

The image goes to a registry on loopback that wants a password, which the job has only as GitLab gives it:
CI_REGISTRY_USER/CI_REGISTRY_PASSWORD. A later job gets DOCKYARD_* through the dotenv report and checks the
digest against the registry with skopeo; the test reads the job log's sections and the code quality report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.registry import RegistryServer

REPO = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = REPO / ".ci" / "node" / "node_modules" / ".bin" / "gitlab-ci-local"
USER, PASSWORD = "gitlab-ci-token", "job-token-5ecret"

pytestmark = pytest.mark.skipif(not GITLAB_CI_LOCAL.exists() or not shutil.which("skopeo"),
                                reason="gitlab-ci-local (scripts/install.sh: npm ci --prefix .ci/node) or skopeo "
                                       "is missing")


@pytest.fixture(scope="module")
def project_registry(tmp_path_factory):
    """The project's container registry: only CI_REGISTRY_USER/CI_REGISTRY_PASSWORD may push."""
    server = RegistryServer.start(tmp_path_factory.mktemp("gitlab-registry"), htpasswd={USER: PASSWORD})
    yield server
    server.stop()


def make_project(root: Path, pipeline: str, app: dict[str, str]) -> Path:
    """A git repository holding the component's template, an app under app/ and the pipeline."""
    (root / "templates").mkdir(parents=True)
    for template in ("build.yml", "merge.yml"):
        shutil.copy2(REPO / "templates" / template, root / "templates" / template)
    for name, text in app.items():
        (root / "app" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "app" / name).write_text(text)
    (root / ".gitlab-ci.yml").write_text(pipeline)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True, timeout=60)
    subprocess.run([*git, "add", "-A"], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "-m", "app"], check=True, timeout=60)
    return root


def run_pipeline(project: Path, registry_host: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    home = tmp_path / "home"  # gitlab-ci-local reads $HOME/.gitlab-ci-local/variables.yml: none of the user's
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("DOCKER_CONFIG", None)
    variables = {"CI_REGISTRY": registry_host, "CI_REGISTRY_USER": USER, "CI_REGISTRY_PASSWORD": PASSWORD}
    command = [str(GITLAB_CI_LOCAL), "--shell-isolation=false", "--force-shell-executor", "--no-color", *extra]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)


def job_log(project: Path, job: str) -> str:
    """The job's log as gitlab-ci-local kept it, byte for byte (captured stdout would turn each section marker's
    carriage return into a newline)."""
    return (project / ".gitlab-ci-local" / "output" / f"{job}.log").read_bytes().decode()


def registry_digest(reference: str) -> str:
    result = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                             "--format", "{{.Digest}}", f"docker://{reference}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_component_pushes_and_a_later_job_gets_the_digest(project_registry, busybox_base, tmp_path):
    image = f"{project_registry.host}/group/app"
    dockerfile = textwrap.dedent(f"""\
        FROM {busybox_base}
        ARG GREETING
        ENV legacy form
        RUN echo "$GREETING" > /greeting.txt
        """)
    pipeline = textwrap.dedent(f"""\
        stages: [build, verify]
        include:
          - local: templates/build.yml
            inputs:
              image: {image}
              push: true
              context: app
              build-args: ["GREETING=hello from gitlab"]
              python: {sys.executable}
        verify:
          stage: verify
          needs: [dockyard-build]
          script:
            - test -n "$DOCKYARD_DIGEST"
            - test "$DOCKYARD_IMAGE_REF" = "$DOCKYARD_IMAGE@$DOCKYARD_DIGEST"
            - found=$(skopeo inspect --tls-verify=false --creds "$CI_REGISTRY_USER:$CI_REGISTRY_PASSWORD" --format '{{{{.Digest}}}}' "docker://$DOCKYARD_IMAGE_REF")
            - test "$found" = "$DOCKYARD_DIGEST"
            - echo "verified $DOCKYARD_DIGEST" | tee verified.txt
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": dockerfile})
    result = run_pipeline(project, project_registry.host, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  dockyard-build" in result.stdout and "PASS  verify" in result.stdout

    # The later job saw the digest through dotenv, and it is what the registry has under the default tags.
    verified = (project / "verified.txt").read_text().split()[1]
    short_sha = subprocess.run(["git", "-C", str(project), "rev-parse", "--short=8", "HEAD"], capture_output=True,
                               text=True, check=True).stdout.strip()
    for tag in ("main", short_sha, "latest"):
        assert registry_digest(f"{image}:{tag}") == verified

    # The password went only into the private docker config, never into the log.
    assert PASSWORD not in result.stdout + result.stderr
    log = job_log(project, "dockyard-build")
    assert f"logged in to {project_registry.host} as {USER}" in log
    sections = re.findall(r"\x1b\[0Ksection_(start|end):\d+:(\w+)", log)
    assert sections == [("start", "dockyard_stage_1"), ("end", "dockyard_stage_1"),
                        ("start", "dockyard_push"), ("end", "dockyard_push")]
    assert re.search(r"section_start:\d+:dockyard_stage_1\[collapsed=true\]\r\x1b\[0Kstage stage-0 \(FROM ", log)

    findings = json.loads((project / ".dockyard" / "gl-code-quality-report.json").read_text())
    by_rule = {f["check_name"]: f for f in findings}
    assert by_rule["LegacyKeyValueFormat"]["location"] == {"path": "app/Dockerfile", "lines": {"begin": 3, "end": 3}}
    assert all(f["severity"] in ("info", "minor", "major", "critical", "blocker") for f in findings)
    assert len({f["fingerprint"] for f in findings}) == len(findings)
    annotations = json.loads((project / ".dockyard" / "annotations.json").read_text())
    assert annotations["dockyard"][0]["external_link"]["label"] == f"image {image}@{verified}"


def test_a_failed_step_is_in_the_code_quality_report_at_its_line(project_registry, busybox_base, tmp_path):
    dockerfile = f"FROM {busybox_base}\nRUN true\nRUN echo broken >&2; exit 3\n"
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: {project_registry.host}/group/broken
              context: app
              cache: false
              python: {sys.executable}
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": dockerfile})
    result = run_pipeline(project, project_registry.host, tmp_path)
    assert result.returncode != 0 and "FAIL  dockyard-build" in result.stdout, result.stdout + result.stderr
    findings = json.loads((project / ".dockyard" / "gl-code-quality-report.json").read_text())
    failure = [f for f in findings if f["severity"] == "blocker"]
    assert len(failure) == 1 and failure[0]["location"]["path"] == "app/Dockerfile"
    assert failure[0]["location"]["lines"]["begin"] == 3
    assert not (project / ".dockyard" / "dockyard.env").exists()  # no image to hand on
    assert "broken" in job_log(project, "dockyard-build")


def test_build_contexts_input(project_registry, busybox_base, tmp_path):
    """The `build-contexts` array input: an image replacing `FROM base` and a directory of the project (relative
    to the project directory) for COPY --from; the pushed image holds both."""
    from tests.support import oracle, tree

    image = f"{project_registry.host}/group/contexts"
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: {image}
              context: app
              tags: [v1]
              build-contexts: ["base=docker-image://{busybox_base}", "shared=app/shared"]
              python: {sys.executable}
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": "FROM base\nCOPY --from=shared lib.txt /\n",
                                                             "shared/lib.txt": "shared\n"})
    result = run_pipeline(project, project_registry.host, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    layout = tmp_path / "oci"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds",
                    f"{USER}:{PASSWORD}", f"docker://{image}:v1", f"oci:{layout}:latest"],
                   check=True, capture_output=True, timeout=120)
    files = tree.flatten(oracle.unpack(layout, tmp_path / "bundle"))
    assert "/bin/busybox" in files and files["/lib.txt"].size == len("shared\n")


# --- several platforms ------------------------------------------------------------------------------------------
# The Dockerfile's one RUN runs on the build platform (FROM --platform=$BUILDPLATFORM): a two-platform build of it
# needs no QEMU, on this machine or on a runner.

TWO_PLATFORMS = ["linux/amd64", "linux/arm64"]
CREDS = f"{USER}:{PASSWORD}"


def test_platforms_input_pushes_one_index(project_registry, busybox_base, tmp_path):
    from tests.support.index_readback import check_native_only_index, native_only_dockerfile

    image = f"{project_registry.host}/group/multi"
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: {image}
              context: app
              tags: [v1]
              platforms: [linux/amd64, linux/arm64]
              python: {sys.executable}
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": native_only_dockerfile(busybox_base)})
    result = run_pipeline(project, project_registry.host, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    check_native_only_index(f"{image}:v1", TWO_PLATFORMS, tmp_path / "readback", creds=CREDS)
    dotenv = (project / ".dockyard" / "dockyard.env").read_text()
    assert f"DOCKYARD_DIGEST={registry_digest(f'{image}:v1')}" in dotenv  # the index's digest


def test_a_parallel_matrix_pushes_by_digest_and_the_merge_component_assembles_the_index(project_registry,
                                                                                         busybox_base, tmp_path):
    """docs/gitlab.md's distributed build: the build component's job under `parallel: matrix`, one platform per
    job (`platforms: [$PLATFORM]`, `push-by-digest: true`), then the merge component tags the index; a later job
    gets the index through dotenv. gitlab-ci-local runs the matrix jobs one at a time (`--concurrency 1`): its
    shell executor runs every job in this one checkout, where concurrent jobs would share `.dockyard/`."""
    from tests.support.index_readback import check_native_only_index, native_only_dockerfile

    image = f"{project_registry.host}/group/matrix"
    pipeline = textwrap.dedent(f"""\
        stages: [build, merge, verify]
        include:
          - local: templates/build.yml
            inputs:
              image: {image}
              context: app
              platforms: ["$PLATFORM"]
              push-by-digest: true
              python: {sys.executable}
          - local: templates/merge.yml
            inputs:
              stage: merge
              image: {image}
              tags: [v2]
              annotations: ["index:org.opencontainers.image.description=two runners"]
              python: {sys.executable}
        dockyard-build:
          parallel:
            matrix:
              - PLATFORM: [linux/amd64, linux/arm64]
        verify:
          stage: verify
          needs: [dockyard-merge]
          script:
            - test "$DOCKYARD_IMAGE_REF" = "{image}@$DOCKYARD_DIGEST"
            - echo "$DOCKYARD_DIGEST" > merged.txt
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": native_only_dockerfile(busybox_base)})
    result = run_pipeline(project, project_registry.host, tmp_path, "--concurrency", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  dockyard-merge" in result.stdout and "PASS  verify" in result.stdout
    digests = sorted(p.name for p in (project / ".dockyard" / "digests").iterdir())
    assert len(digests) == 2  # one image per matrix job, pushed by digest
    entries = check_native_only_index(f"{image}:v2", TWO_PLATFORMS, tmp_path / "readback", creds=CREDS)
    assert sorted(digest.removeprefix("sha256:") for digest in entries.values()) == digests
    assert (project / "merged.txt").read_text().strip() == registry_digest(f"{image}:v2")
    index = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", CREDS,
                                       f"docker://{image}:v2"], capture_output=True, text=True, check=True,
                                      timeout=120).stdout)
    assert index["annotations"]["org.opencontainers.image.description"] == "two runners"


@pytest.fixture(scope="module")
def amd64_arm64_base(registry, tmp_path_factory) -> str:
    """A busybox index for linux/amd64 and linux/arm64 (Debian's arm64 busybox), with QEMU registered for arm64
    in binfmt_misc as dockyard registers it (or already there)."""
    from tests.support.binfmt import ensure_registered
    from tests.support.foreign_images import push_busybox_index

    why = ensure_registered(("linux/arm64",))
    if why is not None:
        pytest.skip(f"QEMU cannot be registered in binfmt_misc here: {why}")
    return push_busybox_index(registry.host, tmp_path_factory.mktemp("busybox-index"), tuple(TWO_PLATFORMS))


@pytest.mark.parametrize("mode", ["namespaces", "proot"])
def test_platforms_with_an_emulated_run(project_registry, amd64_arm64_base, tmp_path, mode):
    """The component building both platforms of a base index in one job, the arm64 RUN under QEMU: each image's
    RUN ran as its own CPU, in both isolation modes (binfmt_misc; proot's own QEMU support, what a Kubernetes
    runner without privileges uses)."""
    from tests.support.index_readback import check_emulated_index, emulated_dockerfile

    image = f"{project_registry.host}/group/emulated-{mode}"
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: {image}
              context: app
              tags: [v1]
              platforms: [linux/amd64, linux/arm64]
              extra-args: --isolation {mode}
              python: {sys.executable}
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": emulated_dockerfile(amd64_arm64_base)})
    result = run_pipeline(project, project_registry.host, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"isolation: {mode}" in result.stdout, result.stdout[-6000:]
    check_emulated_index(f"{image}:v1", TWO_PLATFORMS, tmp_path / "readback", creds=CREDS)


def test_sbom_provenance_and_a_key_signature(project_registry, busybox_base, tmp_path):
    """`sbom: "true"`, `provenance: mode=max` and `sign: key` with COSIGN_PRIVATE_KEY holding the path of the key
    file, as a File variable does: the pushed index holds the SBOM and the provenance (the job's URL its builder
    id) and cosign's signature tag; the job log lists what was attested and signed."""
    from tests.support.supply_readback import builder_id, check_attested_and_signed, signing_key

    key = signing_key(tmp_path / "key")
    image = f"{project_registry.host}/group/signed"
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: {image}
              tags: [v1]
              context: app
              cache: false
              sbom: "true"
              provenance: mode=max
              sign: key
              python: {sys.executable}
        """)
    project = make_project(tmp_path / "project", pipeline,
                           {"Dockerfile": f"FROM {busybox_base}\nRUN echo signed > /signed\n"})
    result = run_pipeline(project, project_registry.host, tmp_path, "--variable", f"COSIGN_PRIVATE_KEY={key}")
    assert result.returncode == 0, result.stdout + result.stderr
    statements = check_attested_and_signed(project_registry, f"{image}:v1", key, creds=f"{USER}:{PASSWORD}")
    assert re.fullmatch(r"https?://\S+/-/jobs/\d+", builder_id(statements)), builder_id(statements)
    log = job_log(project, "dockyard-build")
    assert "attested linux/amd64: SBOM (SPDX), provenance (SLSA v0.2) in sha256:" in log
    assert re.search(r"signed sha256:[0-9a-f]{64} with a key, as tag \S+/group/signed:sha256-[0-9a-f]{64}\.sig", log)


def test_keyless_signature_with_the_jobs_id_token(registry, busybox_base, tmp_path):
    """`sign: keyless` with the job's SIGSTORE_ID_TOKEN (what `id_tokens: aud: sigstore` gives the job) and
    `sign-options` naming the Sigstore instance (@sigstore/mock on loopback standing in for Fulcio and Rekor):
    the pushed image's bundle verifies with sigstore-js for the token's identity."""
    from tests.support import signatures
    from tests.support.sigstore_mock import image_verifies, oidc_token, running_sigstore_mock

    image = f"{registry.host}/group/keyless"
    with running_sigstore_mock(tmp_path) as mock:
        pipeline = textwrap.dedent(f"""\
            include:
              - local: templates/build.yml
                inputs:
                  image: {image}
                  tags: [v1]
                  context: app
                  cache: false
                  sign: keyless
                  sign-options: {mock.sign_attributes()}
                  python: {sys.executable}
            """)
        project = make_project(tmp_path / "project", pipeline,
                               {"Dockerfile": f"FROM {busybox_base}\nRUN echo keyless > /keyless\n"})
        result = run_pipeline(project, registry.host, tmp_path, "--variable", f"SIGSTORE_ID_TOKEN={oidc_token()}")
        assert result.returncode == 0, result.stdout + result.stderr
        digest = signatures.manifest_digest(registry.host, "group/keyless", "v1")
        assert image_verifies(registry.host, "group/keyless", digest, mock.trusted_root)
    assert re.search(rf"signed {digest} keyless, as tag \S+:sha256-[0-9a-f]{{64}}\.sig",
                     job_log(project, "dockyard-build"))


def test_merge_request_note_from_a_merge_request_pipeline(project_registry, busybox_base, tmp_path):
    """`mr-note: true` in a merge request pipeline writes the build's note and a diff discussion on the finding's
    line, through python-gitlab, to tests/support/gitlab_api.py's loopback stand-in for GitLab's API (a GitLab
    server cannot run here; the stand-in checks every call against GitLab's published API)."""
    from tests.support.gitlab_api import GitLabStandIn, Server

    token = "glpat-project-token-42"
    stand_in = GitLabStandIn(token=token, diff_lines={"app/Dockerfile": {3}})
    dockerfile = f"FROM {busybox_base}\nRUN true\nENV legacy form\n"
    pipeline = textwrap.dedent(f"""\
        include:
          - local: templates/build.yml
            inputs:
              image: {project_registry.host}/group/noted
              push: false
              cache: false
              context: app
              lint: none
              mr-note: true
              python: {sys.executable}
        """)
    project = make_project(tmp_path / "project", pipeline, {"Dockerfile": dockerfile})
    with Server(stand_in) as server:
        variables = {"CI_MERGE_REQUEST_IID": "3", "CI_PROJECT_ID": "7", "CI_SERVER_URL": server.url,
                     "DOCKYARD_GITLAB_TOKEN": token}
        result = run_pipeline(project, project_registry.host, tmp_path,
                              *[word for name, value in variables.items() for word in ("--variable", f"{name}={value}")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert stand_in.violations == []
    [note] = stand_in.notes
    assert note["body"].startswith("<!-- dockyard:build-summary job=dockyard-build -->")
    assert f"dockyard build succeeded: `{project_registry.host}/group/noted`" in note["body"]
    [discussion] = stand_in.discussions
    [diff_note] = discussion["notes"]
    assert (diff_note["position"]["new_path"], diff_note["position"]["new_line"]) == ("app/Dockerfile", 3)
    assert "LegacyKeyValueFormat" in diff_note["body"]
    log = job_log(project, "dockyard-build")
    assert f"merge request !3: note {note['id']} written, 1 new finding discussion(s)" in log
    assert token not in result.stdout + log


def test_scan_gate_fails_the_job_and_every_gitlab_report_names_the_vulnerability(project_registry, tmp_path):
    """`scan: true`, `fail-on-vuln: high`: an image whose dpkg database has libssl3 below DSA-5532-1's fix fails
    the job; the container scanning report (checked against what GitLab's schema requires), the code quality
    report and the merge-request note name the package, version, advisory and Dockerfile line. The image with the
    fix passes. OSV's archives come from tests/support/osv_server.py on loopback; the note goes to the GitLab API
    stand-in (tests/support/gitlab_api.py: a GitLab server cannot run here)."""
    from tests.support.gitlab_api import GitLabStandIn, Server
    from tests.support.osv_server import OsvServer, archives, fixture_records
    from tests.test_scan_reports import gitlab_errors
    from tests.test_vuln_build import context

    token = "glpat-project-token-42"
    with OsvServer(archives(fixture_records())) as osv, Server(stand_in := GitLabStandIn(token=token)) as gitlab:
        outcomes = {}
        for name, libssl in (("vulnerable", "3.0.11-1~deb12u1"), ("fixed", "3.0.11-1~deb12u2")):
            app = context(tmp_path / f"{name}-app", libssl)
            pipeline = textwrap.dedent(f"""\
                include:
                  - local: templates/build.yml
                    inputs:
                      image: {project_registry.host}/group/scanned
                      push: false
                      cache: false
                      context: app
                      lint: none
                      scan: true
                      fail-on-vuln: high
                      vuln-db-url: {osv.url}
                      mr-note: true
                      python: {sys.executable}
                """)
            project = make_project(tmp_path / name, pipeline,
                                   {path.name: path.read_text() for path in app.iterdir()})
            variables = {"CI_MERGE_REQUEST_IID": "3", "CI_PROJECT_ID": "7", "CI_SERVER_URL": gitlab.url,
                         "DOCKYARD_GITLAB_TOKEN": token}
            (tmp_path / f"{name}-run").mkdir()
            outcomes[name] = (project, run_pipeline(project, project_registry.host, tmp_path / f"{name}-run",
                                                    *[word for key, value in variables.items()
                                                      for word in ("--variable", f"{key}={value}")]))
    project, result = outcomes["vulnerable"]
    assert result.returncode != 0 and "FAIL  dockyard-build" in result.stdout, result.stdout + result.stderr
    log = job_log(project, "dockyard-build")
    assert "scanned linux/amd64: 3 packages, 0 critical, 1 high, 0 medium, 1 low" in log
    report = json.loads((project / ".dockyard" / "gl-container-scanning-report.json").read_text())
    assert gitlab_errors(report) == []
    [entry] = [v for v in report["vulnerabilities"] if v["identifiers"][0]["value"] == "DSA-5532-1"]
    assert entry["severity"] == "High" and entry["location"]["dependency"] == {
        "package": {"name": "libssl3"}, "version": "3.0.11-1~deb12u1"}
    assert entry["location"]["operating_system"] == "debian 12"
    assert entry["details"]["introduced_by"]["value"].startswith("app/Dockerfile:5 (COPY app-status")
    findings = json.loads((project / ".dockyard" / "gl-code-quality-report.json").read_text())
    [finding] = [f for f in findings if f["check_name"] == "DSA-5532-1"]
    assert finding["location"] == {"path": "app/Dockerfile", "lines": {"begin": 5, "end": 5}}
    assert not (project / ".dockyard" / "dockyard.env").exists()  # nothing was pushed, no image handed on
    # One note, rewritten by the second pipeline: failed with the vulnerability, then succeeded without it.
    assert stand_in.violations == []
    [note] = stand_in.notes
    assert "dockyard build succeeded" in note["body"] and "0 critical, 0 high, 0 medium, 1 low" in note["body"]
    assert any(op == "putApiV4ProjectsIdMergeRequestsNoteableIdNotesNoteId" for op, _ in stand_in.requests)
    project, result = outcomes["fixed"]
    assert result.returncode == 0 and "PASS  dockyard-build" in result.stdout, result.stdout + result.stderr
    report = json.loads((project / ".dockyard" / "gl-container-scanning-report.json").read_text())
    assert gitlab_errors(report) == []
    assert [v["identifiers"][0]["value"] for v in report["vulnerabilities"]] == ["DEBIAN-CVE-2023-45853"]
