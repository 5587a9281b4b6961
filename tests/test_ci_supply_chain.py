"""The CI adapters' supply-chain options without a runner: the kernel's mapping of `sbom`, `provenance`,
`attests` and `sign` onto `dockyard build`'s flags (buildx's `--sbom`, `--provenance`, `--attest`; `--sign`), the
CI run's identity as the provenance's builder id (GitHub run attempt, GitLab job, Jenkins build), how each adapter
hands dockyard a signing key and its passphrase (never on a command line, masked in the log), and the summary
lines of what the metadata file says was attested and signed. The real runners with the real core are the e2e
tests (tests/e2e/test_github_action.py, test_gitlab_component.py, test_jenkins_step.py)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard_integrations.common import supplychain
from dockyard_integrations.common.request import BuildRequest, build_arguments
from dockyard_integrations.common.supplychain import Signing
from dockyard_integrations.github import action, merge, provenance, summary
from dockyard_integrations.github.flags import ResultFiles
from dockyard_integrations.github.flags import build_arguments as action_arguments
from dockyard_integrations.github.inputs import ActionInputs
from dockyard_integrations.github.log import GroupedLog
from dockyard_integrations.gitlab import job, signing as gitlab_signing
from dockyard_integrations.gitlab.inputs import ComponentInputs
from dockyard_integrations.jenkins import step

RUN_URL = "https://github.com/octo/app/actions/runs/42/attempts/2"
INDEX = "sha256:" + "1" * 64
IMAGE_AMD64, IMAGE_ARM64 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
ATTEST_AMD64, ATTEST_ARM64 = "sha256:" + "c" * 64, "sha256:" + "d" * 64
# The metadata file's supply-chain keys, as the contract between the core and the adapters has them.
METADATA = {
    "digest": INDEX, "config_digest": "sha256:" + "e" * 64, "tags": ["r/a:1"], "pushed": ["r/a:1"],
    "platform": "linux/amd64", "layers": [{"digest": "x", "size": 2048}], "steps": [],
    "cache": {"hits": 0, "misses": 1},
    "platforms": [{"platform": "linux/amd64", "digest": IMAGE_AMD64},
                  {"platform": "linux/arm64", "digest": IMAGE_ARM64}],
    "attestations": [
        {"platform": "linux/amd64", "digest": ATTEST_AMD64,
         "predicateTypes": ["https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"]},
        {"platform": "linux/arm64", "digest": ATTEST_ARM64,
         "predicateTypes": ["https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"]}],
    "signatures": [{"digest": INDEX, "repository": "r/a", "tag": "r/a:sha256-" + "1" * 64 + ".sig", "kind": "key",
                    "format": "simple-signing"},
                   {"digest": ATTEST_AMD64, "referrer": "sha256:" + "f" * 64, "kind": "keyless"}],
}


# --- the kernel: inputs → flags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ("", ""), ("true", "true"), ("True", "true"), ("false", "false"),
    ("generator=registry.example/scanner:1", "generator=registry.example/scanner:1")])
def test_sbom_values_as_buildx_takes_them(given, expected):
    assert supplychain.sbom_value(given) == expected


@pytest.mark.parametrize("given, expected", [
    ("", ""),
    ("false", "false"),
    ("true", f"builder-id={RUN_URL}"),  # build-push-action's `provenance: true`: buildx's default mode (min)
    ("mode=max", f"mode=max,builder-id={RUN_URL}"),
    ("mode=min,version=v1", f"mode=min,version=v1,builder-id={RUN_URL}"),
    ("mode=max,builder-id=https://ci.example/run/7", "mode=max,builder-id=https://ci.example/run/7"),  # given wins
])
def test_provenance_gets_the_ci_runs_builder_id_unless_given(given, expected):
    assert supplychain.provenance_value(given, builder_id=RUN_URL) == expected
    # normalising twice changes nothing: an adapter may check a value the kernel checks again
    assert supplychain.provenance_value(expected, builder_id=RUN_URL) == expected


def test_provenance_outside_a_ci_run_has_no_builder_id():
    assert supplychain.provenance_value("true") == "true"
    assert supplychain.provenance_value("mode=max") == "mode=max"


@pytest.mark.parametrize("call, subject, words", [
    (lambda: supplychain.sbom_value("maybe"), "input sbom", "neither true, false"),
    (lambda: supplychain.provenance_value("mode=full"), "input provenance", "mode 'full'"),
    (lambda: supplychain.provenance_value("mode=max,version=v3"), "input provenance", "version 'v3'"),
    (lambda: supplychain.attest_values(["type=vex"]), "input attests", "type=sbom or type=provenance"),
    (lambda: supplychain.attest_values(["mode=max"]), "input attests", "type=sbom or type=provenance"),
    (lambda: supplychain.attest_values(["type=provenance,mode=all"]), "input attests", "mode 'all'"),
    (lambda: supplychain.sign_mode("cosign"), "input sign", "not key, keyless or false"),
])
def test_values_that_are_not_ones_are_errors_naming_the_input(call, subject, words):
    with pytest.raises(UsageError) as info:
        call()
    assert info.value.subject == subject and words in info.value.message and info.value.hint


def test_attests_pass_through_and_provenance_ones_get_the_builder_id():
    assert supplychain.attest_values(["type=sbom", "type=sbom,generator=img", "type=provenance,mode=max"],
                                     builder_id=RUN_URL) == [
        "type=sbom", "type=sbom,generator=img", f"type=provenance,mode=max,builder-id={RUN_URL}"]


def test_sign_arguments():
    assert Signing(key_file="/k/cosign.key").argument() == "key=/k/cosign.key"
    assert Signing(key_file="/k/cosign.key", passphrase_env="PW").argument() == "key=/k/cosign.key,passphrase-env=PW"
    assert Signing(keyless=True).argument() == "keyless"
    assert Signing(keyless=True, oidc_token_env="SIGSTORE_ID_TOKEN").argument() == (
        "keyless,oidc-token-env=SIGSTORE_ID_TOKEN")
    assert [supplychain.sign_mode(text) for text in ("", "false", "KEY", " keyless ")] == ["", "", "key", "keyless"]


def test_the_request_puts_the_supply_chain_flags_before_extra_args():
    args = build_arguments(BuildRequest(tags=("r/a:1",), push=True, sbom="true", provenance="mode=max",
                                        attests=("type=sbom,generator=img",), builder_id=RUN_URL,
                                        signing=Signing(key_file="/k/key.pem", passphrase_env="PW"),
                                        extra_args=("--provenance=false",)))
    assert args[-6:] == ["--sbom=true", f"--provenance=mode=max,builder-id={RUN_URL}",
                         "--attest=type=sbom,generator=img", "--sign=key=/k/key.pem,passphrase-env=PW",
                         "--provenance=false", "."]


def test_without_the_options_the_arguments_are_todays():
    args = build_arguments(BuildRequest(tags=("r/a:1",), push=True, builder_id=RUN_URL))
    assert not [arg for arg in args if arg.startswith(("--sbom", "--provenance", "--attest", "--sign"))]


def test_a_signature_needs_a_push_a_push_by_digest_output_is_one():
    with pytest.raises(UsageError) as info:
        build_arguments(BuildRequest(signing=Signing(keyless=True)))
    assert info.value.subject == "input sign" and "pushes nothing" in info.value.message
    args = build_arguments(BuildRequest(signing=Signing(keyless=True),
                                        outputs=("type=image,name=r/a,push-by-digest=true,push=true",)))
    assert "--sign=keyless" in args


# --- the kernel: what was attested and signed --------------------------------------------------------------------

def test_summary_lines_from_the_metadata_file():
    assert supplychain.attestation_lines(METADATA) == [
        f"linux/amd64: SBOM (SPDX), provenance (SLSA v0.2) in {ATTEST_AMD64}",
        f"linux/arm64: SBOM (SPDX), provenance (SLSA v0.2) in {ATTEST_ARM64}"]
    assert supplychain.signature_lines(METADATA) == [
        f"{INDEX} with a key, as tag r/a:sha256-{'1' * 64}.sig",
        f"{ATTEST_AMD64} keyless, as referrer sha256:{'f' * 64}"]
    # a build without attestations or signatures: the keys are absent, and nothing is listed
    assert supplychain.attestation_lines({"digest": INDEX}) == [] == supplychain.signature_lines({"digest": INDEX})


# --- GitHub ------------------------------------------------------------------------------------------------------

def test_github_builder_id_is_the_run_attempts_url():
    environ = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "octo/app", "GITHUB_RUN_ID": "42",
               "GITHUB_RUN_ATTEMPT": "2"}
    assert provenance.builder_id(environ) == RUN_URL
    assert provenance.builder_id({**environ, "GITHUB_RUN_ATTEMPT": "", "GITHUB_SERVER_URL": ""}) == (
        "https://github.com/octo/app/actions/runs/42/attempts/1")
    assert provenance.builder_id({"GITHUB_REPOSITORY": "octo/app"}) == ""  # not a workflow run


def set_inputs(monkeypatch, **inputs: str) -> None:
    for name, value in inputs.items():
        monkeypatch.setenv(f"INPUT_{name.upper()}", value)


def test_github_inputs(monkeypatch):
    set_inputs(monkeypatch, sbom="true", provenance="mode=max", attests="type=sbom\ntype=provenance,mode=max\n",
               sign="Key", sign_key="-----BEGIN EC PRIVATE KEY-----\nAAA\n-----END EC PRIVATE KEY-----",
               sign_key_passphrase="pw-1234")
    inputs = ActionInputs.from_environment()
    assert (inputs.sbom, inputs.provenance, inputs.sign) == ("true", "mode=max", "key")
    assert inputs.attests == ("type=sbom", "type=provenance,mode=max")  # one per line, commas kept
    assert inputs.sign_key.startswith("-----BEGIN") and inputs.sign_key_passphrase == "pw-1234"
    monkeypatch.setenv("INPUT_SIGN", "yes")
    with pytest.raises(UsageError) as info:
        ActionInputs.from_environment()
    assert info.value.subject == "input sign"


def _action_args(tmp_path, **fields) -> list[str]:
    files = ResultFiles(metadata=tmp_path / "m.json", report=tmp_path / "r.github")
    return action_arguments(ActionInputs(**fields), tags=["r/a:1"], labels=[], secret_dir=tmp_path / "s",
                            files=files, builder_id=RUN_URL)


KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKey\n-----END EC PRIVATE KEY-----"


def test_github_key_goes_to_a_private_file_and_the_passphrase_to_an_environment_variable(tmp_path):
    args = _action_args(tmp_path, push=True, sbom="true", provenance="mode=max", sign="key", sign_key=KEY,
                        sign_key_passphrase="pw-1234")
    key = tmp_path / "s" / "signing.key"
    assert f"--sign=key={key},passphrase-env={supplychain.PASSPHRASE_ENV}" in args
    assert "--sbom=true" in args and f"--provenance=mode=max,builder-id={RUN_URL}" in args
    assert key.read_text() == KEY + "\n" and key.stat().st_mode & 0o777 == 0o600
    assert "pw-1234" not in " ".join(args) and "MHcCAQEEIKey" not in " ".join(args)
    env = action.dockyard_environment(ActionInputs(sign="key", sign_key=KEY, sign_key_passphrase="pw-1234"),
                                      {"PATH": "/bin"})
    assert env == {"PATH": "/bin", supplychain.PASSPHRASE_ENV: "pw-1234"}
    # no passphrase: none is named
    assert f"--sign=key={key}" in _action_args(tmp_path, push=True, sign="key", sign_key=KEY)


@pytest.mark.parametrize("fields, subject, words", [
    ({"sign": "key"}, "input sign-key", "sign-key is empty"),
    ({"sign": "keyless", "sign_key": KEY}, "input sign-key", "sign is keyless"),
    ({"sign_key": KEY}, "input sign", "sign does not ask"),
    ({"push": False, "sign": "keyless"}, "input sign", "pushes nothing"),
])
def test_github_signing_inputs_that_do_not_fit_are_errors(tmp_path, fields, subject, words):
    with pytest.raises(UsageError) as info:
        _action_args(tmp_path, **{"push": True, **fields})
    assert info.value.subject == subject and words in info.value.message


def test_github_keyless_needs_the_jobs_id_token_permission():
    inputs = ActionInputs(push=True, sign="keyless")
    with pytest.raises(UsageError) as info:
        action.dockyard_environment(inputs, {"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"})
    assert info.value.subject == "input sign" and "ACTIONS_ID_TOKEN_REQUEST_URL is not set" in info.value.message
    assert "id-token: write" in info.value.hint
    environ = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.example/x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
    assert action.dockyard_environment(inputs, environ) == environ  # dockyard requests the token itself


def test_github_merge_mode_refuses_attestations_and_signs_the_index(tmp_path):
    for field in ({"sbom": "true"}, {"provenance": "mode=max"}, {"attests": ("type=sbom",)}):
        with pytest.raises(UsageError) as info:
            merge.refuse_build_inputs(ActionInputs(sources=("r/a@" + IMAGE_AMD64,), **field))
        assert info.value.subject.startswith("input ")
    from dockyard_integrations.common.manifest import manifest_arguments
    from dockyard_integrations.github.flags import signing

    inputs = ActionInputs(sources=("r/a@" + IMAGE_AMD64,), push=True, sign="key", sign_key=KEY)
    request = merge.manifest_request(inputs, tags=["r/a:1"], files=merge.MergeFiles(digest=tmp_path / "d"),
                                     sign=signing(inputs, tmp_path / "s"))
    assert f"--sign=key={tmp_path / 's' / 'signing.key'}" in manifest_arguments(request)
    unpushed = ActionInputs(sources=("r/a@" + IMAGE_AMD64,), sign="keyless")
    with pytest.raises(UsageError) as info:  # push: false assembles the index without pushing: nothing to sign
        manifest_arguments(merge.manifest_request(unpushed, tags=["r/a:1"],
                                                  files=merge.MergeFiles(digest=tmp_path / "d"),
                                                  sign=signing(unpushed, tmp_path / "s")))
    assert info.value.subject == "input sign"


FAKE_DOCKYARD = r'''
import json, os, sys
args = sys.argv[1:]
meta = args[args.index("--metadata-file") + 1]
with open(os.environ["SEEN"], "w") as out:
    json.dump({"args": args, "passphrase": os.environ.get("DOCKYARD_SIGN_PASSPHRASE")}, out)
print(json.dumps({"event": "build_finished", "digest": "@INDEX@", "duration": 1.0, "time": 2.0}), file=sys.stderr)
json.dump(json.loads(os.environ["METADATA"]), open(meta, "w"))
'''


def test_github_whole_run_masks_the_key_passes_the_passphrase_and_summarises(tmp_path, monkeypatch):
    """main() with a stand-in for `dockyard build` that records its arguments and environment and writes the
    metadata file the contract describes; the real build under act is the e2e test's."""
    fake = tmp_path / "fake_dockyard.py"
    fake.write_text(FAKE_DOCKYARD.replace("@INDEX@", INDEX))
    output, step_summary, seen = tmp_path / "output", tmp_path / "summary.md", tmp_path / "seen.json"
    output.touch()
    for name, value in {"GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": step_summary, "RUNNER_TEMP": tmp_path,
                        "HOME": tmp_path, "SEEN": seen, "METADATA": json.dumps(METADATA),
                        "GITHUB_REPOSITORY": "octo/app", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2",
                        "GITHUB_SERVER_URL": "https://github.com"}.items():
        monkeypatch.setenv(name, str(value))
    set_inputs(monkeypatch, tags="r/a:1", push="true", sbom="true", provenance="mode=max", sign="key", sign_key=KEY,
               sign_key_passphrase="pw-1234")

    def run_fake(command, log, env=None):
        proc = subprocess.run([sys.executable, str(fake), *command[3:]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env)
        log.feed(proc.stderr.splitlines(keepends=True))
        return proc.returncode

    monkeypatch.setattr(action, "run_dockyard", run_fake)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert action.main() == 0
    lines = out.getvalue().splitlines()
    masks = {line for line in lines if line.startswith("::add-mask::")}
    assert {"::add-mask::pw-1234", "::add-mask::MHcCAQEEIKey", "::add-mask::-----BEGIN EC PRIVATE KEY-----"} <= masks
    assert lines.index("::add-mask::pw-1234") < min(i for i, line in enumerate(lines) if not line.startswith("::add"))
    recorded = json.loads(seen.read_text())
    assert recorded["passphrase"] == "pw-1234"
    assert f"--provenance=mode=max,builder-id={RUN_URL}" in recorded["args"]
    assert any(arg.startswith("--sign=key=") and arg.endswith(f",passphrase-env={supplychain.PASSPHRASE_ENV}")
               for arg in recorded["args"])
    md = step_summary.read_text()
    assert f"- attested linux/amd64: SBOM (SPDX), provenance (SLSA v0.2) in `{ATTEST_AMD64}`" in md
    assert f"- signed `{INDEX}` with a key, as tag `r/a:sha256-{'1' * 64}.sig`" in md
    assert not list(tmp_path.glob("dockyard-action-*"))  # the key's directory is gone


def test_github_summary_lists_nothing_without_attestations():
    plain = {key: value for key, value in METADATA.items() if key not in ("attestations", "signatures")}
    md = summary.render(GroupedLog(io.StringIO()), plain)
    assert "attested" not in md and "signed" not in md


def test_action_yml_passes_the_supply_chain_inputs():
    text = (Path(__file__).resolve().parent.parent / "action.yml").read_text()
    for name in ("sbom", "provenance", "attests", "sign", "sign-key", "sign-key-passphrase"):
        assert re.search(rf"^  {name}:\n    description: ", text, re.M), name
        assert f"${{{{ inputs.{name} }}}}" in text, name


# --- GitLab ------------------------------------------------------------------------------------------------------

def test_gitlab_inputs_and_the_jobs_url_as_builder_id(tmp_path):
    inputs = ComponentInputs.from_environment({"DOCKYARD_INPUT_IMAGE": "reg/g/app", "DOCKYARD_INPUT_SBOM": "true",
                                               "DOCKYARD_INPUT_PROVENANCE": "mode=max", "DOCKYARD_INPUT_SIGN": "false"})
    assert (inputs.sbom, inputs.provenance, inputs.sign) == ("true", "mode=max", "")
    assert (inputs.sign_key_variable, inputs.sign_passphrase_variable) == ("COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD")
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    job_url = "https://gitlab.example/g/app/-/jobs/77"
    args = job.build_arguments(inputs, references=["reg/g/app:main"], labels=[], files=files,
                               builder_id=gitlab_signing.builder_id({"CI_JOB_URL": job_url}))
    assert "--sbom=true" in args and f"--provenance=mode=max,builder-id={job_url}" in args
    assert not any(arg.startswith("--sign") for arg in args)


def test_gitlab_key_from_a_file_variable_or_its_content_and_the_passphrase_by_name(tmp_path):
    key = tmp_path / "COSIGN_PRIVATE_KEY"
    key.write_text(KEY)
    inputs = ComponentInputs(image="reg/g/app", sign="key")
    by_file = gitlab_signing.signing(inputs, {"COSIGN_PRIVATE_KEY": str(key), "COSIGN_PASSWORD": "pw"}, tmp_path)
    assert by_file == Signing(key_file=str(key), passphrase_env="COSIGN_PASSWORD")
    private = tmp_path / "private"
    private.mkdir()
    by_value = gitlab_signing.signing(inputs, {"COSIGN_PRIVATE_KEY": KEY}, private)
    assert by_value == Signing(key_file=str(private / "signing.key"))  # no passphrase variable set: none named
    assert (private / "signing.key").read_text() == KEY + "\n"
    assert (private / "signing.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("inputs, environ, subject, words", [
    (ComponentInputs(image="r/a", sign="key"), {}, "input sign-key-variable", "COSIGN_PRIVATE_KEY is not set"),
    (ComponentInputs(image="r/a", sign="key"), {"COSIGN_PRIVATE_KEY": "/nowhere/key"}, "input sign-key-variable",
     "names no file"),
    (ComponentInputs(image="r/a", sign="key", sign_key_variable="$KEY"), {}, "input sign-key-variable",
     "not a variable name"),
    (ComponentInputs(image="r/a", sign="keyless"), {}, "input sign", "SIGSTORE_ID_TOKEN is not set"),
])
def test_gitlab_signing_errors_name_the_input(tmp_path, inputs, environ, subject, words):
    with pytest.raises(UsageError) as info:
        gitlab_signing.signing(inputs, environ, tmp_path)
    assert info.value.subject == subject and words in info.value.message


