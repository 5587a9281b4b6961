"""A multi-platform image as the CI adapters' end-to-end tests build and read it back: a Dockerfile whose only RUN
runs on the build platform (so a two-platform build needs no QEMU), and the pushed image index read with skopeo:
its platforms, each platform's config, and each platform's filesystem."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from dockyard import parse_reference
from tests.support import oracle

SKOPEO_TIMEOUT = 120


def native_only_dockerfile(base: str) -> str:
    """BuildKit's cross-compilation pattern: the RUN stage runs on the build platform once for every target and
    writes /out/$TARGETARCH; each target's image (FROM scratch) holds only its own file, named by its
    architecture, holding the target platform and the machine the RUN ran on."""
    return (f"FROM --platform=$BUILDPLATFORM {base} AS build\n"
            "ARG TARGETPLATFORM TARGETARCH\n"
            "RUN mkdir -p /out && echo \"$TARGETPLATFORM built on $(uname -m)\" > /out/$TARGETARCH\n"
            "FROM scratch\n"
            "ARG TARGETARCH\n"
            "COPY --from=build /out/$TARGETARCH /\n")


def _skopeo(args: list[str], creds: str | None) -> str:
    command = ["skopeo", *args[:1], "--tls-verify=false", *(["--creds", creds] if creds else []), *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result.stdout


def read_index(reference: str, *, creds: str | None = None) -> dict:
    """The raw manifest at `reference` (`skopeo inspect --raw`): for a multi-platform image, its index."""
    return json.loads(_skopeo(["inspect", "--raw", f"docker://{reference}"], creds))


def platform_of(entry: dict) -> str:
    platform = entry.get("platform") or {}
    return "/".join(part for part in (platform.get("os"), platform.get("architecture"), platform.get("variant"))
                    if part)


def platform_entries(index: dict) -> dict[str, str]:
    """platform → manifest digest, for each image of the index (attestation manifests left out)."""
    assert index["mediaType"] in ("application/vnd.oci.image.index.v1+json",
                                  "application/vnd.docker.distribution.manifest.list.v2+json"), index
    return {platform_of(entry): entry["digest"] for entry in index["manifests"]
            if platform_of(entry) != "unknown/unknown"}


def config_of(repository: str, digest: str, *, creds: str | None = None) -> dict:
    """The config of the image `repository@digest`."""
    return json.loads(_skopeo(["inspect", "--raw", "--config", f"docker://{repository}@{digest}"], creds))


def rootfs_of(repository: str, digest: str, workdir: Path, *, creds: str | None = None) -> Path:
    """The filesystem of the image `repository@digest`, unpacked under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    layout = workdir / f"oci-{digest[7:19]}"
    command = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
               *(["--src-creds", creds] if creds else []), f"docker://{repository}@{digest}", f"oci:{layout}:latest"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return oracle.unpack(layout, workdir / f"bundle-{digest[7:19]}")


def check_native_only_index(reference: str, platforms: list[str], workdir: Path, *,
                            creds: str | None = None) -> dict[str, str]:
    """Asserts that `reference` is an index of exactly `platforms`, each image's config naming its platform and
    holding only the file the native RUN wrote for it; returns platform → manifest digest."""
    repository = parse_reference(reference).name
    entries = platform_entries(read_index(reference, creds=creds))
    assert sorted(entries) == sorted(platforms), entries
    for platform, digest in entries.items():
        os_name, architecture, *variant = platform.split("/")
        config = config_of(repository, digest, creds=creds)
        assert (config["os"], config["architecture"], config.get("variant")) == (
            os_name, architecture, variant[0] if variant else None), config
        rootfs = rootfs_of(repository, digest, workdir, creds=creds)
        assert sorted(path.name for path in rootfs.iterdir()) == [architecture]
        # The RUN ran once, natively, for every target: the file says for which, and on which machine.
        assert (rootfs / architecture).read_text() == f"{platform} built on {os.uname().machine}\n"
    return entries


# uname -m of each architecture, as a RUN step run for it (under QEMU when foreign) prints it.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l"}


def emulated_dockerfile(base: str) -> str:
    """A RUN for each target platform itself: foreign ones run under QEMU user emulation."""
    return f"FROM {base}\nRUN uname -m > /machine\n"


def check_emulated_index(reference: str, platforms: list[str], workdir: Path, *,
                         creds: str | None = None) -> None:
    """Asserts that `reference` is an index of exactly `platforms`, each image's RUN having run as its CPU."""
    repository = parse_reference(reference).name
    entries = platform_entries(read_index(reference, creds=creds))
    assert sorted(entries) == sorted(platforms), entries
    for platform, digest in entries.items():
        architecture = platform.split("/")[1]
        assert config_of(repository, digest, creds=creds)["architecture"] == architecture
        rootfs = rootfs_of(repository, digest, workdir, creds=creds)
        assert (rootfs / "machine").read_text() == MACHINES[architecture] + "\n"
