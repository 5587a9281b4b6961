"""Multi-platform builds end to end: one `dockyard build --platform a,b,c --push` gives one image index whose
every platform holds that platform's own CPU inside.

The base is a three-platform busybox index on the loopback registry, written by hand
(tests/support/foreign_images.py): linux/amd64 is tests/support/images.py's busybox base, linux/arm64 and
linux/arm/v7 the same layout around Debian's own busybox-static of arm64 and armhf. The test Dockerfile's RUN
records `uname -m` and a listing of `/`: run natively for amd64, under QEMU user emulation for the two ARM
platforms, in each isolation mode (namespaces as root, where dockyard registers QEMU with binfmt_misc itself
when no test did before; proot as root, forced; proot as an unprivileged uid, which the build selects by
itself: proot runs QEMU without binfmt_misc). Every platform is copied out of the
index with `skopeo copy --override-arch/--override-variant`, unpacked with umoci and read: the config's
architecture and variant, the ELF machine of its busybox, the recorded `uname -m` and listing.

Then BuildKit's cross-compilation model (a `FROM --platform=$BUILDPLATFORM` stage runs natively, once for all
targets; TARGETARCH per target), the OCI layout output of an index, the docker tarball's refusal, and buildah
(`--platform a,b --manifest`, `manifest push --all`) as the oracle for what each platform's image holds.

Emulated RUN is slow and every build here makes three images: the Dockerfiles are a few busybox commands, and
each mode's build is made once per module and shared by the tests that read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.helpers import write_context
from tests.support import oracle, tree
from tests.support.users import open_directory, owned_directory

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
BUILDAH_PLATFORMS = ("linux/amd64", "linux/arm64")
UNPRIVILEGED_UID = 1000


@dataclass(frozen=True)
class Expected:
    """What an image of a platform must say about itself, and what its CPU says when a RUN asks."""

    architecture: str
    variant: str | None  # the config's and index entry's variant (BuildKit: none for arm64, "v7" for arm/v7)
    uname: str  # `uname -m` in a RUN of that platform (QEMU's answer for the foreign ones)
    elf_machine: int  # e_machine of its /bin/busybox: EM_X86_64, EM_AARCH64, EM_ARM

    def skopeo_override(self) -> list[str]:
        flags = ["--override-os", "linux", "--override-arch", self.architecture]
        return flags + (["--override-variant", self.variant] if self.variant else [])


EXPECTED = {
    "linux/amd64": Expected("amd64", None, "x86_64", 62),
    "linux/arm64": Expected("arm64", None, "aarch64", 183),
    "linux/arm/v7": Expected("arm", "v7", "armv7l", 40),
}

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY hello.txt /made/hello.txt
RUN uname -m > /made/uname && ls -1 / > /made/listing && echo "RUN on $(uname -m)"
"""

CROSS_DOCKERFILE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS tools
RUN echo "tools stage ran on $(uname -m)" && uname -m > /tools-uname \\
 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /nonce

FROM --platform=$BUILDPLATFORM ${BASE} AS compile
ARG TARGETARCH TARGETVARIANT
RUN echo "compiling for ${TARGETARCH}${TARGETVARIANT} on $(uname -m)" > /built-for && cat /built-for

FROM ${BASE}
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH
COPY --from=tools /tools-uname /nonce /out/
COPY --from=compile /built-for /out/built-for
RUN echo "$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDARCH" > /out/args \\
 && uname -m > /out/uname
"""


# ---------------------------------------------------------------------------------------------- helpers


def dockyard_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", *args]


def run(cmd: list[str], env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CI": "true", **(env or {})})


def events_of(stderr: str) -> list[dict]:
    """The `--progress json` events of a build (one JSON object a line on standard error)."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def messages(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["event"] == "message"]


def log_lines(events: list[dict]) -> list[str]:
    return [e["line"] for e in events if e["event"] == "step_log"]