def test_gitlab_keyless_uses_the_jobs_id_token():
    signing = gitlab_signing.signing(ComponentInputs(image="r/a", sign="keyless"), {"SIGSTORE_ID_TOKEN": "jwt"},
                                     Path("/nonexistent"))
    assert signing.argument() == "keyless,oidc-token-env=SIGSTORE_ID_TOKEN"


def test_gitlab_job_log_lists_what_was_attested_and_signed(tmp_path, capsys):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    files.metadata.write_text(json.dumps(METADATA))
    job.publish(tmp_path / "results", files, ComponentInputs(image="reg/g/app"), ["reg/g/app:main"], {})
    out = capsys.readouterr().out
    assert f"attested linux/arm64: SBOM (SPDX), provenance (SLSA v0.2) in {ATTEST_ARM64}" in out
    assert f"signed {INDEX} with a key, as tag r/a:sha256-{'1' * 64}.sig" in out


# --- Jenkins -----------------------------------------------------------------------------------------------------

def _step_files(tmp_path):
    return step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                          digest=tmp_path / "d", metadata=tmp_path / "m")


def test_jenkins_sbom_provenance_and_the_bound_key_file(tmp_path):
    key = tmp_path / "secret.key"
    key.write_text(KEY)
    build_url = "https://jenkins.example/job/app/12/"
    request = step.build_request({"image": "r/app", "references": ["r/app:1"], "push": True, "sbom": True,
                                  "provenance": "mode=max",
                                  "signing": {"keyVariable": "DOCKYARD_SIGNING_KEY",
                                              "passphraseVariable": "DOCKYARD_SIGN_PASSPHRASE"}},
                                 _step_files(tmp_path),
                                 {"BUILD_URL": build_url, "DOCKYARD_SIGNING_KEY": str(key),
                                  "DOCKYARD_SIGN_PASSPHRASE": "pw"})
    args = build_arguments(request)
    assert "--sbom=true" in args and f"--provenance=mode=max,builder-id={build_url}" in args
    assert f"--sign=key={key},passphrase-env=DOCKYARD_SIGN_PASSPHRASE" in args


