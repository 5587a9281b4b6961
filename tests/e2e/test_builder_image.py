"""dockyard's builder image (images/builder/Dockerfile), built by dockyard, run under a real container runtime as
kaniko's users run the executor: Debian's podman (tests/support/podman.py) in three profiles,

* docker's default: root, docker's default capabilities (no CAP_SYS_ADMIN), the default seccomp profile;
* Kubernetes' "restricted" Pod Security: uid 1000, no capabilities, no_new_privs;
* GitLab's kaniko recipe: the debug image with its entrypoint cleared, a script run by /busybox/sh that writes
  /kaniko/.docker/config.json with echo and calls /kaniko/executor.

Each builds the same two-stage Dockerfile (RUN-created files, setuid bits, symlinks, hard links, COPY --from,
COPY --chown, USER, a RUN chown), pushes it to a loopback registry that demands a password, and the pushed image
must equal buildah's build of the Dockerfile file by file (type, mode, owner, content, link target) and in its
config, as tests/compat compares them.

The builder image's base is made from this host's Debian files with apt in it (tests/support/debian_apt_base.py),
and its apt installs proot and busybox-static from a loopback Debian repository of the .deb files
scripts/install.sh downloaded (tests/support/debian_repo.py): the Dockerfile's own apt steps run, and no test
reaches Debian's mirrors.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.helpers import write_context
from tests.support import oracle, podman, signatures, tree
from tests.support.builder_image import BuilderImages
from tests.support.foreign_images import UNAME_MACHINE, push_busybox_index
from tests.support.registry import RegistryServer
from tests.support.sigstore_mock import image_verifies, oidc_token, running_sigstore_mock

pytestmark = [pytest.mark.slow, pytest.mark.skipif(podman.available() is not None,
                                                   reason=str(podman.available()))]

USER, PASSWORD = "ci", "builder-Pa55word"

APP_DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS build
RUN mkdir -p /out/bin /out/data /out/app \\
 && echo "made by RUN" > /out/data/greeting \\
 && cp /bin/busybox /out/bin/tool && chmod 4755 /out/bin/tool \\
 && ln -s ../data/greeting /out/bin/greeting-link \\
 && ln /out/data/greeting /out/data/greeting-hard \\
 && echo "the app's" > /out/app/owned && chmod 2750 /out/app && chown -R 1000:1000 /out/app
# The builder's own files and credentials are not in a RUN step's view.
RUN (cat /kaniko/.docker/config.json; echo "exit=$?"; echo "DOCKER_CONFIG=$DOCKER_CONFIG"; ls /dockyard) \\
    > /out/probe 2>&1 || true

FROM ${BASE}
RUN mkdir -p /srv /home/app && chown app:app /home/app && chmod 0750 /home/app
COPY --from=build /out /opt/out
COPY --from=build --chown=app:app /out/data/greeting /home/app/greeting
COPY --chown=1000:50 app.txt /srv/app.txt
USER app
RUN id -u > /home/app/uid && ln -s greeting /home/app/greeting-link && ln /home/app/uid /home/app/uid-hard
WORKDIR /home/app
ENV GREETING=/home/app/greeting
CMD ["cat", "/home/app/greeting"]
"""

