"""buildah as the compatibility oracle, and reading images back out of the registry.

Public API:

* ``run_tool(cmd, timeout, ...)`` runs one external tool with a timeout (killing its whole process group on
  expiry) and raises ``ToolError`` carrying the command, exit code and full stdout/stderr on failure.
* ``buildah_build(context, dockerfile, tag, workdir, build_args={}, target=None, *, fmt="docker", secrets=(),
  env={}, push=True)`` runs ``buildah bud --isolation chroot --layers`` with storage, run root, config files and
  temp dirs all under ``workdir`` (never the host's /var/lib/containers), then (``push``) pushes ``tag`` (a
  reference on the loopback registry) to ``docker://tag``.  Calls sharing a ``workdir`` share buildah's
  storage and so its layer cache.
* ``buildah_manifest_build(context, dockerfile, dest, workdir, platforms, build_args={})``: ``buildah bud
  --platform A,B --manifest NAME`` then ``buildah manifest push --all`` to ``docker://dest`` (an image index).
* Without pushing: ``buildah_export_oci(tag, workdir, dest)`` writes the built image to an OCI layout,
  ``buildah_config(tag, workdir)`` gives its docker-format config, ``buildah_remove(tag, workdir)`` untags it.
* ``buildah_manifest_index(sources, workdir) -> dict``: the index ``buildah manifest create`` + ``manifest add``
  makes of registry images (the oracle of an index's platform entries).
* ``fetch_oci(ref, dest) -> dest``: ``skopeo copy docker://REF oci:DEST:latest``.
* ``inspect(ref) -> dict``: the image's raw config JSON (``skopeo inspect --raw --config``; without --raw skopeo
  converts it to an OCI config and loses Healthcheck/OnBuild/Shell), i.e. the document whose
  ``config`` section ``tree.compare_configs`` compares; ``inspect_summary(ref)`` is plain ``skopeo inspect``
  (Digest, Layers, Labels, Env, Architecture...) and ``inspect_raw(ref)`` the raw manifest or index.
* ``unpack(oci_dir, bundle) -> bundle/rootfs``: ``umoci unpack --image DIR:latest BUNDLE`` (as root, so owners,
  modes, device nodes and whiteouts are applied for real).

What buildah (1.28.2, Debian 12) puts into images that docker would not.  Found by building FROM the hand-made
busybox base of tests/support/images.py (which lacks /etc/hosts, /etc/resolv.conf, /etc/hostname and /run) and
FROM scratch; tests/test_support_oracle.py pins each point, so a buildah upgrade that changes one fails there
first.  These are buildah's peculiarities: dockyard must not copy them, comparisons must allow for them.

1. Label ``io.buildah.version`` ("1.28.2") on every image buildah builds (docker adds no label).
   ``tree.compare_configs`` drops it.
2. RUN leaves its mount-point stubs in the layer.  With ``--isolation chroot`` buildah bind-mounts
   /etc/hosts, /etc/resolv.conf, /etc/hostname and mounts /dev, /proc, /sys, /run; each target missing from the
   rootfs is created for the mount and NOT removed before the commit.  So the first RUN on the busybox base adds
   empty files /etc/hosts, /etc/resolv.conf, /etc/hostname (root, mode 0755!) and a directory /run (0755); on a
   base without /dev, /proc, /sys (FROM scratch + COPY) it adds those too, as 0755 root directories.  They
   stay in every later image.  Docker leaves none of these: the classic builder keeps them in an init layer that
   is never committed, BuildKit removes the stubs it created.  ``tree.buildah_run_stubs(base_tree)`` gives the
   paths to ignore when comparing a buildah image with a dockyard one.
3. Unset config fields in ``--format docker``: buildah writes "Entrypoint": [], "OnBuild": [], "Volumes": {},
   "Cmd": [] (FROM scratch), "User": "", "WorkingDir": "" where docker writes null or "" and OCI omits the key;
   ``tree.compare_configs`` treats null/absent/{}/[]/"" alike.  Also docker-only noise outside ``config``: a random
   ``Hostname`` inside config, ``container``, ``container_config`` (a copy of config), ``parent``.
4. ``--format oci`` (buildah's own default) silently drops HEALTHCHECK, ONBUILD and SHELL (the OCI config has no
   field for them; STOPSIGNAL survives).  ``buildah_build`` therefore defaults to ``--format docker`` (docker
   v2s2 manifest and config), which keeps them as docker does (Healthcheck durations in ns, like docker).
5. FROM scratch: buildah sets Env to the default
   PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.  BuildKit does the same; docker's
   classic builder leaves Env empty.
6. WORKDIR makes no layer and no directory by itself: the directory (root, 0755) appears in the layer of the
   next RUN/COPY that needs it, and a WORKDIR with no later RUN/COPY leaves no directory at all.  Docker creates
   the directory at the WORKDIR step (BuildKit: a mkdir layer; classic: a committed container).
7. History: docker classic-builder style "created_by" ("/bin/sh -c #(nop) ENV GREETING=hello APPDIR=/srv/app",
   "/bin/sh -c #(nop) COPY file:<sha256> in ./hello.txt ", "/bin/sh -c <RUN command>"), ``"empty_layer": true``
   on metadata-only steps, and a ``comment`` on each new entry that docker doesn't write: "FROM <base ref>" on
   the first step after FROM, "FROM <12-hex intermediate image id>" on the others (a product of --layers).
   BuildKit writes "ENV ..." / "RUN /bin/sh -c ..." with comment "buildkit.dockerfile.v0" instead.
8. RUN as ``USER app``: buildah sets the supplementary groups from /etc/group including the primary one;
   busybox ``id`` prints "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)".
9. COPY from the context without --chown gives 0:0 (as docker).  COPY --from=stage keeps the source files'
   owners (the destination directory it creates is root's).
10. Layers repeat unchanged parent directories (with fresh mtimes) and delete a directory with a plain
    ``.wh.NAME`` whiteout, not an opaque one; neither shows in a flattened tree (mtimes are not compared).

Isolation from the host: buildah's storage, run root, tmp, HOME and config files (storage.conf, registries.conf
without search registries, containers.conf, policy, auth) all live under ``workdir/buildah``; storage uses the
vfs driver by default (see ``_pick_storage_driver``).  Two bits of global state remain, neither configurable in
buildah 1.28 / skopeo 1.9 and both harmless: as root, c/image keeps its blob-info cache (digest -> location
hints, always re-verified against the registry) in /var/lib/containers/cache/blob-info-cache-v1.boltdb, and
buildah's netavark setup creates an empty /run/containers/networks even though chroot isolation uses the host
network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

BUILD_TIMEOUT = 900
PUSH_TIMEOUT = 300
SKOPEO_TIMEOUT = 300
UMOCI_TIMEOUT = 300


class ToolError(RuntimeError):
    """An external tool failed or timed out; the message holds the command and its full output."""

    def __init__(self, cmd: Sequence[str], returncode: int | None, stdout: str, stderr: str, note: str = ""):
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = note or f"exit code {returncode}"
        super().__init__(
            f"command failed ({status}): {' '.join(self.cmd)}\n"
            f"--- stdout ---\n{stdout.rstrip()}\n--- stderr ---\n{stderr.rstrip()}"
        )


def run_tool(
    cmd: Sequence[str],
    timeout: float,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    input: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Runs ``cmd`` capturing its output; on timeout the tool's whole process group is killed.

    Raises ToolError (with the full output) on a non-zero exit when ``check``, and always on timeout.
    """
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,  # its own process group, so a timeout can end every child it started
    )
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise ToolError(cmd, None, out or "", err or "", note=f"timed out after {timeout}s") from None
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise ToolError(cmd, proc.returncode, out, err)
    return result


