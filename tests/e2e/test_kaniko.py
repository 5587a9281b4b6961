"""`dockyard kaniko` end to end: kaniko-style invocations build and push to a registry that demands
credentials, and kaniko's digest files come out in kaniko's formats. (dockyard's own builder image, which runs
such invocations as its entrypoint, is tested under a real container runtime in test_builder_image.py.)"""

from __future__ import annotations

import base64
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support.registry import RegistryServer

USER, PASSWORD = "ci", "kaniko-Pa55word"


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
