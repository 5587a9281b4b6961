"""ADD of URLs and git repositories, end to end through the CLI, against servers on loopback only.

The HTTP server is python's http.server in a thread (with a fixed Last-Modified); the git repository is a bare
repository served by the same server over git's "dumb" HTTP protocol (after `git update-server-info`), so the
real `git` CLI clones it exactly as it would a remote one.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import http.server
import io
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support import oracle, tree

LAST_MODIFIED = 1_600_000_000  # 2020-09-13, what the served files say and the image must keep as mtime
PAYLOAD = b"downloaded bytes\n"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def date_time_string(self, timestamp=None) -> str:
        return email.utils.formatdate(LAST_MODIFIED, usegmt=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Serves a directory on 127.0.0.1; yields (root, base URL)."""
    root = tmp_path_factory.mktemp("served")
    (root / "files").mkdir()
    (root / "files" / "tool.bin").write_bytes(PAYLOAD)
    (root / "files" / "data.tar.gz").write_bytes(_targz({"inside.txt": b"inside\n"}))
    _make_git_repo(root / "repo.git", tmp_path_factory.mktemp("git-work"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _targz(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _make_git_repo(bare: Path, work: Path) -> None:
    """main: README + docs/guide.md (v1 tag), then a second commit changing README; branch `old` at v1."""
    _git("init", "-q", "-b", "main", ".", cwd=work)
    (work / "README").write_text("first\n")
    (work / "docs").mkdir()
    (work / "docs" / "guide.md").write_text("guide\n")
    (work / "run.sh").write_text("#!/bin/sh\n")
    (work / "run.sh").chmod(0o755)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("tag", "v1", cwd=work)
    _git("branch", "old", cwd=work)
    (work / "README").write_text("second\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=work)
    _git("update-server-info", cwd=bare)


def _build(tmp_path: Path, base: str, body: str) -> tuple[object, dict]:
    """Builds `FROM base` + body; returns (CLI result, flattened tree or {} when the build failed)."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base}\n{body}"})
    oci = tmp_path / "oci"
    result = dockyard("build", "--progress=plain", "-t", "remote/test:latest", "--output",
                      f"type=oci,dest={oci}", str(context))
    if result.returncode != 0:
        return result, {}
    return result, tree.flatten(oracle.unpack(oci, tmp_path / "bundle"))


def test_add_url_mode_mtime_name_and_checksum(server, busybox_base, tmp_path):
    _, url = server
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    result, files = _build(tmp_path, busybox_base, f"ADD {url}/files/tool.bin /dl/\n"
                                                   f"ADD --checksum=sha256:{digest} {url}/files/tool.bin /dl/named\n"
                                                   f"ADD --chmod=0755 --chown=app {url}/files/tool.bin /dl/exe\n"
                                                   f"ADD {url}/files/data.tar.gz /dl/\n")
    assert result.returncode == 0, result.stderr
    downloaded = files["/dl/tool.bin"]
    assert (downloaded.type, downloaded.mode, downloaded.uid) == ("f", 0o600, 0)
    assert downloaded.sha256 == digest
    assert int(downloaded.mtime) == LAST_MODIFIED
    assert files["/dl/named"].sha256 == digest
    assert (files["/dl/exe"].mode, files["/dl/exe"].uid, files["/dl/exe"].gid) == (0o755, 1000, 1000)
    # A tarball from a URL is never extracted.
    assert files["/dl/data.tar.gz"].type == "f" and "/dl/inside.txt" not in files


def test_add_unpack_flag_and_a_url_without_a_file_name(server, busybox_base, tmp_path):
    # ADD --unpack=true extracts a downloaded archive into the destination; --unpack=false keeps a local one.
    _, url = server
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "local.tar.gz").write_bytes(_targz({"local.txt": b"local\n"}))
    result, files = _build(tmp_path, busybox_base, f"ADD --unpack=true {url}/files/data.tar.gz /dl/\n"
                                                   "ADD --unpack=false local.tar.gz /kept/\n"
                                                   f"ADD {url}/ /root-url/\n")
    assert result.returncode == 0, result.stderr
    assert files["/dl/inside.txt"].type == "f" and "/dl/data.tar.gz" not in files
    assert files["/kept/local.tar.gz"].type == "f" and "/kept/local.txt" not in files
    assert files["/root-url/__unnamed__"].type == "f"  # a URL path with no name: BuildKit's placeholder name


def test_add_url_checksum_mismatch_names_url_and_digests(server, busybox_base, tmp_path):
    _, url = server
    wrong = "0" * 64
    result, _ = _build(tmp_path, busybox_base, f"ADD --checksum=sha256:{wrong} {url}/files/tool.bin /dl/\n")
    assert result.returncode == 5
    assert f"{url}/files/tool.bin" in result.stderr
    assert f"sha256:{wrong}" in result.stderr and f"sha256:{hashlib.sha256(PAYLOAD).hexdigest()}" in result.stderr
    assert "Dockerfile:2" in result.stderr and "Traceback" not in result.stderr


def test_add_url_http_error_and_unreachable(server, busybox_base, tmp_path):
    _, url = server
    result, _ = _build(tmp_path / "a", busybox_base, f"ADD {url}/files/missing.bin /dl/\n")
    assert result.returncode == 4 and "HTTP 404" in result.stderr and "Traceback" not in result.stderr
    # A port nothing listens on (the server's port + 1 is not guaranteed free, so bind and close one).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result, _ = _build(tmp_path / "b", busybox_base, f"ADD http://127.0.0.1:{port}/x.bin /dl/\n")
    assert result.returncode == 4 and "Connection refused" in result.stderr, result.stderr


def test_add_url_bad_checksum_syntax(server, busybox_base, tmp_path):
    _, url = server
    result, _ = _build(tmp_path, busybox_base, f"ADD --checksum=md5:abc {url}/files/tool.bin /dl/\n")
    assert result.returncode == 3 and "invalid --checksum=md5:abc" in result.stderr


def test_add_git_refs_subdir_and_keep_git_dir(server, busybox_base, tmp_path):
    _, url = server
    repo = f"{url}/repo.git"
    result, files = _build(tmp_path, busybox_base, f"ADD {repo} /src/head/\n"
                                                   f"ADD {repo}#v1 /src/tag/\n"
                                                   f"ADD {repo}#old:docs /src/subdir/\n"
                                                   f"ADD --keep-git-dir=true {repo}#main /src/kept/\n")
    assert result.returncode == 0, result.stderr
    assert files["/src/head/README"].sha256 == hashlib.sha256(b"second\n").hexdigest()
    assert files["/src/tag/README"].sha256 == hashlib.sha256(b"first\n").hexdigest()
    assert files["/src/head/run.sh"].mode == 0o755 and files["/src/head/README"].uid == 0
    assert "/src/subdir/guide.md" in files and "/src/subdir/README" not in files
    assert "/src/head/.git" not in files
    assert files["/src/kept/.git"].type == "d" and "/src/kept/.git/HEAD" in files


def test_add_git_unknown_ref(server, busybox_base, tmp_path):
    _, url = server
    result, _ = _build(tmp_path, busybox_base, f"ADD {url}/repo.git#nosuchref /src/\n")
    assert result.returncode == 4 and "nosuchref" in result.stderr and "Traceback" not in result.stderr


def test_add_url_is_cached_only_with_a_checksum(server, busybox_base, tmp_path):
    """Without --checksum the download runs on every build (docker fetches again too), and the steps after it
    hit when it fetched the same bytes; with --checksum the ADD itself is cached."""
    import json

    from tests.e2e.helpers import dockyard, write_context

    _, url = server
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    dockerfile = (f"FROM {busybox_base}\nADD {url}/files/tool.bin /dl/\nRUN cp /dl/tool.bin /copy\n"
                  f"ADD --checksum=sha256:{digest} {url}/files/tool.bin /dl/named\n")
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})

    def cached(n: int) -> list:
        meta = tmp_path / f"meta{n}.json"
        result = dockyard("build", "-q", "--cache-dir", str(tmp_path / "cache"), "--metadata-file", str(meta),
                          str(context), env={"SOURCE_DATE_EPOCH": "1700000000"})
        assert result.returncode == 0, result.stderr
        return [s["cached"] for s in json.loads(meta.read_text())["steps"][1:]]

    assert cached(1) == [None, False, False]
    assert cached(2) == [None, True, True]