@pytest.mark.parametrize("request_fields, environ, subject", [
    ({"provenance": "mode=maximal"}, {}, "provenance"),
    ({"sbom": "perhaps"}, {}, "sbom"),
    ({"signing": {"keyVariable": "DOCKYARD_SIGNING_KEY"}}, {}, "signingKeyCredentialsId"),
])
def test_jenkins_supply_chain_errors_name_the_argument(tmp_path, request_fields, environ, subject):
    with pytest.raises(UsageError) as info:
        step.build_request({"image": "r/app", "references": ["r/app:1"], "push": True, **request_fields},
                           _step_files(tmp_path), environ)
    assert info.value.subject == subject


def test_jenkins_manifest_signs_the_index_with_the_bound_key_file(tmp_path):
    """dockyardManifest's `sign: true`: the same request entry as dockyardBuild's, read the same way."""
    from dockyard_integrations.common.manifest import manifest_arguments

    key = tmp_path / "secret.key"
    key.write_text(KEY)
    fields = {"references": ["r/app:1"], "sources": ["r/app@sha256:" + "a" * 64], "push": True}
    signing = {"keyVariable": "DOCKYARD_SIGNING_KEY", "passphraseVariable": "DOCKYARD_SIGN_PASSPHRASE"}
    environ = {"DOCKYARD_SIGNING_KEY": str(key), "DOCKYARD_SIGN_PASSPHRASE": "pw"}
    args = manifest_arguments(step.manifest_request({**fields, "signing": signing}, tmp_path / "d", environ))
    assert f"--sign=key={key},passphrase-env=DOCKYARD_SIGN_PASSPHRASE" in args
    assert not any(arg.startswith("--sign") for arg in manifest_arguments(
        step.manifest_request(fields, tmp_path / "d", environ)))
    with pytest.raises(UsageError) as info:
        step.manifest_request({**fields, "signing": signing}, tmp_path / "d", {})
    assert info.value.subject == "signingKeyCredentialsId"


