"""The GitHub Action's adapter (integrations/github) without a runner: input parsing, tag derivation, the
mapping onto `dockyard build` flags, masking order and the output file. The whole action under a real runner
(act) is tests/e2e/test_github_action.py."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard.events import BuildFinished, StageStarted, StepFinished, StepLog, StepStarted
from dockyard_integrations.github import action, merge, metadata, privileges, summary
from dockyard_integrations.github.flags import ResultFiles, build_arguments
from dockyard_integrations.github.inputs import ActionInputs, split_list
from dockyard_integrations.github.log import GroupedLog
from dockyard_integrations.github.metadata import GitContext

REPO = Path(__file__).resolve().parent.parent


def set_inputs(monkeypatch, **inputs: str) -> None:
    for name, value in inputs.items():
        monkeypatch.setenv(f"INPUT_{name.upper()}", value)


# --- inputs ---------------------------------------------------------------------------------------------------

def test_lists_split_like_build_push_action():
    assert split_list("a/b:1, a/b:2\na/b:3\n\n") == ["a/b:1", "a/b:2", "a/b:3"]
    # build-args, labels, secrets: one item per line, commas kept (csv records joined again)
    assert split_list("X=1,2\n Y = z \n", ignore_comma=True) == ["X=1,2", "Y = z"]
    # a quoted field may span lines: a multi-line secret value
    assert split_list('"KEY=line1\nline2"\nOTHER=x', ignore_comma=True) == ["KEY=line1\nline2", "OTHER=x"]


def test_inputs_from_environment(monkeypatch):
    set_inputs(monkeypatch, tags="r/a:1,r/a:2", build_args="A=1,2\nB=3", push="true", no_cache="False",
               lint="Warning", extra_args="--compression zstd --label 'x=a b'", secret_envs="t=TOKEN,u=USER",
               build_contexts="base=docker-image://alpine:3.20\nsrc=https://host/repo.git#v1,sub\n")
    inputs = ActionInputs.from_environment()
    assert inputs.tags == ("r/a:1", "r/a:2") and inputs.build_args == ("A=1,2", "B=3")
    # build-push-action's build-contexts: one NAME=VALUE per line, commas kept
    assert inputs.build_contexts == ("base=docker-image://alpine:3.20", "src=https://host/repo.git#v1,sub")
    assert inputs.push and not inputs.no_cache and inputs.lint == "warning" and inputs.context == "."
    assert inputs.extra_args == ("--compression", "zstd", "--label", "x=a b")
    assert inputs.secret_envs == ("t=TOKEN", "u=USER")


@pytest.mark.parametrize("name, value, words", [("push", "yes", "not a boolean"), ("lint", "fatal", "unknown level"),
                                                ("extra_args", "'open", "cannot split")])
def test_bad_inputs_are_usage_errors(monkeypatch, name, value, words):
    set_inputs(monkeypatch, **{name: value})
    with pytest.raises(UsageError) as err:
        ActionInputs.from_environment()
    assert words in err.value.message and err.value.subject == f"input {name.replace('_', '-')}"


# --- tags and labels -------------------------------------------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("ref, event, expected", [
    ("refs/heads/main", "push", ["main", "sha-0123456"]),
    ("refs/heads/feature/Login#2", "push", ["feature-Login-2", "sha-0123456"]),
    ("refs/pull/42/merge", "pull_request", ["pr-42", "sha-0123456"]),
    ("refs/tags/v1.2.3", "push", ["1.2.3", "1.2", "1", "latest", "sha-0123456"]),
    ("refs/tags/v2.0.0-rc.1", "push", ["2.0.0-rc.1", "sha-0123456"]),  # a pre-release: no 2.0, 2 or latest
    ("refs/tags/release-x", "push", ["release-x", "latest", "sha-0123456"]),  # type=ref,event=tag
])
def test_tags_derived_like_metadata_action(ref, event, expected):
    assert metadata.derive_tag_names(GitContext(ref=ref, sha=SHA, event_name=event)) == expected


def test_pr_number_comes_from_the_event_payload(tmp_path):
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"number": 7, "pull_request": {"number": 7}}))
    ctx = GitContext.from_environment({"GITHUB_REF": "refs/pull/7/merge", "GITHUB_SHA": SHA,
                                       "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(payload),
                                       "GITHUB_REPOSITORY": "Octo/App"})
    assert metadata.derive_tags([], ctx) == ["ghcr.io/octo/app:pr-7", "ghcr.io/octo/app:sha-0123456"]
    assert metadata.derive_tags(["Reg.io/x"], ctx)[0] == "reg.io/x:pr-7"


def test_standard_labels_unless_the_user_set_them():
    ctx = GitContext(ref="refs/heads/main", sha=SHA, repository="octo/app", server_url="https://github.com")
    labels = metadata.standard_labels(ctx, ["org.opencontainers.image.source=elsewhere"],
                                      {"SOURCE_DATE_EPOCH": "0"})
    assert labels == [f"org.opencontainers.image.revision={SHA}",
                      "org.opencontainers.image.created=1970-01-01T00:00:00Z"]
    assert metadata.standard_labels(ctx, [], {})[0] == "org.opencontainers.image.source=https://github.com/octo/app"


# --- flags -----------------------------------------------------------------------------------------------------

def _args(tmp_path, **fields) -> list[str]:
    files = ResultFiles(metadata=tmp_path / "m.json", report=tmp_path / "r.github")
    return build_arguments(ActionInputs(**fields), tags=["r/a:1"], labels=["l=1"], secret_dir=tmp_path / "s",
                           files=files)


def test_flag_mapping(tmp_path):
    args = _args(tmp_path, context="app", file="app/Containerfile", build_args=("A=1,2",), push=True,
                 no_cache=True, target="release", annotations=("manifest:k=v",), cache_from=("type=registry,ref=r/c",),
                 cache_to=("type=registry,ref=r/c,mode=max",), insecure_registries=("reg:5000",),
                 registry_mirrors=("mirror.io",), platforms=("linux/amd64",), outputs=("type=oci,dest=out",),
                 secrets=("tok=s3cr3t=x",), secret_envs=("e=VAR",), secret_files=("f=/run/key",), lint="warning",
                 extra_args=("--compression", "zstd"), build_contexts=("base=docker-image://alpine:3.20", "lib=../lib"))
    joined = " ".join(args)
    for expected in ("--progress json", f"--metadata-file {tmp_path}/m.json", "--check --fail-on warning",
                     f"--report github={tmp_path}/r.github", "--file app/Containerfile", "--tag r/a:1",
                     "--build-arg A=1,2", "--build-context base=docker-image://alpine:3.20",
                     "--build-context lib=../lib", "--label l=1", "--annotation manifest:k=v",
                     "--cache-from type=registry,ref=r/c", "--cache-to type=registry,ref=r/c,mode=max",
                     "--insecure-registry reg:5000", "--registry-mirror mirror.io", "--target release", "--push",
                     "--no-cache", "--platform linux/amd64", "--output type=oci,dest=out",
                     f"--secret id=tok,src={tmp_path}/s/secret-1", "--secret id=e,env=VAR",
                     "--secret id=f,src=/run/key", "--compression zstd"):
        assert expected in joined
    assert args[-1] == "app"  # the context last, after extra-args
    secret = tmp_path / "s" / "secret-1"
    assert secret.read_text() == "s3cr3t=x" and secret.stat().st_mode & 0o777 == 0o600
    assert "s3cr3t" not in joined  # the value travels in a file, never on the command line


@pytest.mark.parametrize("fields, words", [
    ({"platforms": ("linux/amd64", "linux/amd46")}, "unknown architecture 'amd46'"),
    ({"platforms": ("arm64",)}, "expected OS/ARCH[/VARIANT]"),
    ({"outputs": ("type=local,dest=out",)}, "type must be registry, oci or docker"),
    ({"secrets": ("no-equals-sign-here",)}, "item 1 is not KEY=VALUE"),
])
def test_unsupported_values_fail_clearly(tmp_path, fields, words):
    with pytest.raises(UsageError) as err:
        _args(tmp_path, **fields)
    assert words in err.value.message and err.value.subject.startswith("input ")
    assert "no-equals-sign-here" not in err.value.render()  # a malformed secret is named by position only


def test_platforms_as_build_push_action_lists_them(tmp_path, monkeypatch):
    """Comma- or newline-separated, as build-push-action's `platforms`: one `--platform` list, one index."""
    set_inputs(monkeypatch, platforms="linux/amd64,linux/arm64\nlinux/arm/v7\n")
    inputs = ActionInputs.from_environment()
    assert inputs.platforms == ("linux/amd64", "linux/arm64", "linux/arm/v7")
    args = _args(tmp_path, platforms=inputs.platforms)
    assert args[args.index("--platform") + 1] == "linux/amd64,linux/arm64,linux/arm/v7"


