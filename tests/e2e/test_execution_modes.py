"""The same Dockerfile built in the three environments dockyard runs in gives the same image:

(a) root with CAP_SYS_ADMIN (namespaces + overlayfs), (b) root without CAP_SYS_ADMIN and without user
namespaces (a container's default profile: proot, directory roots, scan snapshots), (c) an unprivileged uid
(proot, ownership kept in the scan index), and a non-root user with subordinate ids (/etc/subuid), whose
build re-enters itself as root of a user namespace and runs as (a) does. Images are compared by their
flattened filesystems (our own reading of the OCI layout's layer tars, whiteouts applied) and their configs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.helpers import write_context
from tests.support.users import open_directory, owned_directory, user_with_subordinate_ids
from tests.support.userns import run_as_namespace_root

DOCKERFILE = """\
FROM {base}
COPY --chown=1000:2000 app.txt /srv/app.txt
COPY tool /usr/local/bin/tool
RUN mkdir -p /data/sub /gone /swap && echo hi > /data/sub/f && echo bye > /gone/x && echo d > /swap/inner \\
 && chown -R 33:44 /data && chmod 4755 /usr/local/bin/tool && chmod 2750 /data/sub \\
 && ln -s /data/sub/f /data/link && ln /data/sub/f /data/hard
RUN rm -rf /gone /bin/true && rm -rf /swap && echo now-a-file > /swap && chown 7:8 /swap \\
 && touch /moved.tmp && chown 3:4 /moved.tmp && mv /moved.tmp /moved && chown -h 5:6 /data/link \\
 && chown 2:2 /bin/busybox && mkdir -p /rel/sub && cd /rel && touch sub/x && chown -R 9:9 sub && chown 11 sub/x
"""

# Device nodes: root without CAP_SYS_ADMIN in tests/support/userns.py's user namespace cannot make them (no
# CAP_MKNOD there), so they are compared between (a) and the unprivileged user only.
DEVICES_DOCKERFILE = """\
FROM {base}
RUN mkdir /srv && mknod /srv/null c 1 3 && mknod /srv/disk b 7 0 && mknod /srv/pipe p && chmod 640 /srv/null \\
 && chown 0:6 /srv/disk && touch /srv/nobodys && chown nobody /srv/nobodys