def elf_machine(path: Path) -> int:
    """e_machine of an ELF file (a little-endian one: all three CPUs here)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is no ELF file"
    return struct.unpack_from("<H", header, 18)[0]


def copy_platform(source: str, platform: str, dest: Path) -> Path:
    """`skopeo copy --override-arch ...` of one platform of the index `source` ("docker://REF" or "oci:DIR"),
    unpacked with umoci; returns its root filesystem."""
    layout = dest / "oci"
    layout.parent.mkdir(parents=True, exist_ok=True)
    oracle.run_tool(["skopeo", "--insecure-policy", *EXPECTED[platform].skopeo_override(), "copy",
                     "--src-tls-verify=false", source, f"oci:{layout}:latest"], oracle.SKOPEO_TIMEOUT)
    return oracle.unpack(layout, dest / "bundle")


def config_of(source: str, platform: str) -> dict:
    out = oracle.run_tool(["skopeo", "--insecure-policy", *EXPECTED[platform].skopeo_override(), "inspect",
                           "--tls-verify=false", "--raw", "--config", source], oracle.SKOPEO_TIMEOUT)
    return json.loads(out.stdout)


def raw_index(source: str) -> dict:
    out = oracle.run_tool(["skopeo", "inspect", "--tls-verify=false", "--raw", source], oracle.SKOPEO_TIMEOUT)
    return json.loads(out.stdout)


def index_platforms(index: dict) -> list[str]:
    """The platforms of an index's image entries, as "os/arch[/variant]" (attestation entries left out)."""
    found = []
    for entry in index["manifests"]:
        platform = entry.get("platform", {})
        if platform.get("os") == "unknown":  # BuildKit's attestation manifests
            continue
        found.append("/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant"))
                              if p))
    return found


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulation_ready() -> None:
    """QEMU registered with binfmt_misc (F flag) for the foreign platforms, as dockyard registers it: what buildah's
    RUN needs. Never unregistered: others may use it. The proot modes do not need it (proot runs QEMU itself)."""
    from tests.support.binfmt import ensure_registered

    reason = ensure_registered(PLATFORMS[1:])
    if reason is not None:
        pytest.skip(f"QEMU cannot be registered with binfmt_misc here: {reason}")


@pytest.fixture(scope="module")
def multiplatform_base(registry, tmp_path_factory) -> str:
    """The three-platform busybox index the builds start FROM (tests/support/foreign_images.py)."""
    from tests.support.foreign_images import push_busybox_index

    return push_busybox_index(registry.host, tmp_path_factory.mktemp("foreign-bases"), PLATFORMS)


@pytest.fixture(scope="module")
def context() -> Iterator[Path]:
    with open_directory("dockyard-multiplatform-") as root:  # readable by the unprivileged uid too
        yield write_context(root / "ctx", {"Dockerfile": DOCKERFILE, "hello.txt": "hello from the context\n"})


@dataclass(frozen=True)
class Built:
    """One mode's three-platform build: what it pushed and wrote, and its event stream."""

    mode: str
    ref: str
    digest: str
    layout: Path
    events: list[dict]


MODES = ("namespaces", "proot-as-root", "proot-as-user")


@pytest.fixture(scope="module", params=MODES)
def built(request, registry, multiplatform_base, context, tmp_path_factory) -> Iterator[Built]:
    mode = request.param
    ref = f"{registry.host}/multiplatform/{mode}:1"
    with open_directory(f"dockyard-mp-{mode}-") as shared:
        out = shared / "out"
        # proot is asked for in both proot modes: uid 1000 would pick the user-namespace mode on a machine where
        # /etc/subuid gives it ids.
        isolation = "proot" if mode.startswith("proot") else "namespaces"
        args = ["build", "--progress=json", "--no-cache", "--isolation", isolation,
                "--platform", ",".join(PLATFORMS),
                "--build-arg", f"BASE={multiplatform_base}", "-t", ref, "--push",
                "--output", f"type=oci,dest={out / 'layout'}", str(context)]
        if mode == "proot-as-user":
            uid = UNPRIVILEGED_UID
            home = owned_directory(shared, "home", uid, uid)
            owned_directory(shared, "out", uid, uid)
            probe = run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c",
                         "import dockyard.cli"])
            if probe.returncode != 0:
                pytest.skip(f"uid {uid} cannot load dockyard: {probe.stderr.strip()[-200:]}")
            result = run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *dockyard_cmd(*args)],
                         env={"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
                              "DOCKYARD_WORK_DIR": str(home)})
        else:
            result = run(dockyard_cmd(*args))
        assert result.returncode == 0, result.stderr[-4000:]
        events = events_of(result.stderr)
        # Keep the layout past the shared directory's removal: the tests read it later.
        layout = tmp_path_factory.mktemp(f"layout-{mode}") / "layout"
        subprocess.run(["cp", "-a", str(out / "layout"), str(layout)], check=True)
        yield Built(mode, ref, result.stdout.strip().splitlines()[-1], layout, events)