# What APP_DOCKERFILE makes (type, mode, uid, gid), as docker and buildah make it.
EXPECTED = {
    "/opt/out/bin/tool": ("f", 0o4755, 0, 0),
    "/opt/out/bin/greeting-link": ("l", 0o777, 0, 0),
    "/opt/out/data/greeting": ("f", 0o644, 0, 0),
    "/opt/out/data/greeting-hard": ("f", 0o644, 0, 0),
    "/opt/out/app": ("d", 0o2750, 1000, 1000),
    "/opt/out/app/owned": ("f", 0o644, 1000, 1000),
    "/home/app": ("d", 0o750, 1000, 1000),
    "/home/app/greeting": ("f", 0o644, 1000, 1000),
    "/home/app/uid": ("f", 0o644, 1000, 1000),
    "/home/app/greeting-link": ("l", 0o777, 1000, 1000),
    "/srv/app.txt": ("f", 0o644, 1000, 50),
}


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("builder-image-registry"), htpasswd={USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runtime(registry, auth_registry, builder_images, tmp_path_factory):
    engine = podman.Podman(tmp_path_factory.mktemp("podman"), [registry.host, auth_registry.host])
    engine.pull(builder_images.executor)
    engine.pull(builder_images.debug)
    yield engine
    engine.remove_all()


@dataclass(frozen=True)
class BuiltImage:
    """An image read back: its flattened tree (tests/support/tree.py) and raw config."""

    tree: dict
    config: dict


@pytest.fixture(scope="module")
def app_context(tmp_path_factory) -> Path:
    ctx = write_context(tmp_path_factory.mktemp("app") / "ctx", {"Dockerfile": APP_DOCKERFILE, "app.txt": "app\n"})
    # Readable by the restricted profile's uid 1000, as a CI checkout is.
    for path in (ctx, *ctx.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ctx


@pytest.fixture(scope="module")
def buildah_reference(app_context, busybox_base, tmp_path_factory) -> BuiltImage:
    work = tmp_path_factory.mktemp("buildah")
    tag = "localhost/builder-image/app:buildah"
    oracle.buildah_build(app_context, app_context / "Dockerfile", tag, work, {"BASE": busybox_base}, push=False)
    oci = oracle.buildah_export_oci(tag, work, work / "oci")
    return BuiltImage(tree.flatten(oracle.unpack(oci, work / "bundle")), oracle.buildah_config(tag, work))


def docker_config(registry: RegistryServer) -> str:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return json.dumps({"auths": {registry.host: {"auth": token}}})


def pushed_image(ref: str, work: Path) -> BuiltImage:
    """The image at `ref` (on the password-protected registry), unpacked as root, and its raw config."""
    creds = f"{USER}:{PASSWORD}"
    oracle.run_tool(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds", creds,
                     f"docker://{ref}", f"oci:{work / 'oci'}:latest"], oracle.SKOPEO_TIMEOUT)
    config = oracle.run_tool(["skopeo", "inspect", "--tls-verify=false", "--creds", creds, "--raw", "--config",
                              f"docker://{ref}"], oracle.SKOPEO_TIMEOUT).stdout
    return BuiltImage(tree.flatten(oracle.unpack(work / "oci", work / "bundle")), json.loads(config))


def run_profile(profile: str, runtime: podman.Podman, images: BuilderImages, ctx: Path, dest: str,
                registry: RegistryServer, base: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """One kaniko-style build of `ctx` in the builder image under `profile`, pushing to `dest`."""
    if profile == "gitlab-debug":
        # GitLab's kaniko recipe (its docs' .gitlab-ci.yml), as the docker executor runs it: the debug image with
        # `entrypoint: [""]`, the job's variables in the environment, the checkout mounted, a script in /busybox/sh.
        script = (
            'mkdir -p /kaniko/.docker\n'
            'echo "{\\"auths\\":{\\"${CI_REGISTRY}\\":{\\"auth\\":\\"$(printf "%s:%s" "${CI_REGISTRY_USER}" '
            '"${CI_REGISTRY_PASSWORD}" | base64 | tr -d \'\\n\')\\"}}}" > /kaniko/.docker/config.json\n'
            '/kaniko/executor --context "${CI_PROJECT_DIR}" --dockerfile "${CI_PROJECT_DIR}/Dockerfile" '
            '--destination "${CI_REGISTRY_IMAGE}:${CI_COMMIT_TAG}" --build-arg "BASE=${BASE}"\n'
        )
        repo, _, tag = dest.rpartition(":")
        return runtime.run(images.debug, ["/busybox/sh", "-c", script], entrypoint="",
                           volumes={ctx: "/builds/team/app"},
                           env={"CI_REGISTRY": registry.host, "CI_REGISTRY_USER": USER,
                                "CI_REGISTRY_PASSWORD": PASSWORD, "CI_PROJECT_DIR": "/builds/team/app",
                                "CI_REGISTRY_IMAGE": repo, "CI_COMMIT_TAG": tag, "BASE": base})
    # The Kubernetes way: the docker config from a Secret mounted at /kaniko/.docker, kaniko's arguments.
    secret = tmp_path / "docker-secret"
    secret.mkdir()
    (secret / "config.json").write_text(docker_config(registry))
    secret.chmod(0o755)
    (secret / "config.json").chmod(0o644)
    flags = podman.RESTRICTED_PROFILE if profile == "restricted" else podman.DEFAULT_PROFILE
    return runtime.run(images.executor, ["--context", "dir:///workspace", "--dockerfile", "Dockerfile",
                                         "--destination", dest, "--build-arg", f"BASE={base}"],
                       flags=flags, volumes={ctx: "/workspace", secret: "/kaniko/.docker"})


PROFILES = [
    "default",
    "restricted",
    "gitlab-debug",
]


@pytest.mark.parametrize("profile", PROFILES)
def test_builder_image_builds_what_buildah_builds(profile, runtime, builder_images, app_context, buildah_reference,
                                                  auth_registry, busybox_base, tmp_path):
    dest = f"{auth_registry.host}/team/app:{profile}"
    ran = run_profile(profile, runtime, builder_images, app_context, dest, auth_registry, busybox_base, tmp_path)
    assert ran.returncode == 0, f"the build in the {profile} profile failed:\n{ran.stdout}\n{ran.stderr}"
    ours = pushed_image(dest, tmp_path)

    # What the Dockerfile makes, checked on its own so that the comparison cannot pass with both builders wrong.
    files = ours.tree
    differences = [f"{path}: {files[path].describe() if path in files else 'missing'}, expected {kind} "
                   f"{mode:04o} {uid}:{gid}" for path, (kind, mode, uid, gid) in EXPECTED.items()
                   if path not in files or (files[path].type, files[path].mode, files[path].uid,
                                            files[path].gid) != (kind, mode, uid, gid)]
    if files.get("/opt/out/bin/greeting-link") and files["/opt/out/bin/greeting-link"].link != "../data/greeting":
        differences.append(f"/opt/out/bin/greeting-link: {files['/opt/out/bin/greeting-link'].describe()}")
    if files.get("/home/app/uid-hard") and files["/home/app/uid-hard"].nlink != 2:
        differences.append("/home/app/uid-hard is not a hard link of /home/app/uid")
    if ours.config["config"].get("User") != "app":
        differences.append(f"config User {ours.config['config'].get('User')!r}, expected 'app'")
    probes = [t.get("/opt/out/probe") for t in (files, buildah_reference.tree)]
    if None in probes or probes[0].sha256 != probes[1].sha256:
        differences.append("/opt/out/probe: a RUN step saw the builder's files or credentials")

    ignore = tree.buildah_stubs_left(ours.tree, buildah_reference.tree)
    differences += tree.diff_trees(ours.tree, buildah_reference.tree, ignore, f"dockyard ({profile})", "buildah")
    differences += tree.compare_configs(ours.config, buildah_reference.config, tree.CONFIG_FIELDS,
                                        f"dockyard ({profile})", "buildah")
    assert not differences, "\n".join(differences)


def test_builder_image_layout(runtime, builder_images):
    """kaniko's paths and dockyard's CI adapters are where pipelines look for them, in both targets; only the
    debug target has the busybox shell."""
    check = ("import os, dockyard_integrations.gitlab.job; "
             "assert os.path.realpath('/kaniko/executor') == '/dockyard/bin/kaniko-executor'; "
             "assert os.path.isdir('/kaniko/.docker') and os.path.isdir('/workspace'); "
             "assert os.environ['DOCKER_CONFIG'] == '/kaniko/.docker/'; "
             "print(os.getcwd(), os.path.exists('/busybox/sh'))")
    for image, shell in ((builder_images.executor, False), (builder_images.debug, True)):
        ran = runtime.run(image, ["-c", check], entrypoint="/dockyard/venv/bin/python3",
                          flags=podman.RESTRICTED_PROFILE)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split() == ["/workspace", str(shell)]
    version = runtime.run(builder_images.executor, ["--version"], entrypoint="/dockyard/bin/dockyard")
    assert version.returncode == 0 and version.stdout.startswith("dockyard"), version.stdout + version.stderr
    busybox = runtime.run(builder_images.debug, ["-c", "echo $0; readlink /busybox/wget"], entrypoint="/busybox/sh")
    assert busybox.returncode == 0, busybox.stderr
    assert busybox.stdout == "/busybox/sh\n/usr/bin/busybox\n"


# What the Dockerfile may add to its base, compressed: 5.1 MB (executor) and 6.4 MB (debug) when measured, 10.5 MB
# with the debug sections of a locally built zstandard wheel that stage_context.py strips; QEMU's two emulators
# (qemu-aarch64-static, qemu-arm-static: 24.2 MB uncompressed) add 6.6 MB to both, 11.9 and 13.2 MB measured;
# signing's dependencies (cryptography, pynacl and cffi: 17.6 MB installed) add 5.4 MB, and the `keyless` extra
# (sigstore-python and its dependencies, 18.9 MB installed) 6.2 MB more: 25.1 MB (executor) measured.
MAX_ADDED_BYTES = 28_000_000


def test_builder_image_stays_small(builder_images):
    for ref in (builder_images.executor, builder_images.debug):
        layers = oracle.inspect_raw(ref)["layers"]
        added = sum(layer["size"] for layer in layers[1:])  # the tests' Debian base is one layer
        assert added < MAX_ADDED_BYTES, f"{ref} adds {added / 1e6:.1f} MB (compressed) to its base"


APT_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends busybox-static && busybox true
"""


@pytest.mark.parametrize("profile", ["default", "restricted", "gitlab-debug"])
def test_builder_image_runs_apt_as_docker_does(profile, runtime, builder_images, auth_registry, tmp_path):
    """The most common RUN of all, in each profile: apt-get update and install from a loopback Debian repository
    (the apt-capable base's sources), with apt's download methods sandboxed as `_apt` and none of the warnings
    docker's builds do not print."""
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": APT_DOCKERFILE})
    for path in (ctx, *ctx.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    dest = f"{auth_registry.host}/team/apt:{profile}"
    ran = run_profile(profile, runtime, builder_images, ctx, dest, auth_registry, builder_images.base, tmp_path)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, f"the apt build in the {profile} profile failed:\n{output}"
    assert "unsandboxed" not in output and "W: " not in output, output
    files = pushed_image(dest, tmp_path).tree
    assert any(path in files for path in ("/usr/bin/busybox", "/bin/busybox")), sorted(files)[:20]


MULTI_PLATFORM_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN uname -m > /machine
"""
MULTI_PLATFORMS = ("linux/amd64", "linux/arm64")


@pytest.fixture(scope="module")
def busybox_index(registry, tmp_path_factory) -> str:
    """A busybox index for linux/amd64 and linux/arm64 (tests/support/foreign_images.py)."""
    return push_busybox_index(registry.host, tmp_path_factory.mktemp("busybox-index"), MULTI_PLATFORMS)


@pytest.mark.parametrize("profile", ["default", "restricted"])
def test_builder_image_builds_two_platforms_through_its_own_qemu(profile, runtime, builder_images, auth_registry,
                                                                 busybox_index, tmp_path):
    """`dockyard build --platform linux/amd64,linux/arm64` in the executor image, where no binfmt_misc can be
    registered: the arm64 RUN runs through proot -q and the image's own qemu-aarch64-static (DOCKYARD_QEMU_DIR),
    and the pushed index holds each platform's image with its RUN's `uname -m`."""
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": MULTI_PLATFORM_DOCKERFILE})
    for path in (ctx, *ctx.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    secret = tmp_path / "docker-secret"
    secret.mkdir()
    (secret / "config.json").write_text(docker_config(auth_registry))
    secret.chmod(0o755)
    (secret / "config.json").chmod(0o644)
    dest = f"{auth_registry.host}/team/multi:{profile}"
    flags = podman.RESTRICTED_PROFILE if profile == "restricted" else podman.DEFAULT_PROFILE
    ran = runtime.run(builder_images.executor,
                      ["build", "--progress=plain", "--platform", ",".join(MULTI_PLATFORMS), "--build-arg",
                       f"BASE={busybox_index}", "-t", dest, "--push", "/workspace"],
                      entrypoint="/dockyard/bin/dockyard", flags=flags,
                      volumes={ctx: "/workspace", secret: "/kaniko/.docker"})
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, f"the two-platform build in the {profile} profile failed:\n{output}"
    assert "isolation: proot" in output, output
    assert ("emulation: RUN steps for linux/arm64 run through QEMU (proot -q /dockyard/qemu/qemu-aarch64-static)"
            in output), output

    creds = f"{USER}:{PASSWORD}"
    index = json.loads(oracle.run_tool(["skopeo", "inspect", "--tls-verify=false", "--creds", creds, "--raw",
                                        f"docker://{dest}"], oracle.SKOPEO_TIMEOUT).stdout)
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == \
        [("linux", "amd64"), ("linux", "arm64")], index
    for platform in MULTI_PLATFORMS:
        arch = platform.split("/")[1]
        layout = tmp_path / f"oci-{arch}"
        oracle.run_tool(["skopeo", "--insecure-policy", "--override-arch", arch, "copy", "--src-tls-verify=false",
                         "--src-creds", creds, f"docker://{dest}", f"oci:{layout}:latest"], oracle.SKOPEO_TIMEOUT)
        rootfs = oracle.unpack(layout, tmp_path / f"bundle-{arch}")
        assert (rootfs / "machine").read_text() == UNAME_MACHINE[platform] + "\n", platform
        assert not list(rootfs.glob("**/qemu-*")), f"an emulator reached the {platform} image"


def _doctor_row(report: str, platform: str) -> str:
    return next(line.strip() for line in report.splitlines() if line.strip().startswith(platform + "  "))


def test_builder_image_emulators_and_how_a_user_adds_one(runtime, builder_images, tmp_path):
    """`dockyard doctor` in the executor image (restricted profile): arm64 and arm/v7 through the image's own
    emulators, s390x unavailable; then s390x's emulator added as the Dockerfile's comment says: the one program
    mounted into /dockyard/qemu, or a directory of emulators mounted and named in DOCKYARD_QEMU_DIR."""
    s390x = Path("/usr/bin/qemu-s390x-static")
    if not s390x.exists():
        pytest.skip("qemu-user-static is not installed here (scripts/install.sh installs it)")

    def doctor(**kwargs) -> str:
        ran = runtime.run(builder_images.executor, ["doctor"], entrypoint="/dockyard/bin/dockyard",
                          flags=podman.RESTRICTED_PROFILE, **kwargs)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "platforms (how RUN steps for each run in the proot mode):" in ran.stdout, ran.stdout
        return ran.stdout

    report = doctor()
    for platform, qemu in (("linux/arm64", "qemu-aarch64-static"), ("linux/arm/v7", "qemu-arm-static")):
        assert f"QEMU through proot -q /dockyard/qemu/{qemu}" in _doctor_row(report, platform), report
    assert "unavailable: no QEMU emulator qemu-s390x-static in /dockyard/qemu" in _doctor_row(report, "linux/s390x")

    report = doctor(volumes={s390x: "/dockyard/qemu/qemu-s390x-static"})
    assert "QEMU through proot -q /dockyard/qemu/qemu-s390x-static" in _doctor_row(report, "linux/s390x"), report
    assert "QEMU through proot -q /dockyard/qemu/qemu-aarch64-static" in _doctor_row(report, "linux/arm64")

    mine = tmp_path / "emulators"
    mine.mkdir()
    mine.chmod(0o755)
    shutil.copy2(s390x, mine)
    report = doctor(volumes={mine: "/opt/qemu"}, env={"DOCKYARD_QEMU_DIR": "/opt/qemu"})
    assert "QEMU through proot -q /opt/qemu/qemu-s390x-static" in _doctor_row(report, "linux/s390x"), report
    assert "unavailable" in _doctor_row(report, "linux/arm64"), report  # that directory alone is looked at


KEYLESS_DOCKERFILE = "FROM scratch\nCOPY hello /hello\n"


def test_builder_image_signs_keyless(runtime, builder_images, registry, tmp_path):
    """The image ships the `keyless` extra: `dockyard build --push --sign keyless,...` in the executor image under
    docker's default profile, with the job's OIDC token in a variable (as the GitLab component passes
    SIGSTORE_ID_TOKEN), signs with a certificate from Fulcio and logs in Rekor (@sigstore/mock on loopback); the
    pushed image's bundle verifies with sigstore-js for the token's identity, and not for another one."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": KEYLESS_DOCKERFILE, "hello": "keyless\n"})
    for path in (context, *context.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    repo = "builder-image/keyless"
    (tmp_path / "sigstore-mock").mkdir()
    with running_sigstore_mock(tmp_path / "sigstore-mock") as mock:
        ran = runtime.run(builder_images.executor,
                          ["build", "--progress", "plain", "-t", f"{registry.host}/{repo}:1", "--push",
                           "--sign", f"keyless,oidc-token-env=JOB_TOKEN,{mock.sign_attributes()}", "/workspace"],
                          entrypoint="/dockyard/bin/dockyard", flags=podman.DEFAULT_PROFILE,
                          # the trusted root at the path sign_attributes() names
                          volumes={context: "/workspace", mock.trusted_root.parent: str(mock.trusted_root.parent)},
                          env={"JOB_TOKEN": oidc_token()})
        assert ran.returncode == 0, ran.stdout + ran.stderr
        digest = signatures.manifest_digest(registry.host, repo, "1")
        assert image_verifies(registry.host, repo, digest, mock.trusted_root)
        assert not image_verifies(registry.host, repo, digest, mock.trusted_root,
                                  identity="https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main")
