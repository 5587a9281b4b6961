"""RUN --mount of every type, RUN --network and heredoc scripts, built from real Dockerfiles with the real
command line; the images are read back from their OCI layout, layer by layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context

SECRET_FILE_VALUE = "file-s3cr3t-7f3a9c"
SECRET_ENV_VALUE = "env-s3cr3t-41d2e8"


class Built:
    """An image written as an OCI layout: its config and each layer's members and bytes."""

    def __init__(self, oci: Path):
        blobs = oci / "blobs" / "sha256"
        index = json.loads((oci / "index.json").read_text())
        manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
        self.config_bytes = (blobs / manifest["config"]["digest"].split(":")[1]).read_bytes()
        self.config = json.loads(self.config_bytes)
        self.layers = [gzip.decompress((blobs / layer["digest"].split(":")[1]).read_bytes())
                       for layer in manifest["layers"]]
        self.files: dict[str, bytes | None] = {}  # flattened: the last layer's version of each path
        self.layer_paths: list[set[str]] = []
        for raw in self.layers:
            paths = set()
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                for member in tar:
                    name = "/" + member.name.lstrip("./").rstrip("/")
                    paths.add(name)
                    self.files[name] = tar.extractfile(member).read() if member.isfile() else None
            self.layer_paths.append(paths)

    def text(self, path: str) -> str:
        data = self.files[path]
        assert data is not None, path
        return data.decode()

    def added_under(self, *roots: str) -> set[str]:
        """Paths at or below `roots` in the layers built on top of the base image's (one) layer."""
        added = set().union(*self.layer_paths[1:])
        return {p for p in added for r in roots if p == r or p.startswith(r + "/")}


def _sha256(text: str) -> str:
    # The steps compare hashes: the values themselves must not be written in the Dockerfile (its RUN lines
    # are in the image history).
    return hashlib.sha256(text.encode()).hexdigest()


def _build(tmp_path: Path, dockerfile: str, *args: str, files: dict | None = None, env: dict | None = None,
           name: str = "ctx"):
    context = write_context(tmp_path / name, {"Dockerfile": dockerfile, **(files or {})})
    oci = tmp_path / f"{name}-oci"
    shutil.rmtree(oci, ignore_errors=True)
    cache_env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), **(env or {})}
    result = dockyard("build", "--progress=plain", "--metadata-file", str(tmp_path / f"{name}.json"),
                      "--output", f"type=oci,dest={oci}", *args, str(context), env=cache_env)
    return result, oci


def _built(result, oci: Path) -> Built:
    assert result.returncode == 0, result.stderr
    return Built(oci)


def test_secrets_reach_the_step_and_nowhere_else(busybox_base, tmp_path):
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET_FILE_VALUE)
    dockerfile = f"""FROM {busybox_base}
RUN --mount=type=secret,id=token test "$(sha256sum < /run/secrets/token)" = "{_sha256(SECRET_FILE_VALUE)}  -" \\
    && stat -c '%a %u:%g' /run/secrets/token > /default-mode
RUN --mount=type=secret,id=token,target=/etc/app/token,mode=0440,uid=1000,gid=1000 \\
    stat -c '%a %u:%g' /etc/app/token > /custom-mode && cat /etc/app/token | wc -c > /size
RUN --mount=type=secret,id=api,env=API_KEY \\
    test "$(printf %s "$API_KEY" | sha256sum)" = "{_sha256(SECRET_ENV_VALUE)}  -" \\
    && (test -e /run/secrets/api && echo file || echo no-file) > /env-only
RUN --mount=type=secret,id=absent (test -e /run/secrets/absent && echo there || echo skipped) > /optional
RUN (test -e /run/secrets/token && echo left || echo gone) > /after
"""
    result, oci = _build(tmp_path, dockerfile, "--secret", f"id=token,src={secret_file}",
                         "--secret", "id=api,env=API_SOURCE", env={"API_SOURCE": SECRET_ENV_VALUE})
    image = _built(result, oci)
    assert image.text("/default-mode") == "400 0:0\n"
    assert image.text("/custom-mode") == "440 1000:1000\n"
    assert image.text("/size").strip() == str(len(SECRET_FILE_VALUE))
    assert image.text("/env-only") == "no-file\n"
    assert image.text("/optional") == "skipped\n"
    assert image.text("/after") == "gone\n"
    # No mount point stub (/run/secrets/..., /etc/app/token) in any layer the build made.
    assert not image.added_under("/run", "/etc/app")
    metadata = (tmp_path / "ctx.json").read_bytes()
    for value in (SECRET_FILE_VALUE, SECRET_ENV_VALUE):
        for where, data in (("config", image.config_bytes), ("stdout", result.stdout.encode()),
                            ("stderr", result.stderr.encode()), ("metadata", metadata), *(
                                (f"layer {i}", layer) for i, layer in enumerate(image.layers))):
            assert value.encode() not in data, f"secret value found in {where}"