PUSH_BY_DIGEST = "type=image,name=ghcr.io/octo/app,push-by-digest=true,name-canonical=true,push=true"


def test_a_matrix_job_pushing_by_digest_gets_no_derived_tags(tmp_path, monkeypatch):
    """Its image is tagged only on the index the merge job assembles; a build without that output derives them."""
    environ = {"GITHUB_REF": "refs/heads/main", "GITHUB_SHA": SHA, "GITHUB_REPOSITORY": "octo/app"}
    by_digest = ActionInputs(outputs=(PUSH_BY_DIGEST,), platforms=("linux/arm64",))
    assert action.resolve_tags_and_labels(by_digest, environ)[0] == []
    assert action.resolve_tags_and_labels(ActionInputs(), environ)[0] == [
        "ghcr.io/octo/app:main", "ghcr.io/octo/app:sha-0123456"]
    args = _args(tmp_path, outputs=by_digest.outputs, platforms=by_digest.platforms)
    assert args[args.index("--output") + 1] == PUSH_BY_DIGEST and "--push" not in args


# --- merge mode ---------------------------------------------------------------------------------------------------

DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_sources_or_merge_digests_switch_the_action_to_merging(tmp_path, monkeypatch):
    digests = tmp_path / "digests"
    digests.mkdir()
    for digest in (DIGEST_B, DIGEST_A):
        (digests / digest.removeprefix("sha256:")).touch()
    set_inputs(monkeypatch, images="ghcr.io/octo/app", merge_digests=str(digests), push="true",
               sources="ghcr.io/octo/app:extra", annotations="index:org.opencontainers.image.title=app")
    inputs = ActionInputs.from_environment()
    assert inputs.merges and not ActionInputs().merges
    request = merge.manifest_request(inputs, tags=["ghcr.io/octo/app:1"], files=merge.MergeFiles(tmp_path / "d"))
    assert request.sources == ("ghcr.io/octo/app:extra", f"ghcr.io/octo/app@{DIGEST_A}",
                               f"ghcr.io/octo/app@{DIGEST_B}")
    assert request.annotations == ("index:org.opencontainers.image.title=app",) and not request.dry_run
    unpushed = merge.manifest_request(ActionInputs(sources=(f"r/a@{DIGEST_A}",)), tags=["r/a:1"],
                                      files=merge.MergeFiles(tmp_path / "d"))
    assert unpushed.dry_run  # push: false (a pull request) assembles the index and pushes nothing


