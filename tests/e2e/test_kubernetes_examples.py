"""examples/kubernetes (a Job) and examples/tekton (a Task in the Tekton catalog's layout), checked twice:

* against schemas: the Job with kubernetes-validate's Kubernetes schemas (strict: no unknown fields); the Task
  with a JSON schema derived from Tekton's v1 Go types (tests/support/schemas/tekton-task-v1.json: no Python or
  npm package ships Tekton's CRD schemas), with its Steps' container fields checked against Kubernetes' own
  Container schema; and both against the "restricted" Pod Security Standard's rules;
* by running them as the cluster would, since no cluster runs here: the container (image, args, env, security
  context as podman flags, volumes as bind mounts) under podman, from dockyard's builder image built by dockyard
  from images/builder/Dockerfile. For the Task, Tekton's substitutions are made from the YAML itself
  ($(params.*), the EXTRA_ARGS array spliced in, $(workspaces.*.path), $(results.*.path)), workspaces are bind
  mounts under /workspace, /tekton/results is a directory, and the result files are read back.

The image is the one tests/support/builder_image.py builds (its Dockerfile installs proot with apt from a
loopback repository), shared with tests/e2e/test_builder_image.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import write_context
from tests.support.podman import RESTRICTED_PROFILE as RESTRICTED
from tests.support.podman import Podman, available
from tests.support.registry import RegistryServer

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB = REPO_ROOT / "examples/kubernetes/dockyard-job.yaml"
TASK = REPO_ROOT / "examples/tekton/task/dockyard/0.1/dockyard.yaml"
TASK_SCHEMA = REPO_ROOT / "tests/support/schemas/tekton-task-v1.json"
USER, PASSWORD = "tekton", "Chains-Pa55word"


def _load(path: Path) -> dict:
    import yaml

    (document,) = list(yaml.safe_load_all(path.read_text()))
    return document


# --- schemas -----------------------------------------------------------------------------------------------

def _kubernetes_errors(document: dict) -> list[str]:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    try:
        kubernetes_validate.validate(document, latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"]
    return []


def _restricted_violations(pod: dict, containers: list[dict]) -> list[str]:
    """The "restricted" Pod Security Standard (v1.25+) for a pod spec's security contexts and `containers`:
    what the admission controller would refuse."""
    pod_context = pod.get("securityContext", {})
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                         "projected", "secret"}:
            found.append(f"volume {volume['name']} is of a kind the profile refuses: {sorted(kinds)}")
    for container in containers:
        context, name = container.get("securityContext", {}), container.get("name")
        setting = lambda key: context.get(key, pod_context.get(key))  # noqa: E731, B023 (used in this iteration)
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if setting("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if setting("runAsUser") == 0:
            found.append(f"{name}: runAsUser is 0")
        if (setting("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities add more than NET_BIND_SERVICE")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: a host port")
    return found


def test_the_job_is_a_valid_kubernetes_job_the_restricted_profile_admits():
    job = _load(JOB)
    assert _kubernetes_errors(job) == []
    pod = job["spec"]["template"]["spec"]
    assert _restricted_violations(pod, pod["containers"]) == []
    (container,) = pod["containers"]
    assert "--digest-file=/dev/termination-log" in container["args"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/kaniko/.docker", "/workspace"}


def test_schema_checks_catch_what_they_are_for():
    """The checks above can fail: an unknown field, a wrong type, and a privileged container are each found."""
    job = _load(JOB)
    job["spec"]["template"]["spec"]["containers"][0]["argz"] = []
    assert _kubernetes_errors(job)
    task = _load(TASK)
    task["spec"]["params"][0]["type"] = "list"
    assert _tekton_errors(task)
    pod = _load(JOB)["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"] = {"privileged": True}
    assert "dockyard: privileged" in _restricted_violations(pod, pod["containers"])


def _tekton_errors(task: dict) -> list[str]:
    """The Task against the schema derived from Tekton's types, and each Step's container fields against
    Kubernetes' Container (a Tekton Step embeds them)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(TASK_SCHEMA.read_text()))
    errors = [f"{'.'.join(str(p) for p in e.path)}: {e.message}" for e in validator.iter_errors(task)]
    for step in task.get("spec", {}).get("steps", []):
        container = {k: v for k, v in step.items() if k not in ("script", "timeout", "onError", "workspaces",
                                                                "stdoutConfig", "stderrConfig", "results",
                                                                "params", "ref", "when", "computeResources",
                                                                "displayName")}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "step"},
               # Tekton substitutes $(params.BUILDER_IMAGE) before the pod is made
               "spec": {"containers": [{**container, "image": "example/image"}]}}
        errors += [f"step {step.get('name')}: {e}" for e in _kubernetes_errors(pod)]
    return errors