def test_missing_required_secret_fails_without_leaking(busybox_base, tmp_path):
    dockerfile = f"FROM {busybox_base}\nRUN --mount=type=secret,id=token,required=true cat /run/secrets/token\n"
    result, _ = _build(tmp_path, dockerfile)
    assert result.returncode == 5, result.stderr
    assert "Dockerfile:2: secret token not found" in result.stderr
    assert "--secret id=token" in result.stderr and "Traceback" not in result.stderr


def test_cache_persists_between_builds_and_stays_out_of_layers(busybox_base, tmp_path):
    first = f"""FROM {busybox_base}
RUN --mount=type=cache,target=/var/cache/thing echo first-build > /var/cache/thing/f \\
    && stat -c '%a %u:%g' /var/cache/thing > /mode
RUN --mount=type=cache,target=/c2,uid=1000,gid=1000,mode=0700,id=other stat -c '%a %u:%g' /c2 > /c2mode
"""
    image = _built(*_build(tmp_path, first, name="one"))
    assert image.text("/mode") == "755 0:0\n"
    assert image.text("/c2mode") == "700 1000:1000\n"
    assert not image.added_under("/var", "/c2")
    second = f"""FROM {busybox_base}
RUN --mount=type=cache,target=/var/cache/thing cat /var/cache/thing/f > /seen
RUN --mount=type=cache,target=/elsewhere,id=/var/cache/thing,sharing=locked cat /elsewhere/f > /by-id
RUN --mount=type=cache,target=/var/cache/thing,ro (touch /var/cache/thing/x 2>/dev/null && echo rw || echo ro) > /ro
"""
    image = _built(*_build(tmp_path, second, name="two"))
    assert image.text("/seen") == "first-build\n"
    assert image.text("/by-id") == "first-build\n"
    assert image.text("/ro") == "ro\n"


def test_bind_mounts_from_context_and_stage_discard_writes(busybox_base, tmp_path):
    dockerfile = f"""FROM {busybox_base} AS src
RUN mkdir /data && echo from-stage > /data/f && ln -s /etc/passwd /data/link

FROM {busybox_base}
RUN --mount=type=bind,source=ctx.txt,target=/in/ctx.txt cat /in/ctx.txt > /out-ctx
RUN --mount=type=bind,from=src,source=/data,target=/d cat /d/f > /out-stage \\
    && (touch /d/x 2>/dev/null && echo writable || echo read-only) > /out-ro
RUN --mount=type=bind,from=src,source=/data,target=/d,rw echo changed > /d/f && cat /d/f > /out-rw
RUN --mount=type=bind,from=src,source=/data,target=/d cat /d/f > /out-after
RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/ctx.txt && rm /ctx/Dockerfile
"""
    result, oci = _build(tmp_path, dockerfile, files={"ctx.txt": "from-context\n"})
    image = _built(result, oci)
    assert image.text("/out-ctx") == "from-context\n"
    assert image.text("/out-stage") == "from-stage\n"
    assert image.text("/out-ro") == "read-only\n"
    assert image.text("/out-rw") == "changed\n"
    assert image.text("/out-after") == "from-stage\n"
    assert (tmp_path / "ctx" / "ctx.txt").read_text() == "from-context\n"  # the context is untouched
    assert (tmp_path / "ctx" / "Dockerfile").exists()
    assert not image.added_under("/in", "/d", "/ctx")


