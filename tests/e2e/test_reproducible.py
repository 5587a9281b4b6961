"""Reproducible builds through the command line: two clean builds of the same inputs, in different directories
and a second apart, with their own blob stores and work dirs, give one digest with SOURCE_DATE_EPOCH (from the
environment or a --build-arg) or --reproducible, and different digests without. And the compression flags,
read back by skopeo and GNU tar."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.image.compression import open_decompressed
from tests.e2e.helpers import dockyard, write_context

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z

DOCKERFILE = """\
FROM {base}
ARG SOURCE_DATE_EPOCH
ENV APP_HOME=/srv/app MODE=release
WORKDIR $APP_HOME/data
COPY one.txt two.txt conf/ ./
COPY conf/nested/ /etc/app/
RUN mkdir -p /opt/made && echo "epoch=$SOURCE_DATE_EPOCH" > /opt/made/epoch && ln -s epoch /opt/made/link \\
    && rm /etc/group
RUN touch /srv/app/data/touched
"""

CONTEXT = {"one.txt": "one\n", "two.txt": "two\n", "conf/app.ini": "[app]\n", "conf/nested/extra.conf": "x=1\n"}


def _build(base: str, workdir: Path, *args: str, env: dict | None = None) -> tuple[str, Path]:
    """One clean build in its own directory, cache (blob store) and work dir; returns (digest, OCI layout)."""
    context = write_context(workdir / "context", {"Dockerfile": DOCKERFILE.format(base=base), **CONTEXT})
    layout = workdir / "oci"
    result = dockyard("build", "-q", "--work-dir", str(workdir / "work"), "--output", f"type=oci,dest={layout}",
                      *args, str(context), env={"XDG_CACHE_HOME": str(workdir / "cache"), **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), layout


def _two_builds(base: str, tmp_path: Path, *args: str, env: dict | None = None) -> list[tuple[str, Path]]:
    first = _build(base, tmp_path / "first", *args, env=env)
    time.sleep(1.1)  # every clock-derived time differs between the two
    return [first, _build(base, tmp_path / "elsewhere" / "second", *args, env=env)]


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def _manifest_and_config(layout: Path) -> tuple[dict, dict]:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(_blob(layout, index["manifests"][0]["digest"]).read_text())
    return manifest, json.loads(_blob(layout, manifest["config"]["digest"]).read_text())


def _layer_members(layout: Path, digest: str) -> list[tarfile.TarInfo]:
    with open(_blob(layout, digest), "rb") as raw, tarfile.open(fileobj=open_decompressed(raw), mode="r|") as tf:
        return list(tf)


@pytest.mark.parametrize("how", ["environment", "build-arg"])
def test_source_date_epoch_gives_the_same_digest_and_pins_every_time(busybox_base, tmp_path, how):
    args, env = ((), {"SOURCE_DATE_EPOCH": str(EPOCH)}) if how == "environment" else \
        (("--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}"), None)
    (digest, layout), (again, _) = _two_builds(busybox_base, tmp_path, *args, env=env)
    assert digest == again

    manifest, config = _manifest_and_config(layout)
    assert config["created"] == "2023-11-14T22:13:20Z"
    built_history = config["history"][1:]  # after the base's own entry
    assert built_history and all(h["created"] == "2023-11-14T22:13:20Z" for h in built_history)
    built_layers = manifest["layers"][1:]
    assert len(built_layers) == 4  # WORKDIR+COPY, COPY, RUN, RUN
    members = [m for layer in built_layers for m in _layer_members(layout, layer["digest"])]
    assert {m.name for m in members} >= {"srv/app/data/one.txt", "etc/app/extra.conf", "opt/made/epoch",
                                         "etc/.wh.group", "srv/app/data/touched"}
    assert all(m.mtime == EPOCH for m in members)
    assert all(m.uname == "" and m.gname == "" for m in members)
    # ARG SOURCE_DATE_EPOCH sees the value, whichever way it was given (buildx passes the variable on).
    epoch_file = next(layer for layer in built_layers
                      if any(m.name == "opt/made/epoch" for m in _layer_members(layout, layer["digest"])))
    with open(_blob(layout, epoch_file["digest"]), "rb") as raw, \
            tarfile.open(fileobj=open_decompressed(raw), mode="r|") as tf:
        contents = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}
    assert contents["opt/made/epoch"] == f"epoch={EPOCH}\n".encode()


def test_reproducible_flag_pins_times_to_zero(busybox_base, tmp_path):
    (digest, layout), (again, _) = _two_builds(busybox_base, tmp_path, "--reproducible")
    assert digest == again
    manifest, config = _manifest_and_config(layout)
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert all(m.mtime == 0 for layer in manifest["layers"][1:] for m in _layer_members(layout, layer["digest"]))


def test_without_an_epoch_two_builds_differ(busybox_base, tmp_path):
    (digest, _), (again, _) = _two_builds(busybox_base, tmp_path)
    assert digest != again


def test_a_bad_source_date_epoch_is_a_usage_error(busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\n"})
    result = dockyard("build", "-q", str(context), env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert result.returncode == 2
    assert "invalid SOURCE_DATE_EPOCH 'yesterday' (from the environment)" in result.stderr
    assert "Traceback" not in result.stderr


def _skopeo_json(*args: str) -> dict:
    out = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("flags, media_type", [
    (("--compression", "zstd", "--compression-level", "19"), "application/vnd.oci.image.layer.v1.tar+zstd"),
    (("--compression", "uncompressed"), "application/vnd.oci.image.layer.v1.tar"),
    (("--compression", "gzip", "--compression-level", "9"), "application/vnd.oci.image.layer.v1.tar+gzip"),
])
def test_compression_flags_push_images_skopeo_and_tar_read(busybox_base, registry, tmp_path, flags,
                                                              media_type):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nCOPY one.txt /one.txt\n"
                                                             "RUN echo made > /made\n", "one.txt": "one\n"})
    ref = f"{registry.host}/compression/{flags[1]}:1"
    result = dockyard("build", "-q", "-t", ref, "--push", *flags, str(context),
                      env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    raw = _skopeo_json("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")
    assert [layer["mediaType"] for layer in raw["layers"][1:]] == [media_type, media_type]
    # skopeo copies it as it is, checking every blob's digest; GNU tar (which recognizes gzip and zstd by their
    # magic) unpacks the copied layers in order. Debian's umoci 0.4.7 cannot read zstd layers, so it is not used here.
    layout = tmp_path / "copied"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--preserve-digests", f"docker://{ref}",
                    f"oci:{layout}:1"], check=True, capture_output=True, timeout=120)
    manifest, _ = _manifest_and_config(layout)
    assert [layer["mediaType"] for layer in manifest["layers"][1:]] == [media_type, media_type]
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    for layer in manifest["layers"]:
        subprocess.run(["tar", "-xf", str(_blob(layout, layer["digest"])), "-C", str(rootfs)], check=True,
                       capture_output=True, timeout=120)
    assert (rootfs / "one.txt").read_text() == "one\n" and (rootfs / "made").read_text() == "made\n"


def test_a_compression_level_out_of_range_is_a_usage_error(tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    result = dockyard("build", "--compression", "zstd", "--compression-level", "40", str(context))
    assert result.returncode == 2
    assert "invalid --compression-level 40 for zstd: use 1 to 22" in result.stderr
