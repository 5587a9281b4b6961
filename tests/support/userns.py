"""Run a command as the root of a new user namespace that maps host ids 0..65535 onto themselves.

A container's root owns every id it uses, so `chown 33:44` works there; `unshare -U -r` maps root alone (any
other chown then fails with EINVAL) and `unshare --map-users` goes through newuidmap, which refuses root a
range that /etc/subuid does not list. The kernel lets a process with CAP_SETUID in the parent namespace write
any map for a child namespace, so the real root writes /proc/PID/uid_map itself while the child waits.
"""

from __future__ import annotations

import os
import subprocess
import time

ID_COUNT = 65536


def run_as_namespace_root(argv: list[str], *, timeout: float = 300, env: dict | None = None
                          ) -> subprocess.CompletedProcess:
    """`argv` run in a new user + mount namespace, as its root with ids 0..65535 mapped; output captured."""
    # unshare(1) execs sh in place, so the pid is the namespaced process; sh waits for a line on stdin
    # (sent once the maps are written) before running argv with no further input.
    process = subprocess.Popen(["unshare", "--user", "--mount", "--", "sh", "-c", 'read _ && exec "$@" </dev/null',
                                "sh", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    own = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + 10
    try:
        while os.readlink(f"/proc/{process.pid}/ns/user") == own:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("unshare --user did not create a user namespace")
            time.sleep(0.01)
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{process.pid}/{name}", "w") as f:
                f.write(f"0 0 {ID_COUNT}")
        stdout, stderr = process.communicate("go\n", timeout=timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