@pytest.mark.parametrize("fields, subject", [
    ({"sources": (f"r/a@{DIGEST_A}",), "platforms": ("linux/arm64",)}, "input platforms"),
    ({"sources": (f"r/a@{DIGEST_A}",), "build_args": ("A=1",)}, "input build-args"),
    ({"merge_digests": "/nonexistent", "images": ("r/a",)}, "input merge-digests"),
    ({"merge_digests": "/tmp"}, "input images"),
])
def test_merge_mode_refuses_what_it_cannot_do_naming_the_input(tmp_path, fields, subject):
    with pytest.raises(UsageError) as err:
        merge.manifest_request(ActionInputs(**fields), tags=["r/a:1"], files=merge.MergeFiles(tmp_path / "d"))
    assert err.value.subject == subject


FAKE_MANIFEST = r'''
import sys
args = sys.argv[1:]
digest_file = args[args.index("--digest-file") + 1]
open(digest_file, "w").write("sha256:" + "e" * 64 + "\n")
print("assembled " + " ".join(a for a in args if "@" in a), file=sys.stderr)
'''


def test_whole_merge_run_writes_the_index_outputs_and_summary(tmp_path, monkeypatch):
    """main() in merge mode with a stand-in for `dockyard manifest create` (the real one under a runner is the e2e
    test's): it is given the tags and sources, and the index's digest becomes the `digest` output."""
    fake = tmp_path / "fake_manifest.py"
    fake.write_text(FAKE_MANIFEST)
    output, step_summary = tmp_path / "output", tmp_path / "summary.md"
    output.touch()
    for name, value in {"GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": step_summary, "RUNNER_TEMP": tmp_path,
                        "HOME": tmp_path, "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_SHA": SHA}.items():
        monkeypatch.setenv(name, str(value))
    set_inputs(monkeypatch, images="r/a", sources=f"r/a@{DIGEST_A},r/a@{DIGEST_B}", push="true")
    commands = []

    def fake_run(command, log, env=None):
        commands.append(command)
        return _run_fake([sys.executable, str(fake), *command[3:]], log)

    monkeypatch.setattr(action, "run_dockyard", fake_run)
    index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"digest": DIGEST_A, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": DIGEST_B, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}]}
    monkeypatch.setattr(action, "read_back", lambda tag, insecure: index)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert action.main() == 0
    [command] = commands
    assert command[3:5] == ["manifest", "create"]
    assert command[5:15] == ["--progress", "json", "--tag", "r/a:1.2.3", "--tag", "r/a:1.2", "--tag", "r/a:1",
                             "--tag", "r/a:latest"]
    assert command[-2:] == [f"r/a@{DIGEST_A}", f"r/a@{DIGEST_B}"]
    text = output.read_text()
    digest = re.search(r"^digest<<(\S+)\n(.*?)\n\1$", text, re.M | re.S).group(2)
    assert digest == "sha256:" + "e" * 64
    meta = json.loads(re.search(r"^metadata<<(\S+)\n(.*?)\n\1$", text, re.M | re.S).group(2))
    assert meta["containerimage.digest"] == digest and meta["sources"] == [f"r/a@{DIGEST_A}", f"r/a@{DIGEST_B}"]
    assert [p["platform"] for p in meta["platforms"]] == ["linux/amd64", "linux/arm/v7"]
    md = step_summary.read_text()
    assert f"- index: `{digest}`" in md and "| linux/arm/v7 | `" + DIGEST_B + "` |" in md
    assert "assembled r/a@" in out.getvalue()