# ---------------------------------------------------------------------------------------------- buildah

# Docker's default capability set for RUN (moby's oci/caps/defaults.go).  buildah's own default (from
# containers.conf) lacks MKNOD, NET_RAW and AUDIT_WRITE; giving it docker's set keeps RUN steps that need
# them (mknod, ping) behaving as under docker.  Checked: a RUN then shows CapEff 00000000a80425fb, docker's set.
DOCKER_DEFAULT_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)

def _registry_host(ref: str) -> str | None:
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_containers_files(base: Path, root: Path, runroot: Path, driver: str,
                           registries: Sequence[str]) -> tuple[Path, Path]:
    """storage.conf and registries.conf under `base` for a private containers/storage world (buildah's, podman's):
    no search registries, so nothing ever resolves to docker.io; the loopback `registries` are insecure (plain
    http), which --tls-verify=false also says on the command line."""
    storage_conf = base / "storage.conf"
    storage_conf.write_text(f'[storage]\ndriver = "{driver}"\nrunroot = "{runroot}"\ngraphroot = "{root}"\n')
    registries_conf = base / "registries.conf"
    text = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
    for host in sorted(set(registries)):
        text += f'\n[[registry]]\nlocation = "{host}"\ninsecure = true\n'
    registries_conf.write_text(text)
    return storage_conf, registries_conf