def test_the_task_matches_tektons_types_and_kanikos_task_interface():
    task = _load(TASK)
    assert _tekton_errors(task) == []
    spec = task["spec"]
    params = {p["name"]: p for p in spec["params"]}
    assert set(params) == {"IMAGE", "DOCKERFILE", "CONTEXT", "EXTRA_ARGS", "BUILDER_IMAGE"}
    assert (params["DOCKERFILE"]["default"], params["CONTEXT"]["default"]) == ("./Dockerfile", "./")
    assert params["EXTRA_ARGS"]["type"] == "array" and "default" not in params["IMAGE"]
    workspaces = {w["name"]: w for w in spec["workspaces"]}
    assert set(workspaces) == {"source", "dockerconfig"}
    assert workspaces["dockerconfig"] == {**workspaces["dockerconfig"], "optional": True,
                                          "mountPath": "/kaniko/.docker"}
    assert {r["name"] for r in spec["results"]} == {"IMAGE_DIGEST", "IMAGE_URL"}
    steps = [{**spec["stepTemplate"], **s} for s in spec["steps"]]
    assert _restricted_violations({}, steps) == []
    # The catalog's layout: task/NAME/VERSION/NAME.yaml, its version label, a README beside it.
    assert TASK.parent.name == task["metadata"]["labels"]["app.kubernetes.io/version"]
    assert TASK.stem == TASK.parents[1].name == task["metadata"]["name"]
    assert (TASK.parent / "README.md").is_file()


def _code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", path.read_text(), flags=re.S | re.M)


def _pod(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "example"}, "spec": spec}


@pytest.mark.parametrize("guide", ["docs/migrating-from-kaniko.md", "docs/jenkins.md"])
def test_the_guides_pods_are_valid_and_restricted(guide):
    """The pods the guides show (Jenkins pod templates, the Argo Workflows template's container) pass Kubernetes'
    schema and the restricted profile; their other YAML and TOML blocks parse."""
    import tomllib

    import yaml

    path = REPO_ROOT / guide
    pods = []
    for block in _code_blocks(path, "yaml"):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and document.get("kind") == "WorkflowTemplate":
            spec, (template,) = document["spec"], document["spec"]["templates"]
            pods.append({"securityContext": spec["securityContext"], "volumes": spec["volumes"],
                         "containers": [{"name": template["name"], **template["container"]}]})
    for block in _code_blocks(path, "groovy"):
        pods += [yaml.safe_load(text)["spec"] for text in re.findall(r"podTemplate\(yaml: '''(.*?)'''", block, re.S)]
    for block in _code_blocks(path, "toml"):
        tomllib.loads(block)
    assert pods, f"{guide} shows no pod"
    for pod in pods:
        assert _kubernetes_errors(_pod(pod)) == []
        assert _restricted_violations(pod, pod["containers"]) == []