# ---------------------------------------------------------------------------------------------- tests


def test_the_build_ran_in_the_mode_asked_for(built):
    isolation = [m for m in messages(built.events) if m.startswith("isolation: ")]
    assert len(isolation) == 1, messages(built.events)
    assert isolation[0].startswith(f"isolation: {'proot' if built.mode.startswith('proot') else 'namespaces'} ")
    # The preflight said how each foreign platform's RUN steps run: QEMU through binfmt_misc, or proot's own -q.
    emulation = [m for m in messages(built.events) if m.startswith("emulation: ")]
    assert sorted(m.split(" for ")[1].split()[0] for m in emulation) == sorted(PLATFORMS[1:]), emulation
    how = "proot -q" if built.mode.startswith("proot") else "binfmt_misc"
    assert all(how in m for m in emulation), emulation
    # Each platform's RUN printed its own CPU, once.
    printed = sorted(line for line in log_lines(built.events) if line.startswith("RUN on "))
    assert printed == sorted(f"RUN on {EXPECTED[p].uname}" for p in PLATFORMS)


def test_the_push_is_one_index_of_every_platform(built):
    index = raw_index(f"docker://{built.ref}")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index_platforms(index) == list(PLATFORMS)  # in --platform order
    assert built.digest == "sha256:" + hashlib.sha256(
        oracle.run_tool(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{built.ref}"],
                        oracle.SKOPEO_TIMEOUT).stdout.encode()).hexdigest()
    for entry, platform in zip(index["manifests"], PLATFORMS):
        assert entry["platform"].get("variant") == EXPECTED[platform].variant, entry


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_holds_its_own_cpu(built, platform, tmp_path):
    expected = EXPECTED[platform]
    config = config_of(f"docker://{built.ref}", platform)
    assert (config["os"], config["architecture"], config.get("variant")) == \
        ("linux", expected.architecture, expected.variant)

    rootfs = copy_platform(f"docker://{built.ref}", platform, tmp_path / "image")
    assert elf_machine(rootfs / "bin" / "busybox") == expected.elf_machine  # this platform's base layer
    assert (rootfs / "made" / "uname").read_text() == expected.uname + "\n"
    assert (rootfs / "made" / "hello.txt").read_text() == "hello from the context\n"
    listing = (rootfs / "made" / "listing").read_text().split()
    assert {"bin", "etc", "made", "tmp"} <= set(listing)
    # What the RUN saw at / is what the image holds at / (nothing left over or missing from the RUN's world).
    assert sorted(listing) == sorted(os.listdir(rootfs))


def test_the_oci_layout_holds_the_same_index(built, tmp_path):
    index_json = json.loads((built.layout / "index.json").read_text())
    assert [m["mediaType"] for m in index_json["manifests"]] == ["application/vnd.oci.image.index.v1+json"]
    assert index_json["manifests"][0]["digest"] == built.digest  # the very index that was pushed
    index = raw_index(f"oci:{built.layout}")
    assert index_platforms(index) == list(PLATFORMS)
    arm = copy_platform(f"oci:{built.layout}", "linux/arm/v7", tmp_path / "arm")
    assert (arm / "made" / "uname").read_text() == "armv7l\n"


