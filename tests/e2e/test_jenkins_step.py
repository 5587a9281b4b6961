"""The Jenkins shared-library step (integrations/jenkins/vars/dockyardBuild.groovy), run by Debian's groovy.

Jenkins itself cannot run here, so tests/support/jenkins/pipeline.groovy stands in for Pipeline: its `sh` runs
the real scripts with bash (and so the real dockyard), against registries on loopback; `withCredentials`,
`error`, `unstable`, `recordIssues`/`sarif` (present or absent) behave as Jenkins documents. The JVM starts
slowly, so every scenario runs in one groovy invocation (the `pipeline` fixture) and the tests read its results.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import write_context
from tests.support.binfmt import ensure_registered
from tests.support.foreign_images import push_busybox_index
from tests.support.index_readback import (check_emulated_index, check_native_only_index, emulated_dockerfile,
                                          native_only_dockerfile, read_index)
from tests.support.registry import RegistryServer
from tests.support.signatures import classic_signatures, classic_verifies
from tests.support.supply_readback import builder_id, check_attested_and_signed, public_key, signing_key

LIBRARY = Path(__file__).resolve().parents[2] / "integrations" / "jenkins"
STAND_IN = Path(__file__).resolve().parents[1] / "support" / "jenkins" / "pipeline.groovy"
DOCKYARD = f"{sys.executable} -m dockyard"  # the step's `dockyard:` argument: this checkout's dockyard

# Two warnings (StageNameCasing and FromAsCasing, line 2) and no errors; checks hadolint does not have, so the
# findings are the same whether or not hadolint is installed.
DOCKERFILE = """\
ARG BASE=scratch
FROM ${BASE} as Final
ARG AWKWARD
ENV AWKWARD=${AWKWARD}
RUN echo built > /built
"""
FAILING_DOCKERFILE = """\
ARG BASE=scratch
FROM ${BASE}
RUN echo about to fail && exit 3
"""
CONTEXTS_DOCKERFILE = "FROM base\nCOPY --from=shared lib.txt /\n"
AWKWARD = "it's \"quoted\" $HOME `id` \\back\\slash; && | * ~ %s {x,y}"
AWKWARD_LABEL = "line one\nline 'two' $(id) `id` \"$PATH\""
USER = "ci"
BUILD_URL = "https://jenkins.example/job/app/7/"
PASSWORD = "pa$$ 'w\"o`rd` $(id)"


def _scenario(name: str, workspace: Path, args: dict, **extra) -> dict:
    return {"name": name, "step": "dockyardBuild", "workspace": str(workspace), "args": args, "env": {},
            "credentials": {}, "warningsNg": False, **extra}


def _bad(name: str, tmp: Path, args: dict, step: str = "dockyardBuild") -> dict:
    workspace = tmp / name
    workspace.mkdir()
    return {**_scenario(name, workspace, args), "step": step}


# docs/jenkins.md's distributed build, as a scripted pipeline: one branch per platform (on an agent of that CPU in
# Jenkins) pushes by digest, then dockyardManifest assembles the index. Values are JSON strings (Groovy literals).
DISTRIBUTED = """\
def digests = [:]
parallel(
    amd64: { digests.amd64 = dockyardBuild(image: IMAGE, platforms: 'linux/amd64', pushByDigest: true,
                                           cache: true, dockyard: DOCKYARD).digest },
    arm64: { digests.arm64 = dockyardBuild(image: IMAGE, platforms: ['linux/arm64'], pushByDigest: true,
                                           cache: true, dockyard: DOCKYARD).digest })
return dockyardManifest(image: IMAGE, tags: ['2.0'], sources: [digests.amd64, digests.arm64],
                        annotations: ['index:org.opencontainers.image.description': 'two agents'],
                        dockyard: DOCKYARD)
"""
# The same merge, signed: the key an encrypted PEM (a Secret file credential), its passphrase a Secret text one.
SIGNED_MERGE = """\
def digest = dockyardBuild(image: IMAGE, platforms: 'linux/amd64', pushByDigest: true, dockyard: DOCKYARD).digest
return dockyardManifest(image: IMAGE, tags: ['1'], sources: [digest], dockyard: DOCKYARD, sign: true,
                        signingKeyCredentialsId: 'cosign-key', signingPassphraseCredentialsId: 'cosign-passphrase')
