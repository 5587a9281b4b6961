"""The adapters' local cache input: a directory the CI system keeps between jobs (GitLab's `cache-dir` input for
the job's `cache:` path, Jenkins' `cacheDir` in the workspace) read and written as --cache-from/--cache-to
type=local, mode=max, pushed or not, next to the registry cache; and the GitLab component declares the input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from dockyard.options import RegistryCache
from dockyard_integrations.common.request import build_arguments
from dockyard_integrations.gitlab import job
from dockyard_integrations.gitlab.inputs import ComponentInputs
from dockyard_integrations.jenkins import step

REPO = Path(__file__).resolve().parent.parent


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i in range(len(args) - 1) if args[i] == flag]


def test_gitlab_cache_dir_is_a_local_cache_read_and_written_even_without_push(tmp_path):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    inputs = ComponentInputs.from_environment({"DOCKYARD_INPUT_IMAGE": "reg/g/app",
                                               "DOCKYARD_INPUT_CACHE_DIR": ".dockyard-cache",
                                               "DOCKYARD_INPUT_TYPED": '{"push": false}'})
    args = job.build_arguments(inputs, references=["reg/g/app:x"], labels=[], files=files)
    assert _pairs(args, "--cache-from") == ["type=registry,ref=reg/g/app:buildcache",
                                            "type=local,src=.dockyard-cache"]
    assert _pairs(args, "--cache-to") == ["type=local,dest=.dockyard-cache,mode=max"]
    for value in _pairs(args, "--cache-from"):  # what the adapter writes, dockyard takes
        RegistryCache.parse(value, "--cache-from")
    RegistryCache.parse(_pairs(args, "--cache-to")[0], "--cache-to")
    plain = job.build_arguments(ComponentInputs(image="reg/g/app"), references=["reg/g/app:x"], labels=[], files=files)
    assert not any(v.startswith("type=local") for v in _pairs(plain, "--cache-from") + _pairs(plain, "--cache-to"))


def test_the_component_declares_cache_dir_and_passes_it_to_the_job():
    spec, template = list(yaml.safe_load_all((REPO / "templates" / "build.yml").read_text()))
    assert spec["spec"]["inputs"]["cache-dir"]["default"] == ""
    [job_definition] = template.values()
    assert job_definition["variables"]["DOCKYARD_INPUT_CACHE_DIR"] == "$[[ inputs.cache-dir ]]"


def test_jenkins_cache_dir_is_a_local_cache_in_the_workspace(tmp_path):
    files = step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                           digest=tmp_path / "d", metadata=tmp_path / "m")
    request = step.build_request({"image": "r/app", "references": ["r/app:1"], "cacheDir": ".dockyard-cache"}, files)
    args = build_arguments(request)
    assert _pairs(args, "--cache-from") == ["type=local,src=.dockyard-cache"]
    assert _pairs(args, "--cache-to") == ["type=local,dest=.dockyard-cache,mode=max"]


def test_the_jenkins_step_takes_and_forwards_cache_dir(tmp_path):
    """The step's Groovy half (run by Debian's groovy, as tests/e2e/test_jenkins_step.py does) takes `cacheDir`
    and hands it to the Python half, which makes the local cache flags of it; a non-string is refused."""
    script = ("import io.dockyard.jenkins.BuildRequest\n"
              "println BuildRequest.from([image: 'r/app', cacheDir: 'ci/.dockyard-cache']).toJson()\n"
              "try { BuildRequest.from([image: 'r/app', cacheDir: true]); println 'accepted' }\n"
              "catch (IllegalArgumentException e) { println 'refused: ' + e.message }\n")
    result = subprocess.run(["groovy", "-cp", str(REPO / "integrations/jenkins/src"), "-e", script],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    request_json, refusal = result.stdout.strip().splitlines()[-2:]
    files = step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                           digest=tmp_path / "d", metadata=tmp_path / "m")
    args = build_arguments(step.build_request(json.loads(request_json), files))
    assert _pairs(args, "--cache-to") == ["type=local,dest=ci/.dockyard-cache,mode=max"]
    assert refusal == "refused: cacheDir must be a string (got 'true')"


def test_the_examples_use_inputs_the_adapters_declare():
    """examples/github-actions/actions-cache.yml is a valid workflow (@action-validator/cli) giving the action only
    inputs action.yml declares; examples/gitlab/local-cache.gitlab-ci.yml gives the component only its inputs and
    extends the job the component defines; the Jenkinsfile passes the step's cacheDir."""
    workflow = REPO / "examples" / "github-actions" / "actions-cache.yml"
    validator = REPO / ".ci" / "node" / "node_modules" / ".bin" / "action-validator"
    result = subprocess.run([str(validator), str(workflow)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = yaml.safe_load((REPO / "action.yml").read_text())["inputs"]
    [ours] = [s for s in yaml.safe_load(workflow.read_text())["jobs"]["build"]["steps"]
              if s.get("uses", "").startswith("OWNER/dockyard@")]
    assert set(ours["with"]) <= set(declared) and ours["with"]["cache-to"] == "type=gha,scope=app,mode=max"
    RegistryCache.parse(ours["with"]["cache-to"], "--cache-to")

    spec, template = list(yaml.safe_load_all((REPO / "templates" / "build.yml").read_text()))
    gitlab = yaml.safe_load((REPO / "examples" / "gitlab" / "local-cache.gitlab-ci.yml").read_text())
    inputs = gitlab["include"][0]["inputs"]
    assert set(inputs) <= set(spec["spec"]["inputs"])
    job_name = spec["spec"]["inputs"]["job-name"]["default"]
    assert gitlab[job_name]["cache"]["paths"] == [inputs["cache-dir"] + "/"]
    assert '"$[[ inputs.job-name ]]"' in (REPO / "templates" / "build.yml").read_text()

    jenkinsfile = (REPO / "examples" / "jenkins" / "Jenkinsfile.local-cache").read_text()
    assert "cacheDir: '.dockyard-cache'" in jenkinsfile