# ---------------------------------------------------------------------------------------------- cross-compilation


@pytest.fixture(scope="module")
def cross_built(registry, multiplatform_base, tmp_path_factory) -> tuple[str, list[dict]]:
    ctx = write_context(tmp_path_factory.mktemp("cross") / "ctx", {"Dockerfile": CROSS_DOCKERFILE})
    ref = f"{registry.host}/multiplatform/cross:1"
    result = run(dockyard_cmd("build", "--progress=json", "--no-cache", "--platform", "linux/amd64,linux/arm/v7",
                              "--build-arg", f"BASE={multiplatform_base}", "-t", ref, "--push", str(ctx)))
    assert result.returncode == 0, result.stderr[-4000:]
    return ref, events_of(result.stderr)


def test_a_build_platform_stage_runs_once_natively_for_every_target(cross_built, tmp_path):
    ref, events = cross_built
    logs = log_lines(events)
    assert logs.count("tools stage ran on x86_64") == 1, logs
    # A stage that reads TARGETARCH runs natively once per target, with that target's value.
    assert sorted(line for line in logs if line.startswith("compiling for ")) == \
        ["compiling for amd64 on x86_64", "compiling for armv7 on x86_64"]

    nonces = set()
    for platform, args in (("linux/amd64", "linux/amd64|linux|amd64||linux/amd64|amd64"),
                           ("linux/arm/v7", "linux/arm/v7|linux|arm|v7|linux/amd64|amd64")):
        rootfs = copy_platform(f"docker://{ref}", platform, tmp_path / platform.replace("/", "-"))
        assert (rootfs / "out" / "args").read_text() == args + "\n"
        assert (rootfs / "out" / "tools-uname").read_text() == "x86_64\n"
        assert (rootfs / "out" / "uname").read_text() == EXPECTED[platform].uname + "\n"
        target = "amd64" if platform == "linux/amd64" else "armv7"
        assert (rootfs / "out" / "built-for").read_text() == f"compiling for {target} on x86_64\n"
        nonces.add((rootfs / "out" / "nonce").read_text())
    assert len(nonces) == 1  # both images got the files of the one run of the tools stage


def test_a_docker_tarball_of_several_platforms_is_refused_before_any_work(multiplatform_base, context,
                                                                             tmp_path):
    tarball = tmp_path / "image.tar"
    result = run(dockyard_cmd("build", "--progress=json", "--platform", "linux/amd64,linux/arm64",
                              "--build-arg", f"BASE={multiplatform_base}",
                              "--output", f"type=docker,dest={tarball}", str(context)))
    assert result.returncode == 2, result.stderr
    events = events_of(result.stderr)
    assert events[-1]["event"] == "build_failed"
    message = events[-1]["message"]
    # Says what is wrong (a docker tarball holds one platform's image) and names the platforms asked for.
    assert "type=docker" in message and "one platform" in message, message
    assert "linux/amd64" in message and "linux/arm64" in message, message
    assert "Traceback" not in result.stderr
    assert not [e for e in events if e["event"] == "step_started"]  # refused before any work
    assert not tarball.exists()


# ---------------------------------------------------------------------------------------------- distributed path


