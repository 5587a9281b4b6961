"""Every output of a two-platform build from the command line, read back by skopeo and umoci: an OCI layout
whose index.json points at the image index, a Docker manifest list (oci-mediatypes=false), a push by digest
with index annotations, and the docker tarball refused before any work. The Dockerfile copies a per-target
file into `scratch`, so no RUN needs another CPU."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.helpers import dockyard, write_context

DOCKERFILE = """\
FROM scratch
ARG TARGETARCH
COPY $TARGETARCH.txt /arch
"""
PLATFORMS = ("--platform", "linux/amd64,linux/arm64")


@pytest.fixture
def context(tmp_path):
    return write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "amd64.txt": "amd64\n", "arm64.txt": "arm64\n"})


def skopeo(*args: str) -> dict:
    out = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_oci_layout_of_two_platforms(tmp_path, context):
    layout, metadata = tmp_path / "layout", tmp_path / "build.json"
    done = dockyard("build", "-q", *PLATFORMS, "-t", "registry.example.com/app:1", "--output",
                    f"type=oci,dest={layout}", "--metadata-file", str(metadata), str(context))
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    [entry] = json.loads((layout / "index.json").read_text())["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.index.v1+json" and entry["digest"] == digest
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "1",
                                    "io.containerd.image.name": "registry.example.com/app:1"}
    index = skopeo("inspect", "--raw", f"oci:{layout}:1")
    meta = json.loads(metadata.read_text())
    assert [m["digest"] for m in index["manifests"]] == [p["digest"] for p in meta["platforms"]]
    assert meta["containerimage.descriptor"]["digest"] == digest == meta["containerimage.digest"]
    for arch in ("amd64", "arm64"):
        assert skopeo("inspect", "--override-arch", arch, f"oci:{layout}:1")["Architecture"] == arch
        single = tmp_path / f"single-{arch}"
        subprocess.run(["skopeo", "copy", "--override-arch", arch, f"oci:{layout}:1", f"oci:{single}:x"],
                       capture_output=True, timeout=120, check=True)
        rootfs = tmp_path / f"rootfs-{arch}"
        subprocess.run(["umoci", "raw", "unpack", "--image", f"{single}:x", str(rootfs)], capture_output=True,
                       timeout=120, check=True)
        assert (rootfs / "arch").read_text() == f"{arch}\n"


def test_docker_manifest_list_and_push_by_digest(registry, tmp_path, context):
    ref = f"{registry.host}/multi/dockerlist:1"
    done = dockyard("build", "-q", *PLATFORMS, "-t", ref, "--output", "type=registry,oci-mediatypes=false",
                    str(context))
    assert done.returncode == 0, done.stderr
    listing = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert listing["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    for entry, arch in zip(listing["manifests"], ("amd64", "arm64")):
        assert entry["platform"]["architecture"] == arch
        manifest = skopeo("inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/multi/dockerlist@{entry['digest']}")
        assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"

    repo = f"{registry.host}/multi/bydigest"
    done = dockyard("build", "-q", *PLATFORMS, "--annotation", "index:org.opencontainers.image.vendor=acme",
                    "--output", f"type=image,name={repo},push-by-digest=true,push=true", str(context))
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    index = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo}@{digest}")
    assert index["annotations"] == {"org.opencontainers.image.vendor": "acme"} and len(index["manifests"]) == 2
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"], capture_output=True,
                          text=True, timeout=60)
    assert tags.returncode != 0 or not json.loads(tags.stdout)["Tags"], tags.stdout


def test_docker_tarball_of_two_platforms_is_refused_before_any_work(tmp_path, context):
    tarball = tmp_path / "image.tar"
    done = dockyard("build", *PLATFORMS, "--progress", "plain", "--cache-dir", str(tmp_path / "cache"),
                    "--output", f"type=docker,dest={tarball}", str(context))
    assert done.returncode == 2, done.stderr
    assert "holds the image of one platform" in done.stderr and "linux/amd64, linux/arm64" in done.stderr
    assert "Traceback" not in done.stderr and "COPY" not in done.stderr
    assert not tarball.exists() and not (tmp_path / "cache").exists()