def test_bind_mount_of_the_context_honours_dockerignore(busybox_base, tmp_path):
    dockerfile = f"""FROM {busybox_base}
RUN --mount=type=bind,target=/ctx ls -a /ctx /ctx/docs > /listing
RUN --mount=type=bind,target=/ctx,rw rm /ctx/kept.txt && echo rw-ok > /rw
"""
    files = {".dockerignore": "secret.env\ndocs\n!docs/keep.md\n", "kept.txt": "kept\n",
             "secret.env": "TOKEN=x\n", "docs/keep.md": "keep\n", "docs/drop.md": "drop\n"}
    result, oci = _build(tmp_path, dockerfile, files=files)
    image = _built(result, oci)
    listing = image.text("/listing").split()
    assert "kept.txt" in listing and "keep.md" in listing
    assert "secret.env" not in listing and "drop.md" not in listing
    assert image.text("/rw") == "rw-ok\n"
    assert (tmp_path / "ctx" / "kept.txt").read_text() == "kept\n"  # the hard-linked view left it alone

    ignored = f"FROM {busybox_base}\nRUN --mount=type=bind,source=secret.env,target=/s cat /s\n"
    result, _ = _build(tmp_path, ignored, files=files, name="ignored")
    assert result.returncode == 4 and "excluded by .dockerignore" in result.stderr, result.stderr