"""
SIGNING_PASSPHRASE = "s3cret 'pass' $(id)"


def _encrypted_key(directory: Path) -> Path:
    """`signing_key`'s key sealed with SIGNING_PASSPHRASE (PKCS#8, AES-256-CBC), as `openssl pkcs8 -topk8` writes."""
    encrypted = directory / "encrypted.key"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(signing_key(directory)),
                    "-out", str(encrypted), "-passout", f"pass:{SIGNING_PASSPHRASE}"],
                   check=True, capture_output=True, timeout=60)
    return encrypted


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("auth-registry"), htpasswd={USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pipeline(registry, auth_registry, busybox_base, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("jenkins")
    common = {"dockyard": DOCKYARD, "buildArgs": {"BASE": busybox_base, "AWKWARD": AWKWARD}}
    scenarios = [
        _scenario("warnings-ng", write_context(tmp / "ws-warnings", {"Dockerfile": DOCKERFILE}),
                  {**common, "image": f"{registry.host}/jenkins/app", "tags": ["1.0", "ci"], "push": True,
                   "labels": {"org.example.note": AWKWARD_LABEL}, "lint": "warning"}, warningsNg=True),
        _scenario("log-only", write_context(tmp / "ws-log", {"Dockerfile": DOCKERFILE}),
                  {**common, "image": f"{registry.host}/jenkins/cached", "push": True, "cache": True,
                   "lint": "error"}),
        _scenario("credentials", write_context(tmp / "ws-creds", {"Dockerfile": DOCKERFILE}),
                  {**common, "image": f"{auth_registry.host}/jenkins/private", "tags": ["1"], "push": True,
                   "credentialsId": "registry-ci", "lint": "none"},
                  credentials={"registry-ci": {"username": USER, "password": PASSWORD}}, warningsNg=True),
        _scenario("failing", write_context(tmp / "ws-fail", {"Dockerfile": FAILING_DOCKERFILE}),
                  {**common, "buildArgs": {"BASE": busybox_base}, "image": f"{auth_registry.host}/jenkins/broken",
                   "push": True,
                   "credentialsId": "registry-ci"},
                  credentials={"registry-ci": {"username": USER, "password": PASSWORD}}, warningsNg=True),
        _scenario("contexts", write_context(tmp / "ws-contexts", {"Dockerfile": CONTEXTS_DOCKERFILE,
                                                                   "shared/lib.txt": "shared\n"}),
                  {"dockyard": DOCKYARD, "image": f"{registry.host}/jenkins/contexts", "push": True,
                   "buildContexts": {"base": f"docker-image://{busybox_base}", "shared": "shared"}}),
        _scenario("platforms", write_context(tmp / "ws-platforms",
                                             {"Dockerfile": native_only_dockerfile(busybox_base)}),
                  {"dockyard": DOCKYARD, "image": f"{registry.host}/jenkins/multi", "tags": ["1"], "push": True,
                   "platforms": ["linux/amd64", "linux/arm64"]}),
        {**_scenario("distributed", write_context(tmp / "ws-distributed",
                                                  {"Dockerfile": native_only_dockerfile(busybox_base)}), {}),
         "script": "".join(f"def {name} = {json.dumps(value)}\n" for name, value in (
             ("IMAGE", f"{registry.host}/jenkins/distributed"), ("DOCKYARD", DOCKYARD)))
         + DISTRIBUTED},
        _bad("bad-platform", tmp, {"image": "app", "platforms": ["linux/amd64", "linux"]}),
        _bad("tags-pushed-by-digest", tmp, {"image": "app", "pushByDigest": True, "tags": ["1"]}),
        _bad("manifest-without-sources", tmp, {"image": "app", "tags": ["1"]}, step="dockyardManifest"),
        _bad("manifest-unknown-argument", tmp, {"image": "app", "sources": ["sha256:" + "a" * 64], "platforms": []},
             step="dockyardManifest"),
        _bad("no-image", tmp, {"tags": ["1"]}),
        _bad("unknown-argument", tmp, {"image": "app", "imgae": "app"}),
        _bad("tagged-image", tmp, {"image": "registry.example.com/app:1.0"}),
        _bad("bad-tag", tmp, {"image": "app", "tags": ["ok", "not ok"]}),
        _bad("build-args-list", tmp, {"image": "app", "buildArgs": ["A=1"]}),
        _bad("build-context-without-value", tmp, {"image": "app", "buildContexts": {"base": None}}),
        _bad("bad-lint", tmp, {"image": "app", "lint": "loud"}),
        _bad("push-string", tmp, {"image": "app", "push": "yes"}),
        _bad("extra-args-string", tmp, {"image": "app", "extraArgs": "--no-cache"}),
        _bad("sign-without-key", tmp, {"image": "app", "push": True, "sign": True}),
        _bad("sign-without-push", tmp, {"image": "app", "sign": True, "signingKeyCredentialsId": "k"}),
        _bad("key-without-sign", tmp, {"image": "app", "push": True, "signingKeyCredentialsId": "k"}),
        _bad("manifest-sign-without-key", tmp, {"image": "app", "sources": ["sha256:" + "a" * 64], "sign": True},
             step="dockyardManifest"),
        _bad("manifest-sign-without-push", tmp, {"image": "app", "sources": ["sha256:" + "a" * 64], "push": False,
                                                 "sign": True, "signingKeyCredentialsId": "k"},
             step="dockyardManifest"),
        {**_scenario("signed-merge", write_context(tmp / "ws-signed-merge",
                                                   {"Dockerfile": f"FROM {busybox_base}\nRUN echo merged > /m\n"}),
                     {}, credentials={"cosign-key": {"file": _encrypted_key(tmp / "merge-key").read_text(),
                                                     "fileName": "cosign.key"},
                                      "cosign-passphrase": {"secret": SIGNING_PASSPHRASE}},
                     key=str(tmp / "merge-key" / "signing.key")),
         "script": "".join(f"def {name} = {json.dumps(value)}\n" for name, value in (
             ("IMAGE", f"{registry.host}/jenkins/signed-merge"), ("DOCKYARD", DOCKYARD))) + SIGNED_MERGE},
        _bad("bad-provenance-mode", tmp, {"image": "app", "provenance": "mode=huge"}),
        _bad("sbom-number", tmp, {"image": "app", "sbom": 3}),
        _scenario("signed", write_context(tmp / "ws-signed",
                                          {"Dockerfile": f"FROM {busybox_base}\nRUN echo signed > /s\n"}),
                  {"dockyard": DOCKYARD, "image": f"{registry.host}/jenkins/signed", "tags": ["1"], "push": True,
                   "sbom": True, "provenance": "mode=max", "sign": True, "signingKeyCredentialsId": "cosign-key"},
                  env={"BUILD_URL": BUILD_URL},
                  credentials={"cosign-key": {"file": signing_key(tmp / "key").read_text(),
                                              "fileName": "cosign.key"}}, key=str(tmp / "key" / "signing.key")),
    ]
    # A two-platform build whose arm64 RUN runs under QEMU, when binfmt_misc can serve it here.
    if ensure_registered(("linux/arm64",)) is None:
        base = push_busybox_index(registry.host, tmp / "busybox-index", ("linux/amd64", "linux/arm64"))
        workspace = write_context(tmp / "ws-emulated", {"Dockerfile": emulated_dockerfile(base)})
        for mode in ("namespaces", "proot"):
            scenarios.append(_scenario(f"emulated-{mode}", workspace, {
                "dockyard": DOCKYARD, "push": True, "image": f"{registry.host}/jenkins/emulated-{mode}",
                "platforms": "linux/amd64,linux/arm64", "extraArgs": ["--isolation", mode]}))
    scenarios_file, results_file = tmp / "scenarios.json", tmp / "results.json"
    scenarios_file.write_text(json.dumps(scenarios))
    run = subprocess.run(["groovy", str(STAND_IN), str(LIBRARY), str(scenarios_file), str(results_file)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(results_file.read_text())
    for name, outcome in results.items():
        assert "exception" not in outcome, f"{name}: {outcome['exception']}\n{outcome['log']}"
    return {"results": results, "workspaces": {s["name"]: Path(s["workspace"]) for s in scenarios},
            "keys": {s["name"]: s["key"] for s in scenarios if "key" in s}}


def _inspect(ref: str, *extra: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", *extra, f"docker://{ref}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _leftovers(workspace: Path) -> list[str]:
    """Anything the step leaves in the workspace or its @tmp directory (the stand-in's own script directories
    are removed after each `sh`)."""
    tmp = Path(f"{workspace}@tmp")
    found = [p for p in workspace.rglob("*") if p.name != "Dockerfile"]
    return [str(p) for p in found + (list(tmp.rglob("*")) if tmp.exists() else [])]


def test_returns_the_pushed_digest_and_quotes_awkward_values(pipeline, registry):
    outcome = pipeline["results"]["warnings-ng"]
    assert "error" not in outcome, outcome["log"]
    returned = outcome["returned"]
    image = f"{registry.host}/jenkins/app"
    assert returned["image"] == image and returned["tags"] == [f"{image}:1.0", f"{image}:ci"]
    for ref in returned["tags"]:
        assert _inspect(ref)["Digest"] == returned["digest"]
    config = _inspect(returned["tags"][0], "--config")["config"]
    assert f"AWKWARD={AWKWARD}" in config["Env"]
    assert config["Labels"]["org.example.note"] == AWKWARD_LABEL
    assert _leftovers(pipeline["workspaces"]["warnings-ng"]) == []


def test_findings_at_the_lint_level_reach_warnings_ng_and_make_the_build_unstable(pipeline):
    outcome = pipeline["results"]["warnings-ng"]
    assert outcome["unstable"] == [f"dockyardBuild: 2 Dockerfile finding(s) at or above 'warning' in "
                                   f"{outcome['returned']['image']}"]
    [record] = outcome["recorded"]
    [tool] = record["tools"]
    assert tool["tool"] == "sarif" and tool["id"].startswith("dockyard-")
    results = json.loads(tool["content"])["runs"][0]["results"]
    assert {(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results} == {
        ("StageNameCasing", 2), ("FromAsCasing", 2)}


def test_without_warnings_ng_findings_go_to_the_log_and_below_the_level_the_build_stays_stable(pipeline, registry):
    outcome = pipeline["results"]["log-only"]
    assert "error" not in outcome, outcome["log"]
    assert outcome["unstable"] == [] and outcome["recorded"] == []
    assert "install the Warnings Next Generation plugin" in outcome["log"]
    assert "StageNameCasing" in outcome["log"] and "2 warnings" in outcome["log"]
    assert outcome["returned"]["tags"] == [f"{registry.host}/jenkins/cached:latest"]
    # cache: true wrote the registry cache next to the image (an artifact: only its manifest can be inspected)
    cache = _inspect(f"{registry.host}/jenkins/cached:buildcache", "--raw")
    assert cache["config"]["mediaType"] == "application/vnd.dockyard.cache.config.v1+json"


def test_credentials_are_used_but_never_logged_nor_left_on_disk(pipeline, auth_registry):
    outcome = pipeline["results"]["credentials"]
    assert "error" not in outcome, outcome["log"]
    [ref] = outcome["returned"]["tags"]
    assert _inspect(ref, f"--creds={USER}:{PASSWORD}")["Digest"] == outcome["returned"]["digest"]
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for log in (outcome["rawLog"], outcome["log"]):
        assert PASSWORD not in log and encoded not in log
    assert _leftovers(pipeline["workspaces"]["credentials"]) == []


def test_a_failed_build_is_an_error_with_its_finding_recorded_and_the_credentials_removed(pipeline):
    outcome = pipeline["results"]["failing"]
    assert outcome["error"].startswith("dockyardBuild: dockyard build of ")
    assert "exited with 5: a build step failed" in outcome["error"]
    [record] = outcome["recorded"]
    failures = json.loads(record["tools"][0]["content"])["runs"][0]["results"]
    assert [(r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in failures] == [
        ("error", 3)]
    assert PASSWORD not in outcome["rawLog"]
    assert _leftovers(pipeline["workspaces"]["failing"]) == []


@pytest.mark.parametrize("name, message", [
    ("no-image", "dockyardBuild: image is required"),
    ("unknown-argument", "dockyardBuild: unknown argument 'imgae'"),
    ("tagged-image", "dockyardBuild: image 'registry.example.com/app:1.0' is not a repository name"),
    ("bad-tag", "dockyardBuild: tag 'not ok' is not a valid tag"),
    ("build-args-list", "dockyardBuild: buildArgs must be a map"),
    ("build-context-without-value", "dockyardBuild: buildContexts 'base' has no value"),
    ("bad-lint", "dockyardBuild: lint 'loud' is not one of info, warning, error, none"),
    ("push-string", "dockyardBuild: push must be true or false"),
    ("extra-args-string", "dockyardBuild: extraArgs must be a list"),
    ("bad-platform", "dockyardBuild: platform 'linux' is not OS/ARCH[/VARIANT]"),
    ("tags-pushed-by-digest", "dockyardBuild: tags go on the index, not on an image pushed by digest"),
    ("manifest-without-sources", "dockyardManifest: sources must name the images to assemble"),
    ("manifest-unknown-argument", "dockyardManifest: unknown argument 'platforms'"),
    ("sign-without-key", "dockyardBuild: sign: true needs signingKeyCredentialsId"),
    ("sign-without-push", "dockyardBuild: sign: true signs the pushed image, and push is false"),
    ("key-without-sign", "dockyardBuild: a signing credential is given and sign is not true"),
    ("manifest-sign-without-key", "dockyardManifest: sign: true needs signingKeyCredentialsId"),
    ("manifest-sign-without-push", "dockyardManifest: sign: true signs the pushed image, and push is false"),
    ("bad-provenance-mode", "dockyardBuild: provenance mode 'huge' is not min or max"),
    ("sbom-number", "dockyardBuild: sbom must be true, false or attributes"),
])
def test_bad_arguments_are_errors_before_anything_runs(pipeline, name, message):
    outcome = pipeline["results"][name]
    assert outcome["error"].startswith(message)
    assert outcome["scripts"] == []


def test_build_contexts_are_passed_as_build_context_flags(pipeline, registry, tmp_path):
    """`buildContexts: [base: 'docker-image://...', shared: 'shared']`: FROM base is the image, COPY --from=shared
    reads the workspace's directory."""
    from tests.support import oracle, tree

    outcome = pipeline["results"]["contexts"]
    assert "error" not in outcome, outcome["log"]
    [ref] = outcome["returned"]["tags"]
    files = tree.flatten(oracle.unpack(oracle.fetch_oci(ref, tmp_path / "oci"), tmp_path / "bundle"))
    assert "/bin/busybox" in files and files["/lib.txt"].size == len("shared\n")


# --- several platforms ------------------------------------------------------------------------------------------
# The Dockerfile's one RUN runs on the build platform (FROM --platform=$BUILDPLATFORM): a two-platform build of it
# needs no QEMU, on this machine or on an agent.

TWO_PLATFORMS = ["linux/amd64", "linux/arm64"]


def test_platforms_build_one_index(pipeline, registry, tmp_path):
    outcome = pipeline["results"]["platforms"]
    assert "error" not in outcome, outcome["log"]
    [ref] = outcome["returned"]["tags"]
    check_native_only_index(ref, TWO_PLATFORMS, tmp_path)
    assert _inspect(ref, "--raw") == read_index(ref) and _digest_of_raw(ref) == outcome["returned"]["digest"]


def test_parallel_branches_push_by_digest_and_dockyard_manifest_assembles_the_index(pipeline, registry, tmp_path):
    outcome = pipeline["results"]["distributed"]
    assert "error" not in outcome, outcome["log"]
    returned = outcome["returned"]
    image = f"{registry.host}/jenkins/distributed"
    assert returned["tags"] == [f"{image}:2.0"] and returned["image"] == image
    entries = check_native_only_index(f"{image}:2.0", TWO_PLATFORMS, tmp_path)
    assert sorted(returned["sources"]) == sorted(f"{image}@{digest}" for digest in entries.values())
    assert returned["digest"] == _digest_of_raw(f"{image}:2.0")
    assert read_index(f"{image}:2.0")["annotations"]["org.opencontainers.image.description"] == "two agents"
    # each branch kept a registry cache of its own (the branches run at once on their agents)
    for platform in ("linux-amd64", "linux-arm64"):
        assert _inspect(f"{image}:buildcache-{platform}", "--raw")["config"]["mediaType"] == (
            "application/vnd.dockyard.cache.config.v1+json")


@pytest.mark.parametrize("mode", ["namespaces", "proot"])
def test_platforms_with_an_emulated_run(pipeline, mode, tmp_path):
    """`platforms: 'linux/amd64,linux/arm64'` (a comma list) over a base index: the arm64 RUN ran under QEMU, in
    both isolation modes (binfmt_misc; proot's own QEMU support)."""
    if f"emulated-{mode}" not in pipeline["results"]:
        pytest.skip("QEMU cannot be registered in binfmt_misc here")
    outcome = pipeline["results"][f"emulated-{mode}"]
    assert "error" not in outcome, outcome["log"]
    [ref] = outcome["returned"]["tags"]
    check_emulated_index(ref, TWO_PLATFORMS, tmp_path)


def _digest_of_raw(ref: str) -> str:
    import hashlib

    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                         capture_output=True, timeout=120, check=True).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_sbom_provenance_and_a_key_signature(pipeline, registry):
    """`sbom: true, provenance: 'mode=max', sign: true` with the key from a Secret file credential: the index at
    the tag holds the SBOM and the provenance (the build's URL its builder id) and cosign's signature tag; the
    console lists what was attested and signed, the step returns it, and the key file is gone."""
    outcome = pipeline["results"]["signed"]
    assert "error" not in outcome, outcome["log"]
    [ref] = outcome["returned"]["tags"]
    statements = check_attested_and_signed(registry, ref, Path(pipeline["keys"]["signed"]))
    assert builder_id(statements) == BUILD_URL
    assert any(line.startswith("linux/amd64: SBOM (SPDX), provenance (SLSA v0.2) in sha256:")
               for line in outcome["returned"]["attestations"])
    assert [line for line in outcome["returned"]["signatures"]
            if " with a key, as tag " in line and line.endswith(".sig")]
    assert "dockyardBuild: attested linux/amd64: SBOM (SPDX)" in outcome["log"]
    assert "dockyardBuild: signed sha256:" in outcome["log"]
    assert _leftovers(pipeline["workspaces"]["signed"]) == []


def test_dockyard_manifest_signs_the_index_with_the_key_credentials(pipeline, registry):
    """`sign: true` on dockyardManifest, the key an encrypted PEM from a Secret file credential and its passphrase
    from a Secret text one (as dockyardBuild takes them): cosign's signature of the assembled index is at its
    `sha256-<hex>.sig` tag and verifies with the key's public half by sigstore-js and openssl; the passphrase is
    masked in the log; the tag points at the signed index; nothing is left in the workspace."""
    outcome = pipeline["results"]["signed-merge"]
    assert "error" not in outcome, outcome["log"]
    returned = outcome["returned"]
    image = f"{registry.host}/jenkins/signed-merge"
    assert returned["signed"] is True and returned["digest"] == _digest_of_raw(f"{image}:1")
    repository = image.split("/", 1)[1]
    found = classic_signatures(registry.host, repository, returned["digest"])
    assert found and all(classic_verifies(signature, returned["digest"], public_key(Path(pipeline["keys"][
        "signed-merge"]))) for signature in found)
    # a key that is not the signer's: the same signatures do not verify
    other = signing_key(Path(pipeline["keys"]["signed-merge"]).parent / "other")
    assert not any(classic_verifies(signature, returned["digest"], public_key(other)) for signature in found)
    assert f"dockyardManifest: signed {returned['digest']} with the key in cosign-key" in outcome["log"]
    assert SIGNING_PASSPHRASE not in outcome["log"]
    assert _leftovers(pipeline["workspaces"]["signed-merge"]) == []


# --- the vulnerability scan --------------------------------------------------------------------------------------

def _run_scenarios(tmp: Path, scenarios: list[dict]) -> dict:
    scenarios_file, results_file = tmp / "scenarios.json", tmp / "results.json"
    scenarios_file.write_text(json.dumps(scenarios))
    run = subprocess.run(["groovy", str(STAND_IN), str(LIBRARY), str(scenarios_file), str(results_file)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(results_file.read_text())
    for name, outcome in results.items():
        assert "exception" not in outcome, f"{name}: {outcome['exception']}\n{outcome['log']}"
    return results


@pytest.fixture(scope="module")
def scan_pipeline(tmp_path_factory) -> dict:
    """`scan: true, failOnVuln: 'high'` on an image whose dpkg database has libssl3 below DSA-5532-1's fix, and on
    the fixed one (tests/test_vuln_build.py's contexts), OSV's archives from tests/support/osv_server.py on
    loopback; the scan arguments refused before anything runs. One groovy run of its own."""
    from tests.support.osv_server import OsvServer, archives, fixture_records
    from tests.test_vuln_build import context

    tmp = tmp_path_factory.mktemp("jenkins-scan")
    with OsvServer(archives(fixture_records())) as osv:
        common = {"dockyard": DOCKYARD, "image": "registry.example/jenkins/scanned", "scan": True,
                  "failOnVuln": "high", "vulnDbUrl": osv.url, "lint": "none"}
        scenarios = [
            _scenario("vulnerable", context(tmp / "ws-vulnerable", "3.0.11-1~deb12u1"), common, warningsNg=True),
            _scenario("fixed", context(tmp / "ws-fixed", "3.0.11-1~deb12u2"), common, warningsNg=True),
            _scenario("no-warnings-ng", context(tmp / "ws-plain", "3.0.11-1~deb12u2"), common),
            _bad("fail-on-vuln-without-scan", tmp, {"image": "app", "failOnVuln": "high"}),
            _bad("bad-fail-on-vuln", tmp, {"image": "app", "scan": True, "failOnVuln": "severe"}),
        ]
        return _run_scenarios(tmp, scenarios)


def test_scan_gate_fails_the_build_after_recording_the_vulnerability_in_warnings_ng(scan_pipeline):
    outcome = scan_pipeline["vulnerable"]
    assert outcome["error"].startswith("dockyardBuild: dockyard build of registry.example/jenkins/scanned exited "
                                       "with 12: the image has vulnerabilities at or above failOnVuln")
    assert "dockyardBuild: scanned linux/amd64: 3 packages, 0 critical, 1 high, 0 medium, 1 low" in outcome["log"]
    tools = {tool["tool"]: tool for record in outcome["recorded"] for tool in record["tools"]}
    issues = json.loads(tools["issues"]["content"])["issues"]
    [libssl] = [issue for issue in issues if issue["type"] == "DSA-5532-1"]
    assert (libssl["packageName"], libssl["severity"], libssl["lineStart"]) == ("libssl3", "HIGH", 5)
    assert libssl["fileName"].endswith("Dockerfile") and "3.0.11-1~deb12u1" in libssl["message"]
    assert tools["issues"]["id"].startswith("dockyard-vulns-")
    # The Dockerfile findings' SARIF has the vulnerabilities too (dockyard's findings), on the same line.
    sarif = json.loads(tools["sarif"]["content"])["runs"][0]["results"]
    assert any(r["ruleId"] == "DSA-5532-1" and r["locations"][0]["physicalLocation"]["region"]["startLine"] == 5
               for r in sarif)


def test_the_fixed_image_passes_and_returns_the_counts(scan_pipeline):
    outcome = scan_pipeline["fixed"]
    assert "error" not in outcome, outcome["log"]
    assert outcome["returned"]["vulnerabilities"] == "0 critical, 0 high, 0 medium, 1 low"
    plain = scan_pipeline["no-warnings-ng"]
    assert "error" not in plain and plain["recorded"] == []
    assert "install the Warnings Next Generation plugin" in plain["log"]


@pytest.mark.parametrize("name, message", [
    ("fail-on-vuln-without-scan", "dockyardBuild: failOnVuln is set and scan is not true"),
    ("bad-fail-on-vuln", "dockyardBuild: failOnVuln 'severe' is not one of critical, high, medium, low, none"),
])
def test_scan_arguments_are_checked_before_anything_runs(scan_pipeline, name, message):
    outcome = scan_pipeline[name]
    assert outcome["error"].startswith(message) and outcome["scripts"] == []
