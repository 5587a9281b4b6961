"""RUN --mount parsing (BuildKit's rules), --secret/--ssh parsing, cache-directory locking, the agent relay."""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

import pytest

from dockyard.dockerfile import instructions as ins
from dockyard.errors import DockerfileError, SourceLocation, UsageError
from dockyard.cache.mount_dirs import cache_directory
from dockyard.dockerfile.mounts import RunMount as MountSpec
from dockyard.dockerfile.mounts import mount_from_refs, parse_mount
from dockyard.ssh_agent import AgentRelay
from dockyard.options import SecretSource, SshSource


def parse(text: str, env: dict | None = None, workdir: str = "/") -> MountSpec:
    values = env or {}
    return parse_mount(text, lambda v: v.replace("$DIR", values.get("DIR", "")), workdir)


def test_defaults_per_type():
    assert parse("target=/src") == MountSpec(type="bind", target="/src", readonly=True)
    cache = parse("type=cache,target=/root/.cache")
    assert (cache.readonly, cache.id, cache.sharing) == (False, "/root/.cache", "shared")
    assert parse("type=tmpfs,target=/t").readonly is False
    secret = parse("type=secret,id=tok")
    assert (secret.id, secret.target, secret.required, secret.readonly) == ("tok", "", False, True)


def test_aliases_case_and_flag_words():
    spec = parse("TYPE=bind,SRC=a,DST=b,rw", workdir="/app")
    assert (spec.source, spec.target, spec.readonly) == ("a", "/app/b", False)
    assert parse("source=a,destination=/b,readonly=false").readonly is False
    assert parse("type=cache,target=/c,ro").readonly is True
    assert parse("type=secret,id=a,required").required is True
    assert parse("type=ssh,required=True").required is True


def test_values_are_expanded():
    assert parse("type=cache,target=$DIR/cache", {"DIR": "/opt"}).target == "/opt/cache"


def test_secret_id_from_target_or_source():
    assert parse("type=secret,target=/etc/creds/token").id == "token"
    assert parse("type=secret,source=npmrc").id == "npmrc"
    with pytest.raises(DockerfileError, match="not both"):
        parse("type=secret,source=a,id=b")
    with pytest.raises(DockerfileError, match="needs id="):
        parse("type=secret")


def test_tmpfs_size_in_docker_units():
    assert parse("type=tmpfs,target=/t,size=64m").size == 64 * 1024 * 1024
    assert parse("type=tmpfs,target=/t,size=1.5g").size == int(1.5 * 1024 ** 3)
    assert parse("type=tmpfs,target=/t,size=512MiB").size == 512 * 1024 * 1024
    with pytest.raises(DockerfileError, match="invalid value for size"):
        parse("type=tmpfs,target=/t,size=lots")


def test_mode_uid_gid():
    spec = parse("type=cache,target=/c,mode=0700,uid=1000,gid=100")
    assert (spec.mode, spec.uid, spec.gid) == (0o700, 1000, 100)
    with pytest.raises(DockerfileError, match="invalid value 9 for mode"):
        parse("type=cache,target=/c,mode=9")
    with pytest.raises(DockerfileError, match="uid is not allowed for bind"):
        parse("target=/c,uid=1")


