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


@pytest.mark.parametrize("isolation", ["namespaces", "proot"])
def test_two_platforms_build_from_the_cli_running_the_native_stage_once(tmp_path, cross_context, isolation):
    metadata = tmp_path / "build.json"
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain", "--no-cache",
                    "--isolation", isolation, "--cache-dir", str(tmp_path / "cache"), "--metadata-file", str(metadata),
                    "--output", f"type=oci,dest={tmp_path / 'layout'}", str(cross_context))
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
    # The OCI layout's index.json points at the image index, whose manifests are the two platforms' images.
    index = _layout_blob(tmp_path / "layout", json.loads((tmp_path / "layout" / "index.json").read_text())
                         ["manifests"][0]["digest"])
    arches = []
    for entry in index["manifests"]:
        manifest = _layout_blob(tmp_path / "layout", entry["digest"])
        layers = [_layout_blob_path(tmp_path / "layout", layer["digest"]) for layer in manifest["layers"]]
        listing = subprocess.run(["tar", "-tzvf", str(layers[-1])], capture_output=True, text=True, check=True)
        content = subprocess.run(["tar", "-xzOf", str(layers[-1]), "arch"], capture_output=True, text=True,
                                 check=True).stdout
        arches.append((entry["platform"]["architecture"], content.strip(), len(listing.stdout.splitlines())))
    assert arches == [("amd64", "amd64", 1), ("arm64", "arm64", 1)]


def _layout_blob_path(layout, digest: str):
    return layout / "blobs" / "sha256" / digest.partition(":")[2]


def _layout_blob(layout, digest: str) -> dict:
    return json.loads(_layout_blob_path(layout, digest).read_text())


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


def test_cache_to_exports_every_platforms_steps(tmp_path, cross_context, registry):
    cache_ref = f"{registry.host}/multi/cache:buildcache"
    first = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain",
                     "--cache-to", f"type=registry,ref={cache_ref},mode=max", "--cache-dir", str(tmp_path / "one"),
                     str(cross_context))
    assert first.returncode == 0, first.stderr
    # A fresh local cache: every step the second build finds comes from the registry cache.
    metadata = tmp_path / "build.json"
    second = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain",
                      "--cache-from", f"type=registry,ref={cache_ref}", "--cache-dir", str(tmp_path / "two"),
                      "--metadata-file", str(metadata), str(cross_context))
    assert second.returncode == 0, second.stderr
    assert "compiling on x86_64" not in second.stderr  # the RUN did not run
    filesystem_steps = [s for s in json.loads(metadata.read_text())["steps"]
                        if s["instruction"].split()[0] in ("RUN", "COPY")]
    # Both targets' COPY of their own /out/$TARGETARCH were exported, and the shared RUN once.
    assert [(s["instruction"].split()[0], s["cached"], s["cache_source"]) for s in filesystem_steps] == [
        ("RUN", True, cache_ref), ("COPY", True, cache_ref), ("RUN", True, cache_ref), ("COPY", True, cache_ref)]


MIXED = """\
FROM --platform=$BUILDPLATFORM {base} AS build
RUN echo compiling on $(uname -m) && mkdir /out && echo generated > /out/generated
FROM {base}
ARG TARGETARCH
COPY --from=build /out /out
RUN uname -m > /out/machine && echo $TARGETARCH > /out/targetarch
"""


@pytest.mark.parametrize("isolation", ["namespaces", "proot"])
def test_the_target_stage_runs_per_platform_emulated_and_the_native_stage_once(tmp_path, registry, isolation):
    from tests.support.binfmt import ensure_registered
    from tests.support.foreign_images import push_busybox_index

    if isolation == "namespaces" and (why := ensure_registered(("linux/arm64",))) is not None:
        pytest.skip(why)
    base = push_busybox_index(registry.host, tmp_path / "base", ("linux/amd64", "linux/arm64"))
    context = write_context(tmp_path / "ctx", {"Dockerfile": MIXED.format(base=base)})
    layout = tmp_path / "layout"
    done = dockyard("build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain", "--isolation", isolation,
                    "--cache-dir", str(tmp_path / "cache"), "--output", f"type=oci,dest={layout}", str(context))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("compiling on x86_64") == 1
    index = _layout_blob(layout, json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])
    found = []
    for entry in index["manifests"]:
        manifest = _layout_blob(layout, entry["digest"])
        top = _layout_blob_path(layout, manifest["layers"][-1]["digest"])
        machine = subprocess.run(["tar", "-xzOf", str(top), "out/machine"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        found.append((entry["platform"]["architecture"], machine))
    assert found == [("amd64", "x86_64"), ("arm64", "aarch64")]