class _BuildahEnv:
    """buildah's private world under ``workdir``: storage, run root, tmp and config files."""

    def __init__(self, workdir: Path, driver: str, registries: Sequence[str]) -> None:
        base = Path(workdir).resolve() / "buildah"
        self.root = base / "storage"
        self.runroot = base / "run"
        self.tmp = base / "tmp"
        self.home = base / "home"
        for d in (self.root, self.runroot, self.tmp, self.home):
            d.mkdir(parents=True, exist_ok=True)
        self.driver = driver
        storage_conf, registries_conf = write_containers_files(base, self.root, self.runroot, driver, registries)
        containers_conf = base / "containers.conf"
        containers_conf.write_text(f"[containers]\ndefault_capabilities = {_toml_list(DOCKER_DEFAULT_CAPS)}\n")
        policy = base / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.policy = policy
        auth = base / "auth.json"
        if not auth.exists():
            auth.write_text('{"auths": {}}')
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
            "CONTAINERS_CONF": str(containers_conf),
            "REGISTRY_AUTH_FILE": str(auth),
            "BUILDAH_ISOLATION": "chroot",
            "TMPDIR": str(self.tmp),
            "HOME": str(self.home),  # no ~/.config/containers of the real user is read
            "XDG_CONFIG_HOME": str(self.home / ".config"),
        }
        self.env.pop("XDG_RUNTIME_DIR", None)

    def cmd(self, *args: str) -> list[str]:
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", self.driver, *args]


def buildah_world(workdir: Path, registries: Sequence[str], driver: str = "vfs") -> _BuildahEnv:
    """buildah's private world under ``workdir`` (the benchmarks': their own commands, a driver of their choice):
    ``.cmd(*args)`` gives a buildah command line using it, ``.env`` its environment, ``.policy`` the signature
    policy file; ``registries`` are the loopback registries it may use over plain HTTP."""
    return _BuildahEnv(workdir, driver, registries)


def _pick_storage_driver() -> str:
    """vfs, unless DOCKYARD_TEST_BUILDAH_DRIVER says otherwise.

    overlay works on this kernel, but buildah 1.28 leaves mounts behind after ``bud`` (a private bind mount of
    its storage/overlay directory and a "merged" mount of a stage it read with COPY --from), which makes the
    pytest tmp dirs under them undeletable and piles up mounts across runs.  vfs mounts nothing; its cost
    (a full copy of the rootfs per layer) is negligible for the busybox-sized images of the tests.
    """
    return os.environ.get("DOCKYARD_TEST_BUILDAH_DRIVER", "vfs")


def _buildah_env(workdir: Path, tag: str) -> _BuildahEnv:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    registries = [h for h in (_registry_host(tag),) if h]
    return _BuildahEnv(workdir, _pick_storage_driver(), registries)


