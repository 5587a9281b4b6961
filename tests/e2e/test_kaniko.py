"""`dockyard kaniko` end to end: kaniko-style invocations build and push to a registry that demands
credentials, kaniko's digest files come out in kaniko's formats, and dockyard's own builder image — built by
dockyard from a Debian base the tests make — runs such an invocation as its entrypoint, with the credentials
in /kaniko/.docker/config.json out of reach of the build's RUN steps."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support.registry import RegistryServer

USER, PASSWORD = "ci", "kaniko-Pa55word"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("kaniko-registry"), htpasswd={USER: PASSWORD})
    yield server
    server.stop()


def docker_config_env(tmp_path: Path, registry: RegistryServer) -> dict[str, str]:
    directory = tmp_path / "docker-config"
    directory.mkdir(exist_ok=True)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    return {"DOCKER_CONFIG": str(directory), "HOME": str(tmp_path / "home")}


def skopeo_digest(ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                          f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Digest"]


def pushed_files(ref: str, workdir: Path) -> dict[str, bytes | None]:
    """Every path in the pushed image's layers (file contents, None for other entries), read with skopeo."""
    layout = workdir / "pulled"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds",
                    f"{USER}:{PASSWORD}", f"docker://{ref}", f"oci:{layout}:pulled"],
                   check=True, capture_output=True, timeout=120)
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    files: dict[str, bytes | None] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"]), "r:*") as tar:
            for member in tar:
                files[member.name] = tar.extractfile(member).read() if member.isfile() else None
    return files


def test_kaniko_invocation_builds_and_pushes_with_kanikos_result_files(registry, busybox_base, auth_registry,
                                                                       tmp_path):
    ctx = write_context(tmp_path / "ctx", {
        "docker/Dockerfile": f"FROM {busybox_base}\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\n"
                             "COPY app.txt /app.txt\n",
        "app.txt": "app\n",
    })
    dest = f"{auth_registry.host}/team/app"
    out = tmp_path / "out"
    result = dockyard("kaniko", f"--context=dir://{ctx}", "--dockerfile", "docker/Dockerfile",
                      "--destination", f"{dest}:1.0", f"--destination={dest}:latest", "--build-arg", "GREETING=hi",
                      "--cache=true", "--cache-repo", f"{dest}/cache", "--cache-copy-layers",
                      "--digest-file", str(out / "digest"), f"--image-name-with-digest-file={out / 'names'}",
                      f"--image-name-tag-with-digest-file={out / 'name-tags'}", "--tar-path", str(out / "image.tar"),
                      "--verbosity=info", env=docker_config_env(tmp_path, auth_registry), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    digest = skopeo_digest(f"{dest}:1.0")
    assert skopeo_digest(f"{dest}:latest") == digest
    # kaniko's formats: the bare digest without a newline; one REPOSITORY[:TAG]@DIGEST line per destination.
    assert (out / "digest").read_text() == digest
    assert (out / "names").read_text() == f"{dest}@{digest}\n{dest}@{digest}\n"
    assert (out / "name-tags").read_text() == f"{dest}:1.0@{digest}\n{dest}:latest@{digest}\n"
    with tarfile.open(out / "image.tar") as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == [f"{dest}:1.0", f"{dest}:latest"]
    assert "note: --cache-copy-layers: accepted;" in result.stderr
    assert pushed_files(f"{dest}:1.0", tmp_path)["greeting"] == b"hi\n"
    # --cache=true --cache-repo: the registry cache was written, and a build on a fresh machine (a new cache
    # directory) takes every step from it: the RUN does not run again.
    again = dockyard("kaniko", f"--context=dir://{ctx}", "--dockerfile", "docker/Dockerfile", "--destination",
                     f"{dest}:again", "--build-arg", "GREETING=hi", "--cache=true", "--cache-repo", f"{dest}/cache",
                     f"--cache-dir={tmp_path / 'fresh-cache'}",
                     env=docker_config_env(tmp_path, auth_registry), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("CACHED") >= 2, again.stderr


def test_no_push_writes_the_oci_layout_only(busybox_base, auth_registry, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN touch /built\n"})
    dest = f"{auth_registry.host}/team/never-pushed:1"
    result = dockyard("kaniko", "-c", str(ctx), "-d", dest, "--no-push", "--oci-layout-path", str(tmp_path / "oci"),
                      "--digest-file", str(tmp_path / "digest"), env=docker_config_env(tmp_path, auth_registry))
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == (tmp_path / "digest").read_text()
    missing = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                              f"docker://{dest}"], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0


@pytest.mark.parametrize("argv, code, message", [
    (["--no-push", "--dockerfile=missing/Dockerfile"], 4, "--dockerfile missing/Dockerfile: no such file"),
    (["--no-push", "--snapshotMode=redo"], 2, "unknown kaniko flag --snapshotMode"),
    (["--context=gs://bucket/ctx.tar.gz", "--no-push"], 2, "Google Cloud Storage bucket is not supported"),
])
def test_kaniko_errors_exit_with_dockyards_codes(tmp_path, argv, code, message):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    result = dockyard("kaniko", f"--context={ctx}", *argv)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_wrong_credentials_exit_7_naming_the_registry(busybox_base, auth_registry, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\n"})
    env = docker_config_env(tmp_path, auth_registry)
    bad = base64.b64encode(f"{USER}:Not-The-Pa55word".encode()).decode()
    Path(env["DOCKER_CONFIG"], "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": bad}}}))
    result = dockyard("kaniko", f"--context=dir://{ctx}", f"--destination={auth_registry.host}/team/app:bad", env=env)
    assert result.returncode == 7, result.stderr
    assert auth_registry.host in result.stderr and "Not-The-Pa55word" not in result.stderr


