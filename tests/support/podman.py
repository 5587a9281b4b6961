"""A real container runtime for the builder image's tests: Debian's podman, run as kaniko's users run the executor.

``Podman(workdir, registries)`` keeps everything of podman under ``workdir`` (storage with the vfs driver, run
root, tmp dir, containers.conf, storage.conf, registries.conf listing the loopback ``registries`` as insecure, an
empty auth file), so nothing of the host's podman configuration or storage is read or changed.  This machine
needs two workarounds (/work/shared/reference/where-builds-run.md), both outside the code under test:

* root here lacks CAP_SYS_RESOURCE, so no OCI runtime can apply the rlimits podman writes into the bundle: the
  runtime is ``runc`` behind a wrapper script that deletes ``process.rlimits`` from the bundle's config.json;
* cgroups are a v1/v2 hybrid: ``--cgroup-manager cgroupfs`` (and runc, since crun refuses the hybrid).

``pull(ref)`` fetches an image from a loopback registry; ``run(image, args, flags=..., ...)`` runs a container
with ``--network host`` (the registries listen on 127.0.0.1) and returns the finished process;
``run_with_host_root(argv, ...)`` runs a command of this machine (the same dockyard and tools) in a container
whose root filesystem is the host's own, for checks that need a profile rather than an image.  The profiles the
builder image is tested in are podman flags: ``DEFAULT_PROFILE`` (docker's default: root, default
capabilities, default seccomp profile), ``RESTRICTED_PROFILE`` (Kubernetes Pod Security "restricted").
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from tests.support.oracle import run_tool, write_containers_files

DEFAULT_PROFILE: tuple[str, ...] = ()
RESTRICTED_PROFILE = ("--user", "1000:1000", "--cap-drop=all", "--security-opt", "no-new-privileges")
PULL_TIMEOUT = 600
RUN_TIMEOUT = 900

# Deletes process.rlimits from the bundle's config.json, then runs runc: the bundle is the argument after
# --bundle/-b (only `runc create` and `runc run` get one).
RUNC_WRAPPER = """#!/bin/sh
bundle=
prev=
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle=$arg ;; esac
  case "$arg" in --bundle=*) bundle=${arg#--bundle=} ;; esac
  prev=$arg
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  /usr/bin/python3 -c 'import json, sys
path = sys.argv[1]
with open(path) as f:
    spec = json.load(f)
spec.get("process", {}).pop("rlimits", None)
with open(path, "w") as f:
    json.dump(spec, f)' "$bundle/config.json" || exit 1
fi
exec /usr/sbin/runc "$@"
"""


def available() -> str | None:
    """Why podman cannot run here (a missing program), or None."""
    for program in ("podman", "/usr/sbin/runc", "conmon"):
        if shutil.which(program) is None and not os.path.exists(program):
            return f"{program} is not installed (apt-get install -y podman runc)"
    return None


class Podman:
    def __init__(self, workdir: Path, registries: Sequence[str] = ()) -> None:
        base = Path(workdir).resolve()
        self.root, self.runroot, self.tmp, self.home = (base / d for d in ("storage", "run", "tmp", "home"))
        for directory in (self.root, self.runroot, self.tmp, self.home):
            directory.mkdir(parents=True, exist_ok=True)
        self.runtime = base / "runc-wrapper"
        self.runtime.write_text(RUNC_WRAPPER)
        self.runtime.chmod(0o755)
        storage_conf, registries_conf = write_containers_files(base, self.root, self.runroot, "vfs", registries)
        containers_conf = base / "containers.conf"
        containers_conf.write_text('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                                   f'events_logfile_path = "{base / "events.log"}"\n')
        auth = base / "auth.json"
        auth.write_text('{"auths": {}}')
        policy = base / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.policy = policy
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CONTAINERS_STORAGE_CONF": str(storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
            "CONTAINERS_CONF": str(containers_conf),
            "REGISTRY_AUTH_FILE": str(auth),
            "TMPDIR": str(self.tmp),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
        }

    def cmd(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs",
                "--tmpdir", str(self.tmp), "--runtime", str(self.runtime), "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *args]

    def pull(self, ref: str) -> None:
        run_tool(self.cmd("pull", "--quiet", "--tls-verify=false", "--signature-policy", str(self.policy), ref),
                 PULL_TIMEOUT, env=self.env)

    def run(self, image: str, args: Sequence[str] = (), *, flags: Sequence[str] = (),
            entrypoint: str | None = None, volumes: Mapping[Path, str] | None = None,
            env: Mapping[str, str] | None = None, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        """Runs `image` with `args` (after its entrypoint, or after `entrypoint`: "" clears it as GitLab's
        `entrypoint: [""]` does) and `flags` (a profile); `volumes` maps host paths to container paths."""
        cmd = ["run", "--rm", "--network", "host", *flags]
        for host_path, path in (volumes or {}).items():
            cmd += ["--volume", f"{host_path}:{path}"]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        if entrypoint is not None:
            cmd += ["--entrypoint", entrypoint]
        return run_tool(self.cmd(*cmd, image, *args), timeout, env=self.env, check=False)

    def remove_all(self) -> None:
        """Removes every container and image of this storage (vfs keeps full copies of every layer)."""
        run_tool(self.cmd("system", "reset", "--force"), PULL_TIMEOUT, env=self.env, check=False)

    def run_with_host_root(self, argv: Sequence[str], *, flags: Sequence[str] = DEFAULT_PROFILE,
                           binds: Sequence[str] = (), env: Mapping[str, str] | None = None,
                           timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        """Runs `argv` in a container whose root is this host's / (bound without its submounts, in a private
        mount namespace of the test) under `flags`; `binds` are host directories on other mounts (a tmpfs /tmp)
        bound at the same path."""
        rootfs = self.tmp.parent / "host-rootfs"
        rootfs.mkdir(exist_ok=True)
        cmd = ["run", "--rm", "--network", "host", *flags]
        for path in binds:
            cmd += ["--volume", f"{path}:{path}"]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        run = self.cmd(*cmd, "--rootfs", str(rootfs), *argv)
        script = f"mount --bind / {shlex.quote(str(rootfs))} && exec {shlex.join(run)}"
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