def test_jenkins_result_file_lists_what_was_attested_and_signed(tmp_path):
    files = _step_files(tmp_path)
    files.metadata.write_text(json.dumps(METADATA))
    values = step.result_values(0, files, "error", None)
    assert values["attested"].splitlines() == supplychain.attestation_lines(METADATA)
    assert values["signed"].splitlines() == supplychain.signature_lines(METADATA)
    files.metadata.write_text(json.dumps({"digest": INDEX}))
    assert "attested" not in step.result_text(step.result_values(0, files, "error", None))


# --- the merge of a distributed build: signing the assembled index ------------------------------------------------

def test_manifest_create_signs_the_index_it_pushes():
    from dockyard_integrations.common.manifest import ManifestRequest, manifest_arguments

    request = ManifestRequest(tags=("r/a:1",), sources=(f"r/a@{IMAGE_AMD64}",), signing=Signing(keyless=True))
    assert manifest_arguments(request) == ["--progress", "json", "--tag", "r/a:1", "--sign=keyless",
                                           f"r/a@{IMAGE_AMD64}"]
    with pytest.raises(UsageError) as info:
        manifest_arguments(ManifestRequest(tags=("r/a:1",), sources=(f"r/a@{IMAGE_AMD64}",), dry_run=True,
                                           signing=Signing(keyless=True)))
    assert info.value.subject == "input sign" and "pushes nothing" in info.value.message