"""


def _dockyard_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", *args]


def _run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "CI": "true",
                                                                                 **(env or {})})


def _flatten(layout: Path) -> tuple[dict, dict]:
    """(path -> metadata) of the image in an OCI layout, and its config without layer digests and times."""
    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    files: dict[str, tuple] = {}
    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        if layer["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        import io

        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                name = m.name.strip("/").removeprefix("./")
                parent, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    for key in [k for k in files if k.startswith(parent + "/")]:
                        del files[key]
                    continue
                if base.startswith(".wh."):
                    gone = f"{parent}/{base[4:]}".strip("/")
                    for key in [k for k in files if k == gone or k.startswith(gone + "/")]:
                        del files[key]
                    continue
                if not m.isdir():
                    for key in [k for k in files if k.startswith(name + "/")]:
                        del files[key]
                content = hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isreg() else None
                kind = "hardlink" if m.islnk() else m.type
                files[name] = (kind, oct(m.mode), m.uid, m.gid, content,
                               m.linkname if (m.issym() or m.islnk()) else None, m.devmajor, m.devminor)
    config.pop("created", None)
    config["rootfs"] = len(config["rootfs"]["diff_ids"])
    config["history"] = [h.get("created_by") for h in config["history"]]
    return files, config


@pytest.fixture(scope="module")
def context(busybox_base) -> Iterator[Path]:
    with open_directory("dockyard-modes-") as root:
        ctx = write_context(root / "ctx", {"Dockerfile": DOCKERFILE.format(base=busybox_base),
                                           "app.txt": "app\n", "tool": "#!/bin/sh\necho tool\n"})
        os.chmod(ctx / "tool", 0o755)
        yield ctx


def _build(ctx: Path, out: Path, wrap=lambda cmd: cmd, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = _dockyard_cmd("build", "--progress=plain", "--no-cache", "--output", f"type=oci,dest={out}", str(ctx))
    return _run(wrap(cmd), env)


def test_root_with_and_without_cap_sys_admin_give_the_same_image(context, tmp_path):
    privileged = _build(context, tmp_path / "a")
    assert privileged.returncode == 0, privileged.stderr
    assert "isolation: namespaces" in privileged.stderr

    inner = " ".join(shlex.quote(a) for a in _dockyard_cmd("build", "--progress=plain", "--no-cache", "--output",
                                                            f"type=oci,dest={tmp_path / 'b'}", str(context)))
    # The reference's recipe, as a container's root that owns ids 0..65535 (tests/support/userns.py):
    # max_user_namespaces=0 holds inside that user namespace only, so the host is untouched.
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && capsh --drop=cap_sys_admin -- -c "
              + shlex.quote(f"unshare -m true 2>/dev/null && echo UNSHARE-WORKED; {inner}"))
    confined = run_as_namespace_root(["sh", "-c", script], env={**os.environ, "CI": "true"})
    assert confined.returncode == 0, confined.stderr
    assert "UNSHARE-WORKED" not in confined.stdout
    assert "isolation: proot (no mount namespace allowed" in confined.stderr
    assert "snapshot: scanned" in confined.stderr

    files_a, config_a = _flatten(tmp_path / "a")
    files_b, config_b = _flatten(tmp_path / "b")
    assert files_a["srv/app.txt"][2:4] == (1000, 2000)
    assert files_a["data/sub/f"][2:4] == (33, 44) and files_a["data/sub"][1] == oct(0o2750)
    assert files_a["usr/local/bin/tool"][1] == oct(0o4755)
    assert files_a["swap"][0] == tarfile.REGTYPE and "gone/x" not in files_a and "bin/true" not in files_a
    assert {k: v for k, v in files_b.items() if not k.startswith(("proc", "sys", "dev"))} == \
        {k: v for k, v in files_a.items() if not k.startswith(("proc", "sys", "dev"))}
    assert config_b == config_a


def _unprivileged_build(ctx: Path, uid: int) -> tuple[subprocess.CompletedProcess, tuple[dict, dict] | None]:
    probe = _run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c",
                  "import dockyard.cli"])
    if probe.returncode != 0:
        pytest.skip(f"uid {uid} cannot load dockyard: {probe.stderr.strip()[-200:]}")
    with open_directory("dockyard-user-") as shared:
        home = owned_directory(shared, "home", uid, uid)
        out = owned_directory(shared, "out", uid, uid)
        user = _build(ctx, out / "c", lambda cmd: ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                                     "--clear-groups", *cmd],
                      env={"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
                           "DOCKYARD_WORK_DIR": str(home)})
        return user, (_flatten(out / "c") if user.returncode == 0 else None)


def _image_files(files: dict) -> dict:
    return {k: v for k, v in files.items() if not k.startswith(("proc", "sys", "dev"))}


def test_an_unprivileged_user_gets_the_same_image_run_chown_included(context, tmp_path):
    privileged = _build(context, tmp_path / "a")
    assert privileged.returncode == 0, privileged.stderr
    user, image = _unprivileged_build(context, 65534)
    assert user.returncode == 0, user.stderr
    assert "isolation: proot (not root" in user.stderr
    files_c, config_c = image
    files_a, config_a = _flatten(tmp_path / "a")
    assert files_a["moved"][2:4] == (3, 4) and files_a["data/link"][2:4] == (5, 6)
    assert files_a["bin/busybox"][2:4] == (2, 2) and files_a["rel/sub/x"][2:4] == (11, 9)
    assert config_c == config_a
    assert _image_files(files_c) == _image_files(files_a)


def test_an_unprivileged_user_gets_the_same_device_nodes_and_owners(busybox_base, tmp_path):
    with open_directory("dockyard-devices-") as root:
        ctx = write_context(root / "ctx", {"Dockerfile": DEVICES_DOCKERFILE.format(base=busybox_base)})
        privileged = _build(ctx, tmp_path / "a")
        assert privileged.returncode == 0, privileged.stderr
        user, image = _unprivileged_build(ctx, 65534)
    assert user.returncode == 0, user.stderr
    files_a, _ = _flatten(tmp_path / "a")
    assert files_a["srv/null"][:4] == (tarfile.CHRTYPE, oct(0o640), 0, 0) and files_a["srv/null"][6:] == (1, 3)
    assert files_a["srv/disk"][0] == tarfile.BLKTYPE and files_a["srv/disk"][3] == 6
    assert files_a["srv/pipe"][0] == tarfile.FIFOTYPE
    # chown to nobody (65534) by a builder that is itself nobody: told from chown to root, which proot hands
    # on in the same way (proot_supervisor.py).
    assert files_a["srv/nobodys"][2] == 65534
    assert _image_files(image[0]) == _image_files(files_a)


def _as_user(uid: int, gid: int):
    return lambda cmd: ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]


def _build_as(context: Path, uid: int, gid: int):
    """(build result, image, `cache prune --all` result and what it left in the user's cache)."""
    with open_directory("dockyard-user-") as shared:
        home = owned_directory(shared, "home", uid, gid)
        out = owned_directory(shared, "out", uid, gid)
        env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "DOCKYARD_WORK_DIR": str(home)}
        result = _build(context, out / "image", _as_user(uid, gid), env=env)
        image = _flatten(out / "image") if result.returncode == 0 else None
        prune = _run(_as_user(uid, gid)(_dockyard_cmd("cache", "prune", "--all")), env)
        left = sorted(str(p.relative_to(home / "cache")) for p in (home / "cache").rglob("*") if p.is_file())
        return result, image, prune, left


def test_a_user_with_subordinate_ids_builds_in_a_user_namespace_with_real_chown(context, tmp_path):
    privileged = _build(context, tmp_path / "a")
    assert privileged.returncode == 0, privileged.stderr
    with user_with_subordinate_ids() as (uid, gid):
        # The interpreter must be reachable by the user inside a user namespace (Debian's is; one under
        # root's 0700 home is not, and the builder re-executes it there).
        probe = _run(_as_user(uid, gid)(["unshare", "--user", "--map-root-user", sys.executable, "-c",
                                         "import dockyard.cli"]))
        if probe.returncode != 0:
            pytest.skip(f"{sys.executable} cannot be run in a user namespace by a plain user: "
                        f"{probe.stderr.strip()[-200:]}")
        result, image, prune, left = _build_as(context, uid, gid)
    assert result.returncode == 0, result.stderr
    # The build's cache holds files of the user's subordinate ids; prune removes them from the same namespace.
    assert prune.returncode == 0, prune.stderr
    assert not [name for name in left if "/blobs/" in name or name.startswith("dockyard/layers/")], left
    assert "isolation: namespaces (root of a user namespace" in result.stderr
    assert "snapshot: scanned" not in result.stderr  # overlay snapshots, not the scanning modes'
    files, config = image
    files_a, config_a = _flatten(tmp_path / "a")
    assert files["data/sub/f"][2:4] == (33, 44) and files["swap"][2:4] == (7, 8)
    assert config == config_a
    assert {k: v for k, v in files.items() if not k.startswith(("proc", "sys", "dev"))} == \
        {k: v for k, v in files_a.items() if not k.startswith(("proc", "sys", "dev"))}