FAILING_MANIFEST = r'''
import json, sys
print(json.dumps({"event": "build_failed", "exit_code": 6, "error": "RegistryError", "time": 1.0,
                  "message": "manifest sha256:aaaa not found", "subject": "r/a@sha256:aaaa",
                  "hint": "did every build job push?"}), file=sys.stderr)
print("error: r/a@sha256:aaaa: manifest sha256:aaaa not found", file=sys.stderr)
sys.exit(6)
'''


def test_a_failed_merge_is_one_error_annotation_and_no_outputs(tmp_path, monkeypatch):
    fake = tmp_path / "failing_manifest.py"
    fake.write_text(FAILING_MANIFEST)
    output, step_summary = tmp_path / "output", tmp_path / "summary.md"
    output.touch()
    for name, value in {"GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": step_summary, "RUNNER_TEMP": tmp_path,
                        "HOME": tmp_path}.items():
        monkeypatch.setenv(name, str(value))
    set_inputs(monkeypatch, tags="r/a:1", sources=f"r/a@{DIGEST_A}", push="true")
    monkeypatch.setattr(action, "run_dockyard",
                        lambda command, log, **_: _run_fake([sys.executable, str(fake), *command[3:]], log))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert action.main() == 6
    errors = [line for line in out.getvalue().splitlines() if line.startswith("::error")]
    assert errors == ["::error title=RegistryError (exit code 6)::r/a@sha256:aaaa: manifest sha256:aaaa not found"
                      "%0Ahint: did every build job push?"]
    assert output.read_text() == ""  # no digest of an index that was not made
    assert step_summary.read_text().startswith("## dockyard manifest create failed")


