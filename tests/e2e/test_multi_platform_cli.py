"""`dockyard build --platform linux/amd64,linux/arm64` from the command line, with BuildKit's cross-compilation
pattern: the only RUN is in a `FROM --platform=$BUILDPLATFORM` stage (it runs natively, once for both targets,
so no QEMU is needed), and each target's final stage is `FROM scratch` + `COPY --from=build /out/$TARGETARCH /`.
The plain progress says which platform each step is for, and the RUN's output appears once."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from tests.e2e.helpers import dockyard, write_context

CROSS = """\
FROM --platform=$BUILDPLATFORM {base} AS build
RUN echo compiling on $(uname -m) && mkdir -p /out/amd64 /out/arm64 \\
 && echo amd64 > /out/amd64/arch && echo arm64 > /out/arm64/arch
FROM scratch
ARG TARGETARCH
COPY --from=build /out/$TARGETARCH /
"""


@pytest.fixture
def cross_context(tmp_path, busybox_base):
    return write_context(tmp_path / "ctx", {"Dockerfile": CROSS.format(base=busybox_base)})


def test_two_platforms_build_from_the_cli_running_the_native_stage_once(tmp_path, cross_context):
    metadata = tmp_path / "build.json"
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain", "--no-cache",
                    "--cache-dir", str(tmp_path / "cache"), "--metadata-file", str(metadata), str(cross_context))
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert log.count("compiling on x86_64") == 1  # the BUILDPLATFORM stage ran once for both targets
    labels = re.findall(r"\[(linux/\w+) (\S+) (\d+)/(\d+)\] (\w+)", log)
    assert {(platform, stage) for platform, stage, *_ in labels} == {
        ("linux/amd64", "build"), ("linux/amd64", "stage-1"), ("linux/arm64", "build"), ("linux/arm64", "stage-1")}
    assert {int(total) for *_, total, _ in labels} == {10}  # numbered across both platforms: 2 x (2 + 3) steps
    assert "CACHED (from this build, for linux/amd64)" in log
    steps = json.loads(metadata.read_text())["steps"]
    assert [s["step"] for s in steps] == list(range(1, 11))


def test_a_platform_list_with_a_bad_entry_is_refused_before_any_work(tmp_path, cross_context):
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64/v8/x", "--cache-dir", str(tmp_path / "cache"),
                    str(cross_context))
    assert done.returncode == 2, done.stderr
    assert "'linux/arm64/v8/x'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists()


def test_two_platforms_pushed_as_one_index_skopeo_reads_for_each(tmp_path, cross_context, registry):
    ref = f"{registry.host}/multi/cross:1"
    digest_file = tmp_path / "digest"
    done = dockyard("build", "--platform", "linux/amd64", "--platform", "linux/arm64", "--push", "-t", ref,
                    "--progress", "plain", "--digest-file", str(digest_file), "--cache-dir", str(tmp_path / "cache"),
                    str(cross_context))
    assert done.returncode == 0, done.stderr
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == [
        ("linux", "amd64"), ("linux", "arm64")]
    assert digest_file.read_text().strip() == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    for arch in ("amd64", "arm64"):
        config = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--override-os", "linux", "--override-arch", arch, "--config",
             f"docker://{ref}"], capture_output=True, text=True, timeout=120, check=True).stdout)
        assert (config["os"], config["architecture"]) == ("linux", arch)
        # Each platform's filesystem: the one file its target copied from the shared build stage.
        layout = tmp_path / f"layout-{arch}"
        subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--override-os", "linux", "--override-arch", arch,
                        f"docker://{ref}", f"oci:{layout}:x"], capture_output=True, text=True, timeout=120,
                       check=True)
        rootfs = tmp_path / f"rootfs-{arch}"
        subprocess.run(["umoci", "raw", "unpack", "--image", f"{layout}:x", str(rootfs)],
                       capture_output=True, text=True, timeout=120, check=True)
        assert sorted(p.name for p in rootfs.iterdir()) == ["arch"]
        assert (rootfs / "arch").read_text() == f"{arch}\n"
