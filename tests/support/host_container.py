"""Run a command of this machine in a real container runtime's security profile: Debian's podman runs it in a
container whose root filesystem is this host's own (bound without its submounts, in a private mount namespace
of the test), so the same dockyard and the same tools run, under the capabilities, seccomp profile and user
the podman flags give. Made for checks that need the profile, not an image (tests/support/podman.py runs the
builder image itself).

Everything of podman's goes under a directory of the caller's (storage with the vfs driver, run root, tmp), so
the host's podman state is neither read nor changed. This machine needs two workarounds
(/work/shared/reference/where-builds-run.md): runc behind a wrapper that deletes `process.rlimits` from the
bundle (root here lacks CAP_SYS_RESOURCE), and `--cgroup-manager cgroupfs` (cgroups v1/v2 hybrid).

``run_in_container(workdir, argv, flags=..., binds=..., env=...)`` returns the finished process; `binds` are
host directories (under another mount than / perhaps, e.g. a tmpfs /tmp) bound at the same path.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

DEFAULT_PROFILE: tuple[str, ...] = ()
RESTRICTED_PROFILE = ("--user", "1000:1000", "--cap-drop=all", "--security-opt", "no-new-privileges")

RUNC_WRAPPER = """#!/usr/bin/python3
import json, os, sys
args = sys.argv[1:]
for flag in ("--bundle", "-b"):
    if flag in args:
        path = os.path.join(args[args.index(flag) + 1], "config.json")
        with open(path) as f:
            spec = json.load(f)
        spec.get("process", {}).pop("rlimits", None)
        with open(path, "w") as f:
            json.dump(spec, f)
os.execv("/usr/sbin/runc", ["runc", *args])
"""


def available() -> str | None:
    """Why no container can be run here, or None."""
    if os.geteuid() != 0:
        return "needs root (podman's rootful mode)"
    for program in ("podman", "/usr/sbin/runc", "unshare"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install podman runc)"
    return None


def run_in_container(workdir: Path, argv: Sequence[str], *, flags: Sequence[str] = DEFAULT_PROFILE,
                     binds: Sequence[str] = (), env: Mapping[str, str] | None = None,
                     timeout: float = 900) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    wrapper = workdir / "runc-wrapper"
    wrapper.write_text(RUNC_WRAPPER)
    wrapper.chmod(0o755)
    rootfs = workdir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    podman = ["podman", "--root", str(workdir / "storage"), "--runroot", str(workdir / "run"), "--tmpdir",
              str(workdir / "tmp"), "--storage-driver", "vfs", "--runtime", str(wrapper), "--cgroup-manager",
              "cgroupfs", "--events-backend", "none"]
    run = [*podman, "run", "--rm", "--network", "host", *flags]
    for path in binds:
        run += ["-v", f"{path}:{path}"]
    for name, value in (env or {}).items():
        run += ["-e", f"{name}={value}"]
    run += ["--rootfs", str(rootfs), *argv]
    script = f"mount --bind / {shlex.quote(str(rootfs))} && exec {shlex.join(run)}"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout)
