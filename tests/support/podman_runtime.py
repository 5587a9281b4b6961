"""podman from Debian as the container runtime of tests, with this machine's two workarounds
(../shared/reference/where-builds-run.md): runc through a wrapper that drops `process.rlimits` from the OCI spec
(root here lacks CAP_SYS_RESOURCE, so the runtime cannot apply them), and the cgroupfs cgroup manager (the
cgroup v1/v2 hybrid). Storage is private to the caller (its own --root and --runroot, the vfs driver), so tests
never touch, nor wait for, the machine's containers and images.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

_RUNC_WRAPPER = """#!/usr/bin/python3
# runc without the rlimits podman puts in the spec (see tests/support/podman_runtime.py).
import json, os, sys
args = sys.argv[1:]
for flag in ("--bundle", "-b"):
    if flag in args[:-1]:
        path = os.path.join(args[args.index(flag) + 1], "config.json")
        with open(path) as f:
            spec = json.load(f)
        spec.get("process", {}).pop("rlimits", None)
        with open(path, "w") as f:
            json.dump(spec, f)
os.execv("/usr/sbin/runc", ["runc", *args])
"""

# Kubernetes' "restricted" Pod Security as podman flags (where-builds-run.md's table).
RESTRICTED = ("--user", "1000:1000", "--cap-drop=all", "--security-opt", "no-new-privileges")


def available() -> str | None:
    """Why podman cannot be used here, or None."""
    for tool in ("podman", "/usr/sbin/runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install podman runc)"
    return None


class Podman:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        wrapper = self.directory / "runc-wrapper"
        wrapper.write_text(_RUNC_WRAPPER)
        wrapper.chmod(0o755)
        self.base = ["podman", "--root", str(self.directory / "root"), "--runroot", str(self.directory / "run"),
                     "--storage-driver", "vfs", "--runtime", str(wrapper), "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]

    def __call__(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout)

    def load_oci(self, layout: Path, tag: str, name: str) -> str:
        """Copies image `tag` of an OCI layout into the storage as `name`; returns `name`."""
        done = self(
            "pull", "-q", f"oci:{layout}:{tag}")
        assert done.returncode == 0, done.stderr
        tagged = self("tag", done.stdout.strip(), name)
        assert tagged.returncode == 0, tagged.stderr
        return name

    def run(self, image: str, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """`podman run --rm --network host` (the registries of tests are on loopback)."""
        return self("run", "--rm", "--network", "host", *options, image, *args)