def test_bind_source_cannot_escape_the_context(busybox_base, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("host file\n")
    dockerfile = f"FROM {busybox_base}\nRUN --mount=type=bind,source=escape/outside.txt,target=/x cat /x\n"
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    os.symlink("/" + "../" * 10 + str(tmp_path), context / "escape")
    result = dockyard("build", "--progress=plain", str(context), env={"XDG_CACHE_HOME": str(tmp_path / "c")})
    # The symlink resolves inside the context, where there is no such file.
    assert result.returncode == 4, result.stderr
    assert "not found in the build context" in result.stderr


def test_tmpfs_network_none_and_heredoc_script(busybox_base, tmp_path):
    dockerfile = f"""FROM {busybox_base}
RUN --mount=type=tmpfs,target=/scratch,size=1m echo x > /scratch/f \\
    && grep ' /scratch ' /proc/mounts > /tmpfs-line
RUN --network=none cat /proc/net/dev > /netdev && ip link show lo > /lo
RUN --network=host --security=sandbox true
RUN <<EOF
#!/bin/sh
echo "from a script: $0" > /heredoc
EOF
"""
    image = _built(*_build(tmp_path, dockerfile))
    line = image.text("/tmpfs-line").split()
    assert line[2] == "tmpfs" and "size=1024k" in line[3]
    interfaces = [row.split(":")[0].strip() for row in image.text("/netdev").splitlines()[2:]]
    assert interfaces == ["lo"]
    assert "UP" in image.text("/lo").split("<")[1].split(">")[0].split(",")
    assert image.text("/heredoc") == "from a script: /dev/pipes/EOF\n"
    assert not image.added_under("/scratch", "/dev")


def test_mount_point_hidden_by_an_opaque_directory_stays_out_of_the_layer(busybox_base, tmp_path):
    dockerfile = f"""FROM {busybox_base}
RUN mkdir -p /x/old && echo a > /x/old/f
RUN rm -rf /x && mkdir /x && echo b > /x/kept
RUN --mount=type=tmpfs,target=/x/t/deep echo y > /x/t/deep/f && ls /x > /listing
"""
    image = _built(*_build(tmp_path, dockerfile))
    assert image.text("/listing") == "kept\nt\n"
    assert not any(p.startswith("/x/t") for p in image.layer_paths[-1])


@pytest.fixture
def ssh_agent(tmp_path):
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        key = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockyard-test", "-f", str(key)],
                       check=True)
        for _ in range(50):
            if socket_path.exists():
                break
            subprocess.run(["sleep", "0.1"])
        env = {"SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run(["ssh-add", "-q", str(key)], check=True, env=env, capture_output=True)
        yield socket_path
    finally:
        agent.terminate()
        agent.wait()


def _ssh_add_files() -> dict[str, bytes]:
    """ssh-add and the libraries it loads, to run it inside the busybox image (which has no ssh client)."""
    out = subprocess.run(["ldd", "/usr/bin/ssh-add"], check=True, capture_output=True, text=True).stdout
    paths = ["/usr/bin/ssh-add"] + [w for line in out.splitlines() for w in line.split() if w.startswith("/")]
    return {"rootfs" + p: Path(p).read_bytes() for p in paths}


def test_ssh_mount_forwards_the_agent(busybox_base, tmp_path, ssh_agent):
    listed = subprocess.run(["ssh-add", "-l"], env={"SSH_AUTH_SOCK": str(ssh_agent)}, capture_output=True,
                            text=True, check=True).stdout
    dockerfile = f"""FROM {busybox_base}
COPY --chmod=755 rootfs/ /
RUN --mount=type=ssh ssh-add -l > /keys && echo "$SSH_AUTH_SOCK" > /sock \\
    && stat -c '%a %u:%g %F' "$SSH_AUTH_SOCK" > /sockmode
RUN --mount=type=ssh,target=/agent,uid=1000,mode=0660 stat -c '%a %u:%g' /agent > /custom
RUN --mount=type=ssh,id=other (test -n "$SSH_AUTH_SOCK" && echo set || echo unset) > /optional
"""
    result, oci = _build(tmp_path, dockerfile, "--ssh", f"default={ssh_agent}", files=_ssh_add_files())
    image = _built(result, oci)
    assert image.text("/keys") == listed  # the real agent answered, through the relay
    assert "dockyard-test" in image.text("/keys")
    assert image.text("/sock") == "/run/buildkit/ssh_agent.0\n"
    assert image.text("/sockmode") == "600 0:0 socket\n"
    assert image.text("/custom") == "660 1000:0\n"
    assert image.text("/optional") == "unset\n"
    assert not image.added_under("/run", "/agent")
    assert oct(ssh_agent.stat().st_mode & 0o777) == "0o600"  # the user's agent socket is untouched


@pytest.mark.parametrize("line, code, message", [
    ("RUN --mount=type=volume,target=/x true", 3, "unsupported mount type 'volume'"),
    ("RUN --mount=type=bind,target=/x,size=1m true", 3, "unexpected key 'size' for mount type 'bind'"),
    ("RUN --security=insecure true", 3, "security.insecure entitlement"),
    ("RUN --network=bridge true", 3, "invalid RUN --network=bridge"),
    ("RUN --mount=type=bind,source=nope,target=/x true", 4, "RUN --mount source 'nope' not found"),
])
def test_mount_errors_name_the_line(busybox_base, tmp_path, line, code, message):
    result, _ = _build(tmp_path, f"FROM {busybox_base}\n{line}\n")
    assert result.returncode == code, result.stderr
    assert "Dockerfile:2:" in result.stderr and message in result.stderr
    assert "hint:" in result.stderr or code == 4 or "Traceback" not in result.stderr


def test_secret_and_ssh_usage_errors(tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    missing = tmp_path / "missing.txt"
    for args, text in ((["--secret", f"id=x,src={missing}"], f"cannot read {missing}"),
                       (["--secret", "src=/etc/hostname"], "it needs id=ID"),
                       (["--secret", "id=x,env=DOCKYARD_UNSET_VAR"], "DOCKYARD_UNSET_VAR is not set"),
                       (["--ssh", "default=/etc/hostname"], "is not an ssh-agent socket")):
        result = dockyard("build", *args, str(context))
        assert result.returncode == 2, (args, result.stderr)
        assert text in result.stderr