def test_privileges():
    root = privileges.choose({}, euid=0, has_sudo=False)
    assert root.prefix == () and "as root" in root.note
    sudo = privileges.choose({"HOME": "/home/runner", "USER": "runner"}, euid=1001, has_sudo=True)
    assert sudo.prefix[:3] == ("sudo", "-n", "-E") and "DOCKER_CONFIG=/home/runner/.docker" in sudo.prefix
    assert "sudo" in sudo.note
    user = privileges.choose({"USER": "runner"}, euid=1001, has_sudo=False)
    assert user.prefix == () and "as runner" in user.note and "unprivileged" in user.note


# --- a whole run: masking first, outputs, summary, groups --------------------------------------------------------

FAKE_DOCKYARD = r'''
import json, sys
args = sys.argv[1:]
meta = args[args.index("--metadata-file") + 1]
events = [
    {"event": "build_started", "dockerfile": "Dockerfile", "context": ".", "stages": 1, "steps": 2, "time": 1.0},
    {"event": "stage_started", "stage": "final", "base": "busybox", "time": 1.1},
    {"event": "step_started", "step": 1, "total": 2, "stage": "final", "text": "RUN cat /run/secrets/tok",
     "file": "Dockerfile", "line": 2, "time": 1.2},
    {"event": "step_log", "step": 1, "line": "::warning::injected s3cr3t-value", "time": 1.3},
    {"event": "step_finished", "step": 1, "duration": 0.5, "layer_size": 2048, "cached": False, "time": 1.7},
    {"event": "build_finished", "digest": "sha256:" + "d" * 64, "duration": 1.0, "time": 2.0},
]
for e in events:
    print(json.dumps(e), file=sys.stderr)
json.dump({"digest": "sha256:" + "d" * 64, "config_digest": "sha256:" + "c" * 64, "tags": ["r/a:1"],
           "pushed": ["r/a:1"], "platform": "linux/amd64", "layers": [{"digest": "x", "size": 2048}],
           "steps": [], "cache": {"hits": 0, "misses": 1}}, open(meta, "w"))
'''


def test_whole_run_masks_before_printing_and_writes_outputs(tmp_path, monkeypatch):
    """The adapter's main() with a stand-in for `dockyard build` (a script that prints the JSON events a real
    build prints: the real build under a runner is the e2e test's job), to check the order of what it prints."""
    fake = tmp_path / "fake_dockyard.py"
    fake.write_text(FAKE_DOCKYARD)
    output, step_summary = tmp_path / "output", tmp_path / "summary.md"
    output.touch()
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"r": {"auth": "dXNlcjpyZWdwYXNz"}}}))
    set_inputs(monkeypatch, tags="r/a:1\nr/a:latest", secrets="tok=s3cr3t-value")
    monkeypatch.setattr(action, "run_dockyard",
                        lambda command, log, **_: _run_fake([sys.executable, str(fake), *command[3:]], log))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert action.main() == 0
    lines = out.getvalue().splitlines()
    masks = [i for i, line in enumerate(lines) if line.startswith("::add-mask::")]
    assert {lines[i] for i in masks} >= {"::add-mask::s3cr3t-value", "::add-mask::regpass",
                                         "::add-mask::dXNlcjpyZWdwYXNz"}
    assert masks == list(range(len(masks)))  # every mask comes before any other line
    assert lines.index("::group::stage final (FROM busybox)") < lines.index("::endgroup::")
    # the RUN step's `::warning::` line is prefixed by the renderer: it cannot issue a workflow command
    assert not any(line.startswith("::warning") for line in lines)
    assert any(line.endswith("#1 ::warning::injected s3cr3t-value") for line in lines)

    text = output.read_text()
    blocks = dict(re.findall(r"^(\w+)<<(ghadelimiter_[0-9a-f-]+)\n", text, re.M))
    assert set(blocks) == {"digest", "imageid", "metadata", "tags"}
    tags_value = re.search(r"^tags<<(\S+)\n(.*?)\n\1$", text, re.M | re.S).group(2)
    assert tags_value == "r/a:1\nr/a:latest"
    assert len(set(blocks.values())) == 4  # a fresh random delimiter per output
    assert "digest<<" in text and "sha256:" + "d" * 64 in text
    md = step_summary.read_text()
    assert "- pushed: `r/a:1`" in md and "| 1 | final | `RUN cat /run/secrets/tok` | ran | 0.5s | 2.0 kB |" in md
    assert not list(tmp_path.glob("dockyard-action-*"))  # the secrets' directory is gone