def test_the_gitlab_merge_component_signs_with_the_key_variable(tmp_path):
    from dockyard_integrations.gitlab import merge as gitlab_merge

    inputs = gitlab_merge.MergeInputs.from_environment({"DOCKYARD_INPUT_IMAGE": "reg/g/app",
                                                        "DOCKYARD_INPUT_SIGN": "key"})
    assert (inputs.sign, inputs.sign_key_variable) == ("key", "COSIGN_PRIVATE_KEY")
    key = tmp_path / "key"
    key.write_text(KEY)
    (tmp_path / "digests").mkdir()
    (tmp_path / "digests" / ("a" * 64)).touch()
    sign = gitlab_signing.signing(inputs, {"COSIGN_PRIVATE_KEY": str(key)}, tmp_path)
    request = gitlab_merge.manifest_request(inputs, references=["reg/g/app:1"], digests_dir=tmp_path / "digests",
                                            digest_file=tmp_path / "d", sign=sign)
    from dockyard_integrations.common.manifest import manifest_arguments
    assert f"--sign=key={key}" in manifest_arguments(request)


# --- sign-options: a private Sigstore instance ------------------------------------------------------------------------

def test_sign_options_are_added_to_the_sign_argument():
    options = supplychain.sign_options("fulcio-url=http://127.0.0.1:9/,rekor-url=http://127.0.0.1:9/,"
                                       "trusted-root=/etc/sigstore/root.json")
    assert Signing(keyless=True, oidc_token_env="SIGSTORE_ID_TOKEN", options=options).argument() == (
        "keyless,oidc-token-env=SIGSTORE_ID_TOKEN,fulcio-url=http://127.0.0.1:9/,rekor-url=http://127.0.0.1:9/,"
        "trusted-root=/etc/sigstore/root.json")
    assert supplychain.sign_options("") == ()
    for bad, words in (("fulcio-url", "not KEY=VALUE"), ("key=/tmp/other.key", "the adapter's to give")):
        with pytest.raises(UsageError) as info:
            supplychain.sign_options(bad)
        assert info.value.subject == "input sign-options" and words in info.value.message


def test_github_and_gitlab_pass_sign_options(tmp_path, monkeypatch):
    set_inputs(monkeypatch, sign="keyless", sign_options="fulcio-url=https://fulcio.example,rekor-url=https://rekor.example")
    inputs = ActionInputs.from_environment()
    args = _action_args(tmp_path, push=True, sign=inputs.sign, sign_options=inputs.sign_options)
    assert "--sign=keyless,fulcio-url=https://fulcio.example,rekor-url=https://rekor.example" in args
    with pytest.raises(UsageError) as info:  # options without a signature: the workflow meant to sign
        _action_args(tmp_path, push=True, sign_options=inputs.sign_options)
    assert info.value.subject == "input sign"
    component = ComponentInputs.from_environment({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_SIGN": "keyless",
                                                  "DOCKYARD_INPUT_SIGN_OPTIONS": "trusted-root=/r.json"})
    signing = gitlab_signing.signing(component, {"SIGSTORE_ID_TOKEN": "jwt"}, tmp_path)
    assert signing.argument() == "keyless,oidc-token-env=SIGSTORE_ID_TOKEN,trusted-root=/r.json"
