"""The command line's outputs, read back by independent tools: OCI layout (skopeo, umoci), docker archive
(skopeo), digest and metadata files, platform selection, --target and --label."""

from __future__ import annotations

import json
import subprocess

from tests.e2e.helpers import dockyard, write_context
from tests.support.images import push_multiplatform_base

DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS base
RUN echo base > /stage
FROM base AS test
RUN echo test > /stage && exit 0
FROM base AS release
LABEL stage=release
CMD ["cat", "/etc/platform"]
"""


def _skopeo(*args: str) -> dict:
    out = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_outputs_platform_target_and_files(registry, tmp_path):
    base = push_multiplatform_base(registry.host, tmp_path / "base")
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE})
    oci, archive = tmp_path / "out-oci", tmp_path / "image.tar"
    digest_file, metadata_file = tmp_path / "digest", tmp_path / "meta.json"
    result = dockyard("build", "-q", "--platform", "linux/arm64", "--target", "release",
                      "--build-arg", f"BASE={base}", "--label", "team=core", "-t", f"{registry.host}/out/app:2",
                      "--output", f"type=oci,dest={oci}", "--output", f"type=docker,dest={archive}",
                      "--digest-file", str(digest_file), "--metadata-file", str(metadata_file), str(context))
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    assert result.stdout == digest + "\n"  # -q: only the digest
    assert digest_file.read_text().strip() == digest

    meta = json.loads(metadata_file.read_text())
    assert meta["digest"] == digest and meta["tags"] == [f"{registry.host}/out/app:2"]
    assert meta["platform"] == "linux/arm64/v8"  # the variant comes from the chosen base
    assert all(layer["size"] > 0 and layer["digest"].startswith("sha256:") for layer in meta["layers"])
    assert [s["instruction"].split()[0] for s in meta["steps"]] == ["FROM", "RUN", "FROM", "LABEL", "CMD"]
    assert all(isinstance(s["duration"], float) for s in meta["steps"])  # the `test` stage was pruned

    inspected = _skopeo("inspect", f"oci:{oci}:2")
    assert inspected["Digest"] == digest and inspected["Architecture"] == "arm64"
    assert inspected["Labels"] == {"stage": "release", "team": "core"}
    config = _skopeo("inspect", "--config", f"oci:{oci}:2")
    assert len(config["rootfs"]["diff_ids"]) == len(meta["layers"])
    assert _skopeo("inspect", f"docker-archive:{archive}")["Architecture"] == "arm64"

    subprocess.run(["umoci", "unpack", "--image", f"{oci}:2", str(tmp_path / "bundle")], check=True,
                   capture_output=True, timeout=120)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc/platform").read_text().strip() == "linux/arm64/v8"  # the arm64 base was chosen
    assert (rootfs / "stage").read_text() == "base\n"


def test_oci_layout_keeps_earlier_images(busybox_base, tmp_path):
    oci = tmp_path / "layout"
    for n in (1, 2):
        context = write_context(tmp_path / f"ctx{n}", {"Dockerfile": f"FROM {busybox_base}\nRUN echo {n} > /n\n"})
        result = dockyard("build", "-q", "-t", f"example/app:{n}", "--output", f"type=oci,dest={oci}", str(context))
        assert result.returncode == 0, result.stderr
    assert _skopeo("inspect", f"oci:{oci}:1")["Digest"] != _skopeo("inspect", f"oci:{oci}:2")["Digest"]


def test_add_extracts_a_local_tarball(busybox_base, tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, kind in (("pkg", "d"), ("pkg/bin", "d"), ("pkg/bin/tool", "f"), ("pkg/tool-link", "l"),
                           ("pkg/tool-hard", "h")):
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mtime = 1000, 1000, 1700000000
            if kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tf.addfile(info)
            elif kind == "f":
                data = b"#!/bin/sh\necho tool\n"
                info.size, info.mode = len(data), 0o755
                tf.addfile(info, io.BytesIO(data))
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, "bin/tool"
                tf.addfile(info)
            else:
                info.type, info.linkname = tarfile.LNKTYPE, "pkg/bin/tool"
                tf.addfile(info)
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_base}\nADD pkg.tar.gz /opt/\nADD pkg.tar.gz /plain/copy.tgz\n",
        "pkg.tar.gz": buf.getvalue()})
    oci = tmp_path / "oci"
    result = dockyard("build", "-q", "-t", "t/add:1", "--output", f"type=oci,dest={oci}", str(context))
    assert result.returncode == 0, result.stderr
    subprocess.run(["umoci", "unpack", "--image", f"{oci}:1", str(tmp_path / "b")], check=True,
                   capture_output=True, timeout=120)
    root = tmp_path / "b" / "rootfs"
    tool = root / "opt/pkg/bin/tool"
    assert tool.read_text() == "#!/bin/sh\necho tool\n" and oct(tool.stat().st_mode & 0o7777) == "0o755"
    assert tool.stat().st_uid == 1000 and (root / "opt/pkg/bin").stat().st_mtime == 1700000000
    assert oct((root / "opt/pkg").stat().st_mode & 0o777) == "0o750"
    assert (root / "opt/pkg/tool-link").readlink().as_posix() == "bin/tool"
    assert (root / "opt/pkg/tool-hard").stat().st_ino == tool.stat().st_ino
    assert (root / "plain/copy.tgz/pkg/bin/tool").exists()  # ADD to a non-/ path still extracts, as docker


def test_push_by_digest_pushes_no_tag_and_names_the_digest(registry, busybox_base, tmp_path):
    """buildx's `type=image,name=REPO,push-by-digest=true,push=true`: what the matrix jobs of a distributed
    multi-platform build push, to be assembled into one index afterwards."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo one > /one\n"})
    repo = f"{registry.host}/out/bydigest"
    digest_file, metadata_file = tmp_path / "digest", tmp_path / "meta.json"
    result = dockyard("build", "-q", "--output", f"type=image,name={repo},push-by-digest=true,push=true",
                      "--digest-file", str(digest_file), "--metadata-file", str(metadata_file), str(context))
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    assert digest_file.read_text().strip() == digest
    assert json.loads(metadata_file.read_text())["pushed"] == [f"{repo}@{digest}"]
    assert _skopeo("inspect", "--no-tags", "--tls-verify=false", f"docker://{repo}@{digest}")["Architecture"] == "amd64"
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"], capture_output=True,
                          text=True, timeout=60)
    assert tags.returncode != 0 or not json.loads(tags.stdout)["Tags"], tags.stdout