def _run_fake(command, log):
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log.feed(proc.stderr.splitlines(keepends=True))
    return proc.returncode


def test_summary_of_a_failed_build():
    log = GroupedLog(io.StringIO())
    for e in (StageStarted(stage="s", base="b"), StepStarted(step=1, total=1, stage="s", text="RUN false",
                                                             file="Dockerfile", line=2),
              StepLog(step=1, line="boom"), StepFinished(step=1, duration=0.1, failed=True),
              BuildFinished(digest=None, duration=0.2, error="x")):
        log.event(e)
    log.line("error: Dockerfile:2: RUN exited with 1: false")
    md = summary.render(log, None)
    assert "failed" in md.splitlines()[0] and "error: Dockerfile:2" in md and "| RUN false` | failed |" not in md
    assert "| 1 | s | `RUN false` | failed | 0.1s |  |" in md


def test_action_yml_is_valid():
    """@action-validator/cli (npm, installed by scripts/install.sh into .ci/node) against action.yml."""
    validator = REPO / ".ci" / "node" / "node_modules" / ".bin" / "action-validator"
    assert validator.exists(), "run scripts/install.sh (npm ci --prefix .ci/node)"
    result = subprocess.run([str(validator), str(REPO / "action.yml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_input_reaches_the_adapter():
    """Each input of action.yml is passed to the build step as INPUT_<NAME>, and the adapter reads each one."""
    text = (REPO / "action.yml").read_text()
    inputs = re.findall(r"^  ([a-z-]+):\n    description:", text.split("\noutputs:")[0], re.M)
    passed = dict(re.findall(r"^        INPUT_([A-Z_]+): \$\{\{ inputs\.([a-z-]+) \}\}$", text, re.M))
    assert sorted(passed.values()) == sorted(inputs)
    assert all(name == value.upper().replace("-", "_") for name, value in passed.items())
    source = (REPO / "integrations" / "github" / "inputs.py").read_text()
    assert all(f'"{name}"' in source for name in inputs)


def test_the_matrix_and_merge_example_is_a_valid_workflow_using_the_actions_inputs():
    """examples/github-actions/multi-platform-runners.yml (docs/github-action.md's distributed build): valid for
    @action-validator/cli, and every input it gives the action is one action.yml declares."""
    import yaml

    example = REPO / "examples" / "github-actions" / "multi-platform-runners.yml"
    validator = REPO / ".ci" / "node" / "node_modules" / ".bin" / "action-validator"
    result = subprocess.run([str(validator), str(example)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = yaml.safe_load((REPO / "action.yml").read_text())["inputs"]
    steps = [step for job in yaml.safe_load(example.read_text())["jobs"].values() for step in job["steps"]]
    ours = [step for step in steps if step.get("uses", "").startswith("OWNER/dockyard@")]
    assert len(ours) == 2 and all(set(step["with"]) <= set(declared) for step in ours)
    assert "merge-digests" in ours[1]["with"] and "push-by-digest=true" in ours[0]["with"]["outputs"]


def test_action_yml_never_interpolates_expressions_into_scripts():
    """Inputs reach the scripts only through `env:` (script injection otherwise): no `${{` in any `run:` body."""
    lines = (REPO / "action.yml").read_text().splitlines()
    bodies, indent = [], None
    for line in lines:
        if indent is not None and (not line.strip() or len(line) - len(line.lstrip()) > indent):
            bodies.append(line)
            continue
        indent = len(line) - len(line.lstrip()) if line.strip().startswith("run: |") else None
    assert len(bodies) > 5 and not [b for b in bodies if "${{" in b]