@pytest.mark.parametrize("text, message", [
    ("type=volume,target=/x", "unsupported mount type 'volume'"),
    ("target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("required,type=secret,id=a", "unexpected key 'required' for mount type 'bind'"),  # order matters, as in BuildKit
    ("target=/x,colour=blue", "unexpected key 'colour'"),
    ("target=/x,bogus", "must be a key=value pair"),
    ("type=cache,target=/x,sharing=sometimes", "unsupported sharing value"),
    ("target=/x,sharing=locked", "sharing is not allowed for bind"),
    ("target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=tmpfs,target=/", 'invalid mount target "/"'),
    ("type=secret,id=a,from=stage", "cannot have from="),
    ("type=ssh,source=x", "do not take a source"),
    ("type=cache,target=/c,env=X", "env is not allowed for cache"),
    ('"target=/x', "comma-separated"),
    ("typ=tmpfs", "unexpected key 'typ' in 'typ=tmpfs' (did you mean type?)"),  # BuildKit's suggestions
    ("type=tmp", "unsupported mount type 'tmp' (did you mean tmpfs?)"),
])
def test_errors(text, message):
    with pytest.raises(DockerfileError, match=re.escape(message)):
        parse(text)


def test_from_refs_for_the_plan():
    run = ins.Run("RUN", SourceLocation("Dockerfile", 3), "RUN ...", command=ins.Command(False, shell_text="true"),
                  flags=(("mount", "type=bind,from=build,target=/b"), ("mount", "type=cache,target=/c"),
                         ("mount", "type=cache,from=seed,source=/x,target=/d")))
    assert mount_from_refs(run) == ["build", "seed"]


def test_from_with_a_variable_is_refused_for_the_plan():
    run = ins.Run("RUN", SourceLocation("Dockerfile", 4), "RUN ...", command=ins.Command(False, shell_text="ls"),
                  flags=(("mount", "from=$ttt,type=cache,target=/tmp"),))
    with pytest.raises(DockerfileError, match="'from' doesn't support variable expansion") as caught:
        mount_from_refs(run)
    assert caught.value.location.start_line == 4


def test_secret_sources_follow_buildx(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("t0k")
    assert SecretSource.parse(f"id=a,src={token}", {}) == SecretSource("a", file=token)
    assert SecretSource.parse("id=a,env=VAR", {"VAR": "v"}) == SecretSource("a", env="VAR")
    assert SecretSource.parse("id=a,type=env,src=VAR", {"VAR": "v"}) == SecretSource("a", env="VAR")
    assert SecretSource.parse("id=TOKEN", {"TOKEN": "v"}) == SecretSource("TOKEN", env="TOKEN")
    monkeypatch.chdir(tmp_path)
    assert SecretSource.parse("id=token", {}).read({}) == b"t0k"  # no such variable: the file named ID
    assert SecretSource("a", env="VAR").read({"VAR": "v"}) == b"v"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    for text, message in ((f"id=a,src={tmp_path}/nope", "cannot read"), (f"id=a,src={big}", "larger than 500"),
                          ("id=a,type=ftp", "type must be file or env"), ("id=a,foo=b", "unexpected key 'foo'"),
                          (f"id=a,src={tmp_path}", "not a regular file")):
        with pytest.raises(UsageError, match=message):
            SecretSource.parse(text, {})


def test_ssh_sources(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        assert SshSource.parse("default", {"SSH_AUTH_SOCK": path}) == SshSource("default", path)
        assert SshSource.parse(f"work={path}", {}) == SshSource("work", path)
        with pytest.raises(UsageError, match="SSH_AUTH_SOCK is not set"):
            SshSource.parse("default", {})
        with pytest.raises(UsageError, match="only one agent socket"):
            SshSource.parse(f"default={path},{path}", {})


def test_cache_directory_sharing(tmp_path):
    made = []
    with cache_directory(tmp_path, "id", "locked", made.append) as first:
        Path(first).mkdir()
        with cache_directory(tmp_path, "id", "private", made.append) as second:
            Path(second).mkdir()
            assert second != first  # busy: a private user gets another instance
        acquired = threading.Event()

        def locked_user():
            with cache_directory(tmp_path, "id", "locked", made.append):
                acquired.set()

        waiter = threading.Thread(target=locked_user)
        waiter.start()
        assert not acquired.wait(0.3)  # locked waits for the holder
    waiter.join(5)
    assert acquired.is_set()
    assert made == [first, second]  # each instance initialized once
    with cache_directory(tmp_path, "id", "shared", made.append) as again:
        assert again == first


def test_agent_relay_forwards_and_keeps_owner_and_mode(tmp_path):
    upstream_path = str(tmp_path / "agent")
    upstream = socket.socket(socket.AF_UNIX)
    upstream.bind(upstream_path)
    upstream.listen(1)

    def echo_once():
        conn, _ = upstream.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo_once, daemon=True).start()
    relay = AgentRelay(upstream_path, str(tmp_path / "relay.sock"), 1000, 1000, 0o660)
    try:
        st = os.stat(relay.path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o660)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(relay.path)
            client.sendall(b"ping")
            assert client.recv(100) == b"PING"
    finally:
        relay.close()
        upstream.close()
