"""Named build contexts (`--build-context NAME=VALUE`) end to end through the CLI: each source kind (a
directory, docker-image://, oci-layout://, a git URL, an http URL) read by FROM, COPY --from and RUN
--mount=from=, BuildKit's precedence (a context replaces a stage or image of its name), the cache keys, and the
errors. Registries, git and http servers are on loopback only; git is served over its "dumb" HTTP protocol
by python's http.server, so the real `git` CLI clones it as it would a remote repository.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support import oracle, tree

PAYLOAD = b"served bytes\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _git(*args: str, cwd: Path) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A file and a bare git repository (tag v1 with docs/guide.md = "v1 guide", main with "main guide")
    served on 127.0.0.1; yields the base URL."""
    root = tmp_path_factory.mktemp("served")
    (root / "tool.bin").write_bytes(PAYLOAD)
    work = tmp_path_factory.mktemp("git-work")
    _git("init", "-q", "-b", "main", ".", cwd=work)
    (work / "docs").mkdir()
    (work / "docs" / "guide.md").write_text("v1 guide\n")
    (work / "README").write_text("readme\n")
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("tag", "v1", cwd=work)
    (work / "docs" / "guide.md").write_text("main guide\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    _git("clone", "-q", "--bare", str(work), str(root / "repo.git"), cwd=work)
    _git("update-server-info", cwd=root / "repo.git")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _digest_of(ref: str) -> str:
    return oracle.inspect_summary(ref)["Digest"]


def _build(tmp_path: Path, dockerfile: str, *contexts: str, extra: tuple[str, ...] = (),
           files: dict | None = None) -> tuple[object, dict, Path]:
    """Builds `dockerfile` with the `--build-context` values; returns (CLI result, flattened tree or {}, layout)."""
    context = write_context(tmp_path / "main", {"Dockerfile": dockerfile, **(files or {})})
    oci = tmp_path / "oci"
    args = ["build", "--progress=plain", "-t", "contexts/test:latest", "--output", f"type=oci,dest={oci}"]
    for value in contexts:
        args += ["--build-context", value]
    result = dockyard(*args, *extra, str(context), cwd=tmp_path)
    if result.returncode != 0:
        return result, {}, oci
    return result, tree.flatten(oracle.unpack(oci, tmp_path / "bundle")), oci


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shared_dir(root: Path) -> Path:
    """A directory context owned by a host user, with a .dockerignore of its own."""
    write_context(root, {"lib.txt": "library\n", "sub/x.txt": "x\n", "secret.txt": "not for images\n",
                         ".dockerignore": "secret.txt\n"})
    for path in [root, *root.rglob("*")]:
        os.lchown(path, 4321, 4321)
    return root


def _config(oci: Path) -> dict:
    index = json.loads((oci / "index.json").read_text())
    manifest = json.loads((oci / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    return json.loads((oci / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())


def test_local_directory_context_in_copy_mount_and_from(busybox_base, tmp_path):
    shared = _shared_dir(tmp_path / "shared")
    dockerfile = (f"FROM shared AS files\n"
                  f"FROM {busybox_base}\n"
                  "COPY --from=shared . /all/\n"
                  "COPY --from=files /sub /fromstage/\n"
                  "RUN --mount=from=shared,target=/mnt cat /mnt/lib.txt > /mounted\n")
    # A relative directory is relative to the working directory, as with buildx.
    result, files, _ = _build(tmp_path, dockerfile, "shared=shared")
    assert result.returncode == 0, result.stderr
    assert files["/all/lib.txt"].sha256 == _sha(b"library\n")
    assert (files["/all/lib.txt"].uid, files["/all/lib.txt"].gid) == (0, 0)  # BuildKit's local source: 0:0
    assert files["/all/sub/x.txt"].uid == 0
    assert "/all/secret.txt" not in files  # the context's own .dockerignore applies
    assert files["/fromstage/x.txt"].sha256 == _sha(b"x\n")
    assert files["/mounted"].sha256 == _sha(b"library\n")
    assert (shared / "lib.txt").stat().st_uid == 4321  # the host's files are left as they were

    # FROM a directory: a scratch-like image whose one layer is the directory (no config from anywhere).
    result, files, oci = _build(tmp_path / "target", dockerfile, f"shared={shared}", extra=("--target", "files"))
    assert result.returncode == 0, result.stderr
    assert files["/lib.txt"].sha256 == _sha(b"library\n") and files["/lib.txt"].uid == 0
    assert "/secret.txt" not in files
    config = _config(oci)
    assert len(config["rootfs"]["diff_ids"]) == 1
    assert "Cmd" not in config["config"] and config["architecture"] == "amd64"


def test_listing_of_mounted_directory_context_leaves_ignored_files_out(busybox_base, tmp_path):
    _shared_dir(tmp_path / "shared")
    result, files, oci = _build(tmp_path, f"FROM {busybox_base}\n"
                                          "RUN --mount=from=shared,target=/mnt ls -a /mnt > /listing\n",
                                "shared=shared")
    assert result.returncode == 0, result.stderr
    listing = (tmp_path / "bundle" / "rootfs" / "listing").read_text().split()
    assert sorted(listing) == [".", "..", ".dockerignore", "lib.txt", "sub"]


def test_docker_image_context_overrides_from_by_name_and_tag(busybox_base, registry, tmp_path):
    digest = _digest_of(busybox_base)
    repository = busybox_base.rsplit(":", 1)[0]
    pinned = f"{repository}@{digest}"
    dockerfile = ("FROM alpine AS one\nRUN echo one > /one\n"
                  "FROM docker.io/library/debian:12\n"
                  "COPY --from=one /one /one\n"
                  "COPY --from=alpine /etc/passwd /copied-passwd\n"
                  "RUN --mount=from=debian:12,target=/m cp /m/etc/group /mounted-group && echo two > /two\n")
    result, files, oci = _build(tmp_path, dockerfile, f"alpine=docker-image://{pinned}",
                                f"debian:12=docker-image://{busybox_base}")
    assert result.returncode == 0, result.stderr
    assert files["/one"].sha256 == _sha(b"one\n") and files["/two"].sha256 == _sha(b"two\n")
    assert "/bin/busybox" in files
    assert files["/copied-passwd"].sha256 == files["/etc/passwd"].sha256  # COPY --from an image context
    assert files["/mounted-group"].sha256 == files["/etc/group"].sha256  # RUN --mount=from= one
    config = _config(oci)
    assert config["config"]["Cmd"] == ["sh"]  # the context image's config is the stage's base


def test_context_replaces_a_stage_of_its_name(busybox_base, tmp_path):
    """BuildKit: a context named as a stage replaces the whole stage (its instructions never run); FROM and
    COPY --from of that stage get the context."""
    dockerfile = ("FROM scratch AS build\nRUN exit 1\n"
                  f"FROM {busybox_base}\nCOPY --from=build /tool.bin /tool\n")
    served = tmp_path / "prebuilt"
    write_context(served, {"tool.bin": "prebuilt\n"})
    result, files, _ = _build(tmp_path, dockerfile, f"build={served}")
    assert result.returncode == 0, result.stderr
    assert files["/tool"].sha256 == _sha(b"prebuilt\n")
    assert "RUN exit 1" not in result.stderr


def test_oci_layout_context_by_tag_and_digest(busybox_base, tmp_path):
    layout = tmp_path / "layout"
    oracle.run_tool(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{busybox_base}",
                     f"oci:{layout}:v1"], 120)
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    dockerfile = "FROM base\nRUN echo built > /built\n"
    for name, value in (("tag", f"base=oci-layout://{layout}:v1"), ("digest", f"base=oci-layout://{layout}@{digest}")):
        result, files, _ = _build(tmp_path / name, dockerfile, value)
        assert result.returncode == 0, result.stderr
        assert files["/built"].sha256 == _sha(b"built\n") and "/bin/busybox" in files

    result, _, _ = _build(tmp_path / "missing-tag", dockerfile, f"base=oci-layout://{layout}:nope")
    assert result.returncode == 4, result.stderr
    assert "no image tagged 'nope'" in result.stderr and "v1" in result.stderr and "Traceback" not in result.stderr


def test_git_and_http_contexts(server, busybox_base, tmp_path):
    dockerfile = (f"FROM {busybox_base}\n"
                  "COPY --from=docs guide.md /v1-guide\n"
                  "COPY --from=head docs/guide.md /main-guide\n"
                  "COPY --from=dl context /downloaded\n")
    result, files, _ = _build(tmp_path, dockerfile, f"docs={server}/repo.git#v1:docs", f"head={server}/repo.git",
                              f"dl={server}/tool.bin")
    assert result.returncode == 0, result.stderr
    assert files["/v1-guide"].sha256 == _sha(b"v1 guide\n") and files["/v1-guide"].uid == 0
    assert files["/main-guide"].sha256 == _sha(b"main guide\n")
    assert files["/downloaded"].sha256 == _sha(PAYLOAD)  # BuildKit: an http context is the file `context`
    assert files["/downloaded"].mode == 0o600


def test_cache_keys_follow_the_context_content(busybox_base, tmp_path):
    shared = tmp_path / "shared"
    write_context(shared, {"lib.txt": "one\n"})
    context = write_context(tmp_path / "main", {"Dockerfile": f"FROM {busybox_base}\nCOPY --from=shared lib.txt /\n"
                                                              "RUN cat /lib.txt > /copy\n"
                                                              f"FROM {busybox_base}\n"
                                                              "RUN --mount=from=shared,target=/m cat /m/lib.txt > /c\n"
                                                              "COPY --from=0 /copy /copy\n"})

    def cached(n: int) -> list:
        meta = tmp_path / f"meta{n}.json"
        result = dockyard("build", "-q", "--cache-dir", str(tmp_path / "cache"), "--metadata-file", str(meta),
                          "--build-context", f"shared={shared}", str(context))
        assert result.returncode == 0, result.stderr
        return [s["cached"] for s in json.loads(meta.read_text())["steps"][1:]]

    assert cached(1) == [False, False, None, False, False]  # the second FROM is no cached step
    os.utime(shared / "lib.txt", (1, 1))
    assert cached(2) == [True, True, None, True, True]  # times are not content
    (shared / "lib.txt").write_text("two\n")
    assert cached(3) == [False, False, None, False, False]


def test_from_directory_context_is_keyed_by_content(busybox_base, tmp_path):
    shared = tmp_path / "shared"
    write_context(shared, {"lib.txt": "one\n"})
    context = write_context(tmp_path / "main", {"Dockerfile": f"FROM {busybox_base} AS tools\n"
                                                              "FROM shared\nCOPY --from=tools /bin/busybox /bb\n"})

    def cached(n: int) -> list:
        meta = tmp_path / f"meta{n}.json"
        result = dockyard("build", "-q", "--cache-dir", str(tmp_path / "cache"), "--metadata-file", str(meta),
                          "--build-context", f"shared={shared}", str(context))
        assert result.returncode == 0, result.stderr
        return [s["cached"] for s in json.loads(meta.read_text())["steps"] if s["cached"] is not None]

    assert cached(1) == [False]
    assert cached(2) == [True]
    (shared / "lib.txt").write_text("two\n")
    assert cached(3) == [False]


@pytest.mark.parametrize("value, code, words", [
    ("x=foo://bar", 2, ["source kind 'foo'", "docker-image://"]),
    ("x=target:other", 2, ["target"]),
    ("x=no-such-directory", 4, ["--build-context x", "no-such-directory", "does not exist"]),
    ("x=oci-layout://no-such-layout", 4, ["--build-context x", "no-such-layout"]),
    ("x=https://example.invalid/repo.git#ref=v1,depth=1", 2, ["--build-context", "depth"]),
    ("=dir", 2, ["NAME=VALUE"]),
    ("scratch=.", 2, ["scratch", "cannot be replaced"]),
    ("Bad Name=.", 2, ["Bad Name", "not a valid"]),
])
def test_bad_values_are_usage_errors(value, code, words, busybox_base, tmp_path):
    result, _, _ = _build(tmp_path, f"FROM {busybox_base}\n", value)
    assert result.returncode == code, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_layout_and_unreachable_git(busybox_base, tmp_path):
    layout = tmp_path / "broken-layout"
    layout.mkdir()
    (layout / "index.json").write_text("{not json")
    result, _, _ = _build(tmp_path / "a", "FROM base\n", f"base=oci-layout://{layout}")
    assert result.returncode == 4 and "--build-context base=oci-layout://" in result.stderr
    assert "index.json is not valid JSON" in result.stderr and "Dockerfile:1" in result.stderr

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result, _, _ = _build(tmp_path / "b", f"FROM {busybox_base}\nCOPY --from=src a /a\n",
                          f"src=http://127.0.0.1:{port}/repo.git")
    assert result.returncode == 4, result.stderr
    assert f"--build-context src=http://127.0.0.1:{port}/repo.git" in result.stderr
    assert "Traceback" not in result.stderr

    write_context(tmp_path / "dir", {"present.txt": "x"})
    result, _, _ = _build(tmp_path / "c", f"FROM {busybox_base}\nCOPY --from=dir absent.txt /a\n",
                          f"dir={tmp_path / 'dir'}")
    assert result.returncode == 4, result.stderr
    assert f"not found in the named context 'dir' (--build-context dir={tmp_path / 'dir'})" in result.stderr


def test_lint_knows_the_context_names(tmp_path):
    context = write_context(tmp_path, {"Dockerfile": "FROM scratch\nCOPY --from=shared a /a\n"})
    plain = dockyard("lint", "--no-hadolint", "--format", "json", str(context))
    assert "UnknownFromStage" in plain.stdout
    named = dockyard("lint", "--no-hadolint", "--format", "json", "--build-context", "shared=../elsewhere",
                     str(context))
    assert named.returncode == 0, named.stderr
    assert "UnknownFromStage" not in named.stdout


def test_an_unprivileged_build_gets_root_owned_context_files(busybox_base, tmp_path):
    """Without root (the proot mode), the context's files cannot be chowned: the ownership ledger says 0:0 for
    them, so COPY --from and FROM of a directory context give the same owners as a root build."""
    import sys

    from tests.support.users import open_directory, owned_directory

    uid = 65534
    probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c",
                            "import dockyard.cli"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"uid {uid} cannot load dockyard: {probe.stderr.strip()[-200:]}")
    with open_directory("dockyard-contexts-") as shared_dir:
        home = owned_directory(shared_dir, "home", uid, uid)
        shared = owned_directory(shared_dir, "shared", uid, uid)
        (shared / "lib.txt").write_text("library\n")
        os.chown(shared / "lib.txt", uid, uid)
        context = owned_directory(shared_dir, "main", uid, uid)
        (context / "Dockerfile").write_text(f"FROM {busybox_base} AS tools\nFROM shared AS files\n"
                                            "COPY --from=tools /bin/busybox /bin/busybox\n"
                                            "FROM tools\nCOPY --from=shared lib.txt /copied\n"
                                            "COPY --from=files /lib.txt /from-stage\n")
        oci = home / "oci"
        result = dockyard("build", "--progress=plain", "-t", "contexts/user:latest", "--output", f"type=oci,dest={oci}",
                          "--build-context", f"shared={shared}", str(context), user=uid,
                          env={"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
                               "DOCKYARD_WORK_DIR": str(home)})
        assert result.returncode == 0, result.stderr
        assert "isolation: proot" in result.stderr
        files = tree.flatten(oracle.unpack(oci, tmp_path / "bundle"))
    assert files["/copied"].sha256 == _sha(b"library\n") and (files["/copied"].uid, files["/copied"].gid) == (0, 0)
    assert (files["/from-stage"].uid, files["/from-stage"].gid) == (0, 0)


def test_oci_layout_index_is_resolved_to_the_platform(registry, tmp_path):
    """A layout holding a multi-platform index: the entry for --platform is the stage's base (its own layer
    says which it is), as BuildKit resolves an oci-layout context for the target platform."""
    from tests.support.images import push_multiplatform_base

    base = push_multiplatform_base(registry.host, tmp_path / "base")
    layout = tmp_path / "layout"
    oracle.run_tool(["skopeo", "--insecure-policy", "copy", "--all", "--src-tls-verify=false", f"docker://{base}",
                     f"oci:{layout}:multi"], 120)
    dockerfile = "FROM base AS picked\nFROM scratch\nCOPY --from=picked /etc/platform /platform\n"
    for platform, expected in (("linux/amd64", b"linux/amd64"), ("linux/arm64", b"linux/arm64/v8")):
        result, files, _ = _build(tmp_path / platform.replace("/", "-"), dockerfile,
                                  f"base=oci-layout://{layout}:multi", extra=("--platform", platform))
        assert result.returncode == 0, result.stderr
        assert files["/platform"].sha256 in (_sha(expected), _sha(expected + b"\n"))
    result, _, _ = _build(tmp_path / "s390x", dockerfile, f"base=oci-layout://{layout}:multi",
                          extra=("--platform", "linux/s390x"))
    assert result.returncode == 4 and "linux/s390x" in result.stderr and "linux/arm64" in result.stderr


def test_a_moved_image_tag_misses_the_cache(registry, busybox_base, fidelity_base, tmp_path):
    """A docker-image:// context is keyed by the digest its tag resolves to, not by the tag."""
    moving = f"{registry.host}/contexts/moving:1"

    def point_at(source: str) -> None:
        oracle.run_tool(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                         f"docker://{source}", f"docker://{moving}"], 120)

    context = write_context(tmp_path / "main", {"Dockerfile": "FROM base\nRUN ls / > /listing\n"})

    def cached(n: int) -> list:
        meta = tmp_path / f"meta{n}.json"
        result = dockyard("build", "-q", "--cache-dir", str(tmp_path / "cache"), "--metadata-file", str(meta),
                          "--build-context", f"base=docker-image://{moving}", str(context))
        assert result.returncode == 0, result.stderr
        return [s["cached"] for s in json.loads(meta.read_text())["steps"][1:]]

    point_at(busybox_base)
    assert cached(1) == [False]
    assert cached(2) == [True]
    point_at(fidelity_base)
    assert cached(3) == [False]