def test_single_platform_builds_merged_by_manifest_create_give_the_same_images(registry, multiplatform_base,
                                                                              context, tmp_path):
    """The CI matrix: each platform built on its own (here: one after the other), pushed by digest without a tag,
    then one `dockyard manifest create` of the digests. With SOURCE_DATE_EPOCH each platform's image is the very
    image the one-runner build of both platforms makes."""
    repo = f"{registry.host}/multiplatform/matrix"
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    sources = []
    for platform in BUILDAH_PLATFORMS:
        digest_file = tmp_path / f"{platform.replace('/', '-')}.digest"
        result = run(dockyard_cmd("build", "--progress=plain", "--platform", platform,
                                  "--build-arg", f"BASE={multiplatform_base}",
                                  "--output", f"type=image,name={repo},push-by-digest=true,push=true",
                                  "--digest-file", str(digest_file), str(context)), env=env)
        assert result.returncode == 0, result.stderr[-4000:]
        sources.append(f"{repo}@{digest_file.read_text().strip()}")
    merged = run(dockyard_cmd("manifest", "create", "-t", f"{repo}:1", "--annotation", "index:org.example.merged=yes",
                              *sources))
    assert merged.returncode == 0, merged.stderr[-4000:]
    index = raw_index(f"docker://{repo}:1")
    assert merged.stdout.strip().splitlines()[-1] == "sha256:" + hashlib.sha256(
        oracle.run_tool(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{repo}:1"],
                        oracle.SKOPEO_TIMEOUT).stdout.encode()).hexdigest()
    assert index_platforms(index) == list(BUILDAH_PLATFORMS)
    assert index.get("annotations", {}).get("org.example.merged") == "yes"
    for platform in BUILDAH_PLATFORMS:
        rootfs = copy_platform(f"docker://{repo}:1", platform, tmp_path / platform.replace("/", "-"))
        assert (rootfs / "made" / "uname").read_text() == EXPECTED[platform].uname + "\n"

    both = run(dockyard_cmd("build", "--progress=plain", "--platform", ",".join(BUILDAH_PLATFORMS),
                            "--build-arg", f"BASE={multiplatform_base}", "-t", f"{repo}:one-runner", "--push",
                            str(context)), env=env)
    assert both.returncode == 0, both.stderr[-4000:]
    one_runner = raw_index(f"docker://{repo}:one-runner")
    assert [m["digest"] for m in one_runner["manifests"]] == [m["digest"] for m in index["manifests"]]


# ---------------------------------------------------------------------------------------------- buildah oracle


@pytest.mark.slow
def test_each_platform_holds_what_buildah_builds(registry, multiplatform_base, context, emulation_ready,
                                                 tmp_path):
    ours = f"{registry.host}/multiplatform/ours-vs-buildah:1"
    theirs = f"{registry.host}/multiplatform/buildah:1"
    result = run(dockyard_cmd("build", "--progress=plain", "--platform", ",".join(BUILDAH_PLATFORMS),
                              "--build-arg", f"BASE={multiplatform_base}", "-t", ours, "--push", str(context)))
    assert result.returncode == 0, result.stderr[-4000:]
    oracle.buildah_manifest_build(context, context / "Dockerfile", theirs, tmp_path / "buildah",
                                  BUILDAH_PLATFORMS, build_args={"BASE": multiplatform_base})

    assert sorted(index_platforms(raw_index(f"docker://{theirs}"))) == \
        sorted(index_platforms(raw_index(f"docker://{ours}")))
    for platform in BUILDAH_PLATFORMS:
        our_cfg, their_cfg = config_of(f"docker://{ours}", platform), config_of(f"docker://{theirs}", platform)
        for key in ("os", "architecture", "variant"):
            assert our_cfg.get(key) == their_cfg.get(key), (platform, key)
        name = platform.replace("/", "-")
        our_root = copy_platform(f"docker://{ours}", platform, tmp_path / f"ours-{name}")
        their_root = copy_platform(f"docker://{theirs}", platform, tmp_path / f"theirs-{name}")
        assert (our_root / "made" / "uname").read_text() == (their_root / "made" / "uname").read_text() == \
            EXPECTED[platform].uname + "\n"
        ours_tree, theirs_tree = tree.flatten(our_root), tree.flatten(their_root)
        # buildah's RUN sees (and leaves) its mount-point stubs, /run among them (tests/support/oracle.py).
        stubs = tree.buildah_stubs_left(ours_tree, theirs_tree)
        their_listing = set((their_root / "made" / "listing").read_text().split())
        our_listing = set((our_root / "made" / "listing").read_text().split())
        assert our_listing == their_listing - {s.strip("/") for s in stubs if s.count("/") == 1}
        assert tree.diff_trees(ours_tree, theirs_tree, {*stubs, "/made/listing"}, "dockyard", "buildah") == []