def buildah_build(
    context: Path,
    dockerfile: Path,
    tag: str,
    workdir: Path,
    build_args: Mapping[str, str] = {},  # never mutated
    target: str | None = None,
    *,
    fmt: str = "docker",
    extra_args: Sequence[str] = (),
    secrets: Sequence[str] = (),
    env: Mapping[str, str] = {},  # never mutated
    push: bool = True,
) -> None:
    """Builds ``dockerfile`` in ``context`` with buildah and, when ``push``, pushes the result to ``docker://tag``.

    ``tag`` must then be a reference on the loopback registry ("127.0.0.1:PORT/repo:tag"); without ``push`` the
    image stays in the storage under ``workdir`` (tag it "localhost/NAME:TAG" and read it with
    ``buildah_export_oci`` and ``buildah_config``).  ``fmt`` is buildah's ``--format``: "docker" (default, keeps
    HEALTHCHECK/ONBUILD/SHELL as docker does) or "oci".  ``secrets`` are docker's ``--secret`` values
    (``id=X,src=FILE`` or ``id=X,env=VAR``) and ``env`` is added to buildah's environment (for ``env=VAR``).
    Raises ToolError with buildah's full output on failure.
    """
    benv = _buildah_env(workdir, tag)
    cmd = benv.cmd(
        "bud",
        "--isolation", "chroot",
        "--layers",
        "--tls-verify=false",
        "--signature-policy", str(benv.policy),
        "--format", fmt,
        "-f", str(Path(dockerfile).resolve()),
        "-t", tag,
    )
    for key, value in build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if target:
        cmd += ["--target", target]
    for secret in secrets:
        cmd += ["--secret", secret]
    cmd += [*extra_args, str(Path(context).resolve())]
    run_tool(cmd, BUILD_TIMEOUT, env={**benv.env, **env}, cwd=workdir)
    if push:
        run_tool(
            benv.cmd("push", "--tls-verify=false", "--signature-policy", str(benv.policy), tag, f"docker://{tag}"),
            PUSH_TIMEOUT, env=benv.env, cwd=workdir,
        )


def buildah_manifest_build(context: Path, dockerfile: Path, dest: str, workdir: Path, platforms: Sequence[str],
                           build_args: Mapping[str, str] = {},  # never mutated
                           ) -> None:
    """A multi-platform build: ``buildah bud --platform A,B --manifest NAME`` (each platform's RUN through
    binfmt_misc, which must be registered), then ``buildah manifest push --all NAME docker://dest``: an image
    index of every platform at ``dest`` (a reference on the loopback registry)."""
    benv = _buildah_env(workdir, dest)
    name = "localhost/dockyard-oracle-manifest:latest"
    cmd = benv.cmd("bud", "--isolation", "chroot", "--layers", "--tls-verify=false",
                   "--signature-policy", str(benv.policy), "--format", "oci", "--platform", ",".join(platforms),
                   "--manifest", name, "-f", str(Path(dockerfile).resolve()))
    for key, value in build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    run_tool([*cmd, str(Path(context).resolve())], BUILD_TIMEOUT, env=benv.env, cwd=workdir)
    run_tool(benv.cmd("manifest", "push", "--all", "--tls-verify=false", "--signature-policy", str(benv.policy),
                      name, f"docker://{dest}"), PUSH_TIMEOUT, env=benv.env, cwd=workdir)


def buildah_export_oci(tag: str, workdir: Path, dest: Path) -> Path:
    """Writes the image ``tag`` from buildah's storage under ``workdir`` to an OCI layout ``dest`` (tag "latest").

    No registry round trip: for reading a local build back with ``unpack``.  The layout's config is converted to
    OCI (losing Healthcheck/OnBuild/Shell); take the config from ``buildah_config`` instead.
    """
    benv = _buildah_env(workdir, tag)
    run_tool(benv.cmd("push", "--signature-policy", str(benv.policy), tag, f"oci:{Path(dest).resolve()}:latest"),
             PUSH_TIMEOUT, env=benv.env, cwd=workdir)
    return Path(dest)