def run_in_builder_image(rootfs: Path, env: list[str], workspace: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Runs `argv` in the unpacked builder image as a container runtime would: its own mount and pid namespaces,
    the image's environment, fresh /proc, the host's /dev, the context bind-mounted at /workspace, chroot.
    The root is bind-mounted onto itself first: dockyard's sandbox pivots its RUN steps' root, which the kernel
    allows only when the current root is a mount point."""
    script = ('set -e; R="$1"; shift; mount --bind "$R" "$R"; mount --bind "$WORKSPACE" "$R/workspace"; '
              'mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; exec chroot "$R" "$@"')
    return subprocess.run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
                           "sh", "-c", script, "sh", str(rootfs), "env", "-i", *env, *argv],
                          env={"PATH": os.environ["PATH"], "WORKSPACE": str(workspace)},
                          capture_output=True, text=True, timeout=300)


def test_builder_image_runs_a_kaniko_invocation_with_credentials_out_of_reach(registry, busybox_base, auth_registry,
                                                                            tmp_path):
    from tests.support.debian_base import PACKAGES, push_debian_python_base

    # 1. The builder image, built by dockyard from images/builder/Dockerfile on a Debian base made here.
    # The whole of libc6, as every Debian image has it: the C extensions dockyard uses (isal) link libpthread,
    # which none of the base's own programs pull in.
    debian = push_debian_python_base(registry.host, tmp_path / "debian-base", PACKAGES + ("libc6",), tag="libc6")
    staged = tmp_path / "builder-context"
    subprocess.run([sys.executable, str(REPO_ROOT / "images/builder/stage_context.py"), str(staged)], check=True,
                   timeout=120)
    layout = tmp_path / "builder-oci"
    built = dockyard("build", "-f", str(REPO_ROOT / "images/builder/Dockerfile"), "--build-arg", f"BASE={debian}",
                     "-t", "dockyard-builder:test", "--output", f"type=oci,dest={layout}", str(staged))
    assert built.returncode == 0, built.stderr
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:test", str(bundle)], check=True, capture_output=True,
                   timeout=300)
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["args"][:2] == ["/dockyard/bin/dockyard", "kaniko"]
    rootfs = bundle / "rootfs"
    assert os.path.islink(rootfs / "kaniko/executor")
    # The GitLab component's job runs `/dockyard/venv/bin/python3 -m dockyard_integrations.gitlab` in this image.
    adapter = run_in_builder_image(rootfs, process["env"], tmp_path, [
        "/dockyard/venv/bin/python3", "-c", "import dockyard_integrations.gitlab.job"])
    assert adapter.returncode == 0, adapter.stderr

    # 2. A pipeline's credentials where kaniko pipelines put them (here the image's DOCKER_CONFIG too).
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (rootfs / "kaniko/.docker/config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))

    # 3. A build whose RUN step looks for them, through the kaniko path, from a bind-mounted context.
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_base}\n"
                      "RUN (cat /kaniko/.docker/config.json; echo \"exit=$?\"; echo \"DOCKER_CONFIG=$DOCKER_CONFIG\";"
                      " ls /dockyard) > /probe 2>&1 || true\n"
                      "COPY app.txt /app.txt\n",
        "app.txt": "app\n",
    })
    dest = f"{auth_registry.host}/team/from-builder-image:1"
    ran = run_in_builder_image(rootfs, process["env"], ctx, [
        "/kaniko/executor", "--context", "dir:///workspace", "--dockerfile", "Dockerfile", "--destination", dest,
        "--digest-file", "/workspace/out/digest", "--force"])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    digest = (ctx / "out" / "digest").read_text()
    assert digest == skopeo_digest(dest)

    files = pushed_files(dest, tmp_path)
    probe = files["probe"].decode()
    assert "exit=1" in probe and "No such file" in probe and token not in probe and PASSWORD not in probe
    assert "DOCKER_CONFIG=\n" in probe
    # Nothing of the builder (its prefix, /kaniko, the workspace) reached the user's layers.
    assert not [p for p in files if p.split("/")[0] in ("dockyard", "kaniko", "workspace")]
    assert files["app.txt"] == b"app\n"