# --- running them ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman(registry, auth_registry, tmp_path_factory) -> Podman:
    why = available()
    if why:
        pytest.skip(why)
    engine = Podman(tmp_path_factory.mktemp("podman"), [registry.host, auth_registry.host])
    yield engine
    engine.remove_all()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("tekton-registry"), htpasswd={USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def builder_image(podman, builder_images) -> str:
    """dockyard's builder image (tests/e2e/conftest.py builds it once per session), in podman's storage."""
    podman.pull(builder_images.executor)
    return builder_images.executor


def _docker_config(directory: Path, registry: RegistryServer) -> Path:
    """A docker config.json as a kubernetes.io/dockerconfigjson Secret's key projects it."""
    directory.mkdir(parents=True)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    os.chmod(directory / "config.json", 0o644)  # a Secret volume's default mode
    return directory


def _skopeo_digest(ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                          f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Digest"]


def _security_flags(context: dict) -> list[str]:
    """A container's securityContext as podman flags (podman applies its default seccomp profile, the
    RuntimeDefault, unless told otherwise)."""
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    flags = ["--user", f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"]
    if context["capabilities"]["drop"] == ["ALL"]:
        flags.append("--cap-drop=all")
    if context["allowPrivilegeEscalation"] is False:
        flags += ["--security-opt", "no-new-privileges"]
    return flags


def _env_flags(env: list[dict]) -> list[str]:
    return [f"--env={e['name']}={e['value']}" for e in env]


def _context_files(base: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM {base}\nWORKDIR /srv\nCOPY app.txt ./\nRUN echo \"built by $(id -u)\" > /srv/built\n"
                          "USER 1000\n",
            "app.txt": "app\n"}


def _pushed_file(ref: str, path: str, workdir: Path) -> bytes:
    """A file of the pushed image (the last layer that has it), read with skopeo."""
    import tarfile

    layout = workdir / "pulled"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds",
                    f"{USER}:{PASSWORD}", f"docker://{ref}", f"oci:{layout}:pulled"],
                   check=True, capture_output=True, timeout=120)
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    index = json.loads((layout / "index.json").read_text())
    found = None
    for layer in json.loads(blob(index["manifests"][0]["digest"]).read_text())["layers"]:
        with tarfile.open(blob(layer["digest"]), "r:*") as tar:
            for member in tar:
                if member.name.lstrip("./") == path.lstrip("/") and member.isfile():
                    found = tar.extractfile(member).read()
    assert found is not None, f"{path} is not in {ref}"
    return found


def _open_tree(path: Path) -> None:
    """World-readable, as a volume's files are to the pod's user."""
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def test_the_job_s_container_builds_and_pushes_as_uid_1000(podman, builder_image, busybox_base, auth_registry,
                                                           tmp_path):
    job = _load(JOB)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = write_context(tmp_path / "context", _context_files(busybox_base))
    _open_tree(tmp_path)
    config = _docker_config(tmp_path / "regcred", auth_registry)
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")
    os.chmod(termination_log, 0o666)  # the kubelet makes it writable by any user
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o1777)
    os.chmod(scratch, 0o1777)  # an emptyDir
    destination = f"{auth_registry.host}/team/app:1.0"
    args = [a.replace("registry.example.com/team/app:1.0", destination) for a in container["args"]]
    mounts = {"docker-config": config, "context": context, "scratch": scratch}
    volumes = [f"--volume={mounts[m['name']]}:{m['mountPath']}{':ro' if m.get('readOnly') else ''}"
               for m in container["volumeMounts"]]
    security = _security_flags({**pod["securityContext"], **container["securityContext"]})
    assert security == list(RESTRICTED)  # where-builds-run.md's restricted profile, exactly
    ran = podman.run(builder_image, args, flags=(
        *security, *_env_flags(container["env"]),
        *volumes, f"--volume={termination_log}:/dev/termination-log"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    digest = termination_log.read_text()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest == _skopeo_digest(destination)


def _substitute(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        assert match.group(1) in values, f"the Task refers to $({match.group(1)}), which Tekton would not know"
        return values[match.group(1)]
    return re.sub(r"\$\(([^)]+)\)", value, text)


def _step_argv(step: dict, values: dict[str, str], arrays: dict[str, list[str]]) -> list[str]:
    """A step's command and args after Tekton's substitutions: an array param alone in an item is spliced in."""
    argv = []
    for item in step.get("command", []) + step.get("args", []):
        name = re.fullmatch(r"\$\(params\.([A-Za-z0-9_-]+)\)", item)
        if name and name.group(1) in arrays:
            argv += arrays[name.group(1)]
        else:
            argv.append(_substitute(item, values))
    return argv


def test_the_task_s_steps_run_as_tekton_runs_them(podman, builder_image, busybox_base, auth_registry, tmp_path):
    task = _load(TASK)
    spec = task["spec"]
    source = write_context(tmp_path / "source", {f"app/{name}": text
                                                 for name, text in _context_files(busybox_base).items()})
    dockerconfig = _docker_config(tmp_path / "dockerconfig", auth_registry)
    results = tmp_path / "results"
    results.mkdir()
    os.chmod(results, 0o777)  # Tekton's /tekton/results: writable by the step's user
    _open_tree(source)
    image = f"{auth_registry.host}/team/from-tekton:1"
    # A TaskRun's params (defaults applied), and the paths Tekton gives workspaces and results.
    params = {p["name"]: p.get("default") for p in spec["params"]}
    params.update({"IMAGE": image, "CONTEXT": "app", "DOCKERFILE": "app/Dockerfile", "BUILDER_IMAGE": builder_image,
                   "EXTRA_ARGS": ["--label=org.example.built-by=tekton", "--cache=false"]})
    workspaces = {w["name"]: w.get("mountPath", f"/workspace/{w['name']}") for w in spec["workspaces"]}
    values = {f"params.{k}": v for k, v in params.items() if isinstance(v, str)}
    values.update({f"workspaces.{k}.path": v for k, v in workspaces.items()})
    values.update({f"results.{r['name']}.path": f"/tekton/results/{r['name']}" for r in spec["results"]})
    bound = {"source": source, "dockerconfig": dockerconfig}
    for step in spec["steps"]:
        step = {**spec["stepTemplate"], **step}
        argv = _step_argv(step, values, {"EXTRA_ARGS": params["EXTRA_ARGS"]})
        assert _security_flags(step["securityContext"]) == list(RESTRICTED)
        options = [*_security_flags(step["securityContext"]), *_env_flags(step.get("env", [])),
                   f"--volume={results}:/tekton/results",
                   *(f"--volume={bound[name]}:{path}" for name, path in workspaces.items())]
        if "workingDir" in step:
            options.append(f"--workdir={_substitute(step['workingDir'], values)}")
        if step.get("command"):
            options.append(f"--entrypoint={argv[0]}")
            argv = argv[1:]
        ran = podman.run(_substitute(step["image"], values), argv, flags=tuple(options))
        assert ran.returncode == 0, f"step {step['name']}: {ran.stdout}{ran.stderr}"

    digest = (results / "IMAGE_DIGEST").read_text()
    assert digest == _skopeo_digest(image)
    assert (results / "IMAGE_URL").read_text() == image
    inspected = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false", "--creds",
                                f"{USER}:{PASSWORD}", f"docker://{image}"], capture_output=True, text=True, timeout=120)
    config = json.loads(inspected.stdout)["config"]
    assert config["Labels"] == {"org.example.built-by": "tekton"} and config["User"] == "1000"
    assert _pushed_file(image, "/srv/built", tmp_path) == b"built by 0\n"  # the RUN ran, as the image's root