def buildah_config(tag: str, workdir: Path) -> dict:
    """The docker-format image config of ``tag`` in buildah's storage under ``workdir`` (what ``inspect`` gives
    for a pushed image: ``config``, ``history``, ``rootfs``...)."""
    benv = _buildah_env(workdir, tag)
    out = run_tool(benv.cmd("inspect", "--type", "image", tag), SKOPEO_TIMEOUT, env=benv.env, cwd=workdir)
    return json.loads(out.stdout)["Docker"]


def buildah_remove(tag: str, workdir: Path) -> None:
    """Untags ``tag`` in buildah's storage (its layers stay, as the layer cache of later builds)."""
    benv = _buildah_env(workdir, tag)
    run_tool(benv.cmd("untag", tag), SKOPEO_TIMEOUT, env=benv.env, cwd=workdir, check=False)


def buildah_manifest_index(sources: Sequence[str], workdir: Path) -> dict:
    """The image index buildah makes of ``sources`` (registry references on the loopback registry) with
    ``buildah manifest create`` and ``manifest add``, as ``buildah manifest inspect`` shows it (nothing pushed)."""
    name = "localhost/dockyard-oracle-index:latest"
    benv = _buildah_env(workdir, sources[0])
    run_tool(benv.cmd("manifest", "rm", name), SKOPEO_TIMEOUT, env=benv.env, cwd=workdir, check=False)
    run_tool(benv.cmd("manifest", "create", name), SKOPEO_TIMEOUT, env=benv.env, cwd=workdir)
    for source in sources:
        run_tool(benv.cmd("manifest", "add", "--tls-verify=false", name, f"docker://{source}"), PUSH_TIMEOUT,
                 env=benv.env, cwd=workdir)
    out = run_tool(benv.cmd("manifest", "inspect", name), SKOPEO_TIMEOUT, env=benv.env, cwd=workdir)
    return json.loads(out.stdout)


# ---------------------------------------------------------------------------------------------- skopeo, umoci


def _skopeo(*args: str) -> list[str]:
    # --insecure-policy: no dependence on the host's /etc/containers/policy.json (all images here are local).
    return ["skopeo", "--insecure-policy", *args]


def fetch_oci(ref: str, dest: Path) -> Path:
    """Copies ``ref`` from the registry into an OCI layout at ``dest`` (tag "latest"); returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_tool(_skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:latest"), SKOPEO_TIMEOUT)
    return dest


def inspect(ref: str) -> dict:
    """The raw image config JSON of ``ref`` (``architecture``, ``os``, ``config``, ``rootfs``, ``history``...)."""
    out = run_tool(_skopeo("inspect", "--tls-verify=false", "--raw", "--config", f"docker://{ref}"), SKOPEO_TIMEOUT)
    return json.loads(out.stdout)


def inspect_summary(ref: str) -> dict:
    """Plain ``skopeo inspect``: Name, Digest, Architecture, Os, Layers, Env, Labels, LayersData..."""
    out = run_tool(_skopeo("inspect", "--tls-verify=false", f"docker://{ref}"), SKOPEO_TIMEOUT)
    return json.loads(out.stdout)


def inspect_raw(ref: str) -> dict:
    """The raw manifest (or image index / manifest list) of ``ref``."""
    out = run_tool(_skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}"), SKOPEO_TIMEOUT)
    return json.loads(out.stdout)


def unpack(oci_dir: Path, bundle: Path) -> Path:
    """Unpacks the "latest" image of the OCI layout ``oci_dir`` into ``bundle``; returns ``bundle/rootfs``.

    ``bundle`` must not exist yet (umoci's rule).  Run as root, so owners and device nodes are real.
    """
    bundle = Path(bundle)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    run_tool(["umoci", "unpack", "--image", f"{oci_dir}:latest", str(bundle)], UMOCI_TIMEOUT)
    return bundle / "rootfs"
