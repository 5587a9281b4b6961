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
