"""Proves the test support works: the hand-made base images, buildah as the oracle, and reading images back.

Also pins the buildah behaviours documented in tests/support/oracle.py, so a buildah upgrade that changes them
fails here (and the comparison rules in tree.py get revisited) instead of silently skewing other tests.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support import images, oracle, tree
from tests.support.oracle import run_tool

TOOLS = ("buildah", "skopeo", "umoci", "docker-registry", "chroot")


@pytest.fixture(scope="module", autouse=True)
def _tools_present():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools {missing}: apt-get install -y buildah skopeo umoci docker-registry busybox-static")


def _env_dict(cfg: dict) -> dict[str, str]:
    return dict(e.split("=", 1) for e in (cfg.get("config") or {}).get("Env") or [])


def _fetch_unpack(ref: str, workdir: Path) -> Path:
    oci_dir = oracle.fetch_oci(ref, workdir / "oci")
    return oracle.unpack(oci_dir, workdir / "bundle")


# ---------------------------------------------------------------------------------------------- base image


@pytest.fixture(scope="module")
def base_tree(busybox_base, tmp_path_factory) -> dict[str, tree.Entry]:
    return tree.flatten(_fetch_unpack(busybox_base, tmp_path_factory.mktemp("base-unpacked")))


def test_busybox_base_is_pushed_and_inspectable(registry, busybox_base, tmp_path):
    assert busybox_base == f"{registry.host}/base/busybox:1"
    summary = oracle.inspect_summary(busybox_base)
    assert summary["Architecture"] == "amd64" and summary["Os"] == "linux"
    assert len(summary["Layers"]) == 1
    assert summary["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    cfg = oracle.inspect(busybox_base)
    assert cfg["config"]["Cmd"] == ["sh"]
    assert cfg["rootfs"]["diff_ids"] and cfg["history"]
    raw = oracle.inspect_raw(busybox_base)
    assert raw["mediaType"] == images.MT_MANIFEST
    # Idempotent and cached: a second call pushes nothing and gives the same reference.
    assert images.push_busybox_base(registry.host, tmp_path) == busybox_base
    assert not (tmp_path / "busybox-oci").exists()


def test_busybox_layer_is_deterministic():
    assert images.busybox_layer() == images.busybox_layer()


def test_busybox_base_tree(base_tree):
    t = base_tree
    assert t["/bin/busybox"].type == "f" and t["/bin/busybox"].mode == 0o755
    for applet in images.REQUIRED_APPLETS:
        assert t[f"/bin/{applet}"].type == "l" and t[f"/bin/{applet}"].link == "busybox", applet
    assert (t["/tmp"].type, t["/tmp"].mode) == ("d", 0o1777)
    assert t["/root"].mode == 0o700
    assert (t["/home/app"].uid, t["/home/app"].gid) == (1000, 1000)
    assert (t["/home/app/.profile"].uid, t["/home/app/.profile"].gid) == (1000, 1000)
    assert t["/proc"].mode == 0o555 and t["/sys"].mode == 0o555 and t["/dev"].type == "d"
    assert t["/var/empty"].type == "d"
    assert t["/etc/remove-me"].type == "f"
    assert {p for p in t if p.startswith("/opt/old/")} == {"/opt/old/a.txt", "/opt/old/b.txt"}
    for absent in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run"):
        assert absent not in t


def test_base_rootfs_really_works_in_chroot(busybox_base, tmp_path):
    rootfs = _fetch_unpack(busybox_base, tmp_path)
    env = _env_dict(oracle.inspect(busybox_base))
    out = run_tool(["chroot", rootfs, "/bin/sh", "-c", "id app; stat -c '%a %u' /tmp; echo ok > /tmp/x; cat /tmp/x"],
                   60, env=env).stdout
    assert out.splitlines() == ["uid=1000(app) gid=1000(app) groups=1000(app),50(staff)", "1777 0", "ok"]


def test_multiplatform_base_has_both_platforms(registry, tmp_path):
    ref = images.push_multiplatform_base(registry.host, tmp_path / "push")
    assert ref == f"{registry.host}/base/multiplatform:1"
    raw = oracle.inspect_raw(ref)
    assert raw["mediaType"] == images.MT_INDEX
    platforms = {(m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))
                 for m in raw["manifests"]}
    assert platforms == {("linux", "amd64", None), ("linux", "arm64", "v8")}
    # Selecting each platform gives that platform's config and marker file.
    for arch, variant, expected in (("amd64", None, "linux/amd64"), ("arm64", "v8", "linux/arm64/v8")):
        sel = ["--override-arch", arch] + (["--override-variant", variant] if variant else [])
        oci_dir = tmp_path / f"oci-{arch}"
        run_tool(["skopeo", "--insecure-policy", *sel, "copy", "--src-tls-verify=false", f"docker://{ref}",
                  f"oci:{oci_dir}:latest"], 300)
        rootfs = oracle.unpack(oci_dir, tmp_path / f"bundle-{arch}")
        assert (rootfs / "etc/platform").read_text() == expected + "\n"
        assert (rootfs / "bin/busybox").is_file()
        cfg = json.loads(run_tool(["skopeo", "--insecure-policy", *sel, "inspect", "--tls-verify=false",
                                   "--raw", "--config", f"docker://{ref}"], 300).stdout)
        assert cfg["architecture"] == arch and cfg.get("variant") == variant


# ---------------------------------------------------------------------------------------------- buildah oracle

DOCKERFILE = """\
FROM {base} AS build
RUN echo built > /built.txt && rm /etc/remove-me && rm -rf /opt/old \\
    && mkdir -p /home/app/data && chown app:app /home/app/data
ENV GREETING=hello APPDIR=/srv/app
WORKDIR /srv/app
COPY hello.txt ./hello.txt
COPY --chown=app:staff hello.txt /home/app/data/hello.txt
USER app
RUN touch /home/app/data/made-by-app && id > /home/app/data/id.txt
EXPOSE 8080
LABEL org.example.stage=build
HEALTHCHECK --interval=5s CMD true

FROM {base}
COPY --from=build /built.txt /srv/built.txt
COPY --from=build /home/app/data /data
CMD ["cat", "/srv/built.txt"]
"""


class Built:
    def __init__(self, root: Path, base: str, registry_host: str):
        self.context = root / "context"
        self.context.mkdir()
        (self.context / "hello.txt").write_text("hello from the context\n")
        (self.context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        self.workdir = root / "buildah"
        self.base = base
        self.stage_ref = f"{registry_host}/oracle/stage:1"
        self.final_ref = f"{registry_host}/oracle/final:1"
        dockerfile = self.context / "Dockerfile"
        oracle.buildah_build(self.context, dockerfile, self.stage_ref, self.workdir, target="build")
        oracle.buildah_build(self.context, dockerfile, self.final_ref, self.workdir)
        self.stage_rootfs = _fetch_unpack(self.stage_ref, root / "stage")
        self.final_rootfs = _fetch_unpack(self.final_ref, root / "final")
        self.stage_tree = tree.flatten(self.stage_rootfs)
        self.final_tree = tree.flatten(self.final_rootfs)
        self.stage_cfg = oracle.inspect(self.stage_ref)
        self.final_cfg = oracle.inspect(self.final_ref)


@pytest.fixture(scope="module")
def built(busybox_base, registry, tmp_path_factory) -> Built:
    return Built(tmp_path_factory.mktemp("oracle-build"), busybox_base, registry.host)


@pytest.mark.slow
def test_buildah_stage_tree(built, base_tree):
    t = built.stage_tree
    assert t["/built.txt"].type == "f" and (built.stage_rootfs / "built.txt").read_text() == "built\n"
    assert "/etc/remove-me" not in t
    assert not any(p == "/opt/old" or p.startswith("/opt/old/") for p in t)
    assert t["/opt"].type == "d"
    assert (t["/home/app/data"].uid, t["/home/app/data"].gid) == (1000, 1000)
    assert (t["/srv/app/hello.txt"].uid, t["/srv/app/hello.txt"].gid) == (0, 0)
    assert (t["/home/app/data/hello.txt"].uid, t["/home/app/data/hello.txt"].gid) == (1000, 50)
    assert (t["/home/app/data/made-by-app"].uid, t["/home/app/data/made-by-app"].gid) == (1000, 1000)
    # oracle.py finding 8: buildah's supplementary groups for USER app (busybox id prints getgroups() order).
    assert (built.stage_rootfs / "home/app/data/id.txt").read_text() == \
        "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n"
    # Against the base, exactly the Dockerfile's changes plus buildah's RUN mount-point leftovers.
    diffs = tree.diff_trees(base_tree, built.stage_tree, a_name="base", b_name="built")
    only_built = sorted(d.split(":")[0] for d in diffs if "only in built" in d)
    only_base = sorted(d.split(":")[0] for d in diffs if "only in base" in d)
    assert only_base == ["/etc/remove-me", "/opt/old", "/opt/old/a.txt", "/opt/old/b.txt"]
    assert only_built == ["/built.txt", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/home/app/data",
                          "/home/app/data/hello.txt", "/home/app/data/id.txt", "/home/app/data/made-by-app",
                          "/run", "/srv", "/srv/app", "/srv/app/hello.txt"]
    assert len(diffs) == len(only_built) + len(only_base), diffs
    # oracle.py finding 2: the stubs are exactly what buildah_run_stubs() names; ignoring them leaves the
    # Dockerfile's own changes.
    stubs = tree.buildah_run_stubs(base_tree)
    assert stubs == {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run"}
    for path in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        assert (t[path].type, t[path].size, t[path].mode) == ("f", 0, 0o755), path
    rest = tree.diff_trees(base_tree, built.stage_tree, ignore=stubs, a_name="base", b_name="built")
    assert len(rest) == len(diffs) - 4


@pytest.mark.slow
def test_buildah_stage_config(built):
    expected = {"config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello",
                "APPDIR=/srv/app"],
        "Cmd": ["sh"],
        "WorkingDir": "/srv/app",
        "User": "app",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.example.stage": "build"},
        # docker stores durations in nanoseconds, and so does buildah in --format docker
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000},
    }}
    assert tree.compare_configs(built.stage_cfg, expected, a_name="buildah", b_name="expected") == []
    assert built.stage_cfg["config"]["Labels"]["io.buildah.version"]  # what compare_configs drops (finding 1)
    # Finding 7: classic-builder style history with buildah's "FROM ..." comments.
    history = built.stage_cfg["history"]
    new = history[1:]  # history[0] is the base's
    assert len(new) == 10
    assert new[0]["created_by"].startswith("/bin/sh -c echo built > /built.txt")
    assert new[0]["comment"] == f"FROM {built.base}"
    assert new[1]["created_by"] == "/bin/sh -c #(nop) ENV GREETING=hello APPDIR=/srv/app"
    assert new[1]["empty_layer"] is True and new[1]["comment"].startswith("FROM ")
    assert [bool(h.get("empty_layer")) for h in new] == [False, True, True, False, False, True, False, True,
                                                           True, True]
    assert oracle.inspect_raw(built.stage_ref)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


@pytest.mark.slow
def test_buildah_final_stage(built):
    t = built.final_tree
    assert (built.final_rootfs / "srv/built.txt").read_text() == "built\n"
    # COPY --from keeps the source's owners in buildah (the destination directory itself is root's).
    assert (t["/data"].uid, t["/data"].gid) == (0, 0)
    assert (t["/data/hello.txt"].uid, t["/data/hello.txt"].gid) == (1000, 50)
    assert (t["/data/made-by-app"].uid, t["/data/made-by-app"].gid) == (1000, 1000)
    assert "/built.txt" not in t
    # The final stage ran no RUN: none of buildah's mount-point leftovers.
    assert "/etc/hosts" not in t and "/run" not in t
    assert t["/etc/remove-me"].type == "f"
    assert tree.compare_configs(built.final_cfg, {"config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["cat", "/srv/built.txt"]}}) == []


@pytest.mark.slow
def test_built_image_cmd_runs_in_chroot(built):
    cfg = built.final_cfg["config"]
    cmd = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    out = run_tool(["chroot", built.final_rootfs, *cmd], 60, env=_env_dict(built.final_cfg)).stdout
    assert out == "built\n"
    # And as the stage's USER, in its WORKDIR, through the image's shell.
    out = run_tool(["chroot", "--userspec=1000:1000", built.stage_rootfs, "/bin/sh", "-c",
                    f"cd {built.stage_cfg['config']['WorkingDir']} && id -u && cat hello.txt && echo $GREETING"],
                   60, env=_env_dict(built.stage_cfg)).stdout
    assert out.splitlines() == ["1000", "hello from the context", "hello"]


@pytest.mark.slow
def test_buildah_findings_scratch_and_formats(busybox_base, registry, tmp_path):
    """Pins the findings documented in oracle.py: RUN on a base without /dev, /proc, /sys; FROM scratch's PATH;
    WORKDIR without a later step; --format oci dropping docker-only fields."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base} AS bb\n"
        "FROM scratch\n"
        "COPY --from=bb /bin /bin\n"
        "RUN echo hi > /hi.txt\n"
        "WORKDIR /never/used\n"
        "HEALTHCHECK CMD true\n"
        "ONBUILD RUN true\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "STOPSIGNAL SIGTERM\n"
    )
    results = {}
    for fmt in ("docker", "oci"):
        ref = f"{registry.host}/oracle/scratch:{fmt}"
        oracle.buildah_build(ctx, ctx / "Dockerfile", ref, tmp_path / "buildah", fmt=fmt)
        results[fmt] = oracle.inspect(ref)
    docker_cfg, oci_cfg = results["docker"], results["oci"]
    # buildah gives FROM scratch the default PATH.
    assert docker_cfg["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    # docker format keeps HEALTHCHECK/ONBUILD/SHELL; oci drops them (StopSignal exists in both).
    assert docker_cfg["config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true"]}
    assert docker_cfg["config"]["OnBuild"] == ["RUN true"] and docker_cfg["config"]["Shell"] == ["/bin/sh", "-ec"]
    for key in ("Healthcheck", "OnBuild", "Shell"):
        assert key not in oci_cfg["config"], key
    assert oci_cfg["config"]["StopSignal"] == docker_cfg["config"]["StopSignal"] == "SIGTERM"
    # docker format writes empty lists/maps where docker writes null: what compare_configs normalizes.
    assert docker_cfg["config"]["Entrypoint"] == [] and docker_cfg["config"]["Volumes"] == {}
    rootfs = _fetch_unpack(f"{registry.host}/oracle/scratch:docker", tmp_path / "unpacked")
    t = tree.flatten(rootfs)
    # The RUN layer gained the mount points buildah's chroot isolation used.
    for path in ("/dev", "/proc", "/sys", "/run"):
        assert t[path].type == "d" and t[path].mode == 0o755 and (t[path].uid, t[path].gid) == (0, 0), path
    for path in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        assert t[path].type == "f" and t[path].size == 0 and t[path].mode == 0o755, path
    # WORKDIR with no later RUN/COPY creates no directory (and no layer) in buildah.
    assert "/never" not in t
    assert len(docker_cfg["rootfs"]["diff_ids"]) == 2


# ---------------------------------------------------------------------------------------------- tree.py


def test_flatten_and_diff_trees(tmp_path):
    a = tmp_path / "a"
    (a / "d").mkdir(parents=True)
    (a / "d/f").write_text("one")
    (a / "link").symlink_to("/etc")  # absolute, dangling inside the tree: must not be followed
    (a / "dirlink").symlink_to("d")
    os.mkfifo(a / "fifo")
    os.chmod(a / "d", 0o2755)
    os.setxattr(a / "d/f", "user.k", b"v")
    b = tmp_path / "b"
    run_tool(["cp", "-a", a, b], 60)  # shutil.copytree refuses fifos
    ta = tree.flatten(a)
    assert set(ta) == {"/", "/d", "/d/f", "/link", "/dirlink", "/fifo"}  # nothing under /dirlink
    assert ta["/link"].type == "l" and ta["/link"].link == "/etc"
    assert ta["/fifo"].type == "p" and ta["/d"].mode == 0o2755
    assert ta["/d/f"].xattrs == {"user.k": b"v"} and ta["/d/f"].size == 3
    assert tree.diff_trees(ta, tree.flatten(b)) == []

    (b / "d/f").write_text("two")
    os.chown(b / "d", 1000, 50)
    os.chmod(b / "fifo", 0o600)
    (b / "new").write_text("")
    (b / "link").unlink()
    (b / "link").symlink_to("/usr")
    os.mknod(b / "null", 0o666 | 0o020000, os.makedev(1, 3))
    tb = tree.flatten(b)
    assert tb["/null"].type == "c" and tb["/null"].rdev == (1, 3)
    diffs = tree.diff_trees(ta, tb)
    text = "\n".join(diffs)
    assert "/d: uid differs" in text and "/d: gid differs" in text
    assert "/d/f: sha256 differs" in text
    assert "/fifo: mode differs: a='0644' b='0600'" in text
    assert "/link: link differs: a='/etc' b='/usr'" in text
    assert "/new: only in b" in text and "/null: only in b" in text
    assert tree.diff_trees(ta, tb, ignore={"/d", "/d/*", "/fifo", "/link", "/n*"}) == []


def test_compare_configs_normalizes_only_documented_differences():
    docker_like = {"config": {"Env": ["A=1"], "Cmd": ["sh"], "Entrypoint": None, "Labels": {"x": "y"}}}
    buildah_like = {"config": {"Env": ["A=1"], "Cmd": ["sh"], "Entrypoint": [], "OnBuild": [], "Volumes": {},
                               "Labels": {"x": "y", "io.buildah.version": "1.28.2"}, "Hostname": "abc"}}
    assert tree.compare_configs(docker_like, buildah_like) == []
    assert tree.compare_configs({"config": {"Labels": {"io.buildah.version": "1"}}}, {}) == []
    # Real differences stay.
    assert tree.compare_configs({"config": {"Env": ["A=1", "B=2"]}}, {"config": {"Env": ["B=2", "A=1"]}})
    assert tree.compare_configs({"config": {"Cmd": [""]}}, {"config": {}})
    assert tree.compare_configs({"config": {"Labels": {"io.buildah.version": "1", "k": "v"}}}, {"config": {}}) == [
        "config.Labels differs: a={'k': 'v'} b=None"]
    assert tree.compare_configs({"config": {"User": "app"}}, {"config": {"User": "0"}})


def test_fidelity_base_as_umoci_unpacks_it(registry, fidelity_base, tmp_path):
    root = oracle.unpack(oracle.fetch_oci(fidelity_base, tmp_path / "oci"), tmp_path / "bundle")
    flat = tree.flatten(root)
    assert flat["/fid/dev/null"].rdev == (1, 3) and flat["/fid/fifo"].type == "p"
    assert flat["/fid/cap"].xattrs["security.capability"] == images.CAP_NET_BIND_SERVICE_EP
    assert flat["/fid/sticky"].mode == 0o1777 and flat["/fid/suid"].mode == 0o4755
    assert flat["/fid/hardlink/link"].nlink == 2 and "/etc/child" not in flat
    assert {p for p in flat if p.startswith("/fid/opaque/")} == {"/fid/opaque/new"}


def test_buildah_local_build_with_secrets_export_and_config(busybox_base, registry, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "token.txt").write_text("file-secret")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\n"
        "RUN --mount=type=secret,id=file cat /run/secrets/file > /from-file\n"
        "RUN --mount=type=secret,id=envsecret cat /run/secrets/envsecret > /from-env\n"
        "HEALTHCHECK CMD true\n"
    )
    tag = "localhost/oracle/secrets:latest"
    oracle.buildah_build(ctx, ctx / "Dockerfile", tag, tmp_path / "buildah", push=False,
                         secrets=[f"id=file,src={ctx / 'token.txt'}", "id=envsecret,env=ORACLE_SECRET"],
                         env={"ORACLE_SECRET": "env-secret"})
    root = oracle.unpack(oracle.buildah_export_oci(tag, tmp_path / "buildah", tmp_path / "oci"), tmp_path / "b")
    assert (root / "from-file").read_text() == "file-secret"
    assert (root / "from-env").read_text() == "env-secret"
    # The docker-format config keeps what the OCI layout's converted config loses.
    assert oracle.buildah_config(tag, tmp_path / "buildah")["config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]


def test_buildah_stubs_left_only_ignores_empty_stubs_dockyard_lacks(tmp_path):
    theirs_root, ours_root = tmp_path / "theirs", tmp_path / "ours"
    for root in (theirs_root, ours_root):
        (root / "etc").mkdir(parents=True)
    (theirs_root / "etc/hosts").write_text("")
    (theirs_root / "etc/hostname").write_text("made by the Dockerfile\n")
    (theirs_root / "run").mkdir()
    (theirs_root / "proc").mkdir()
    (theirs_root / "proc/kept").write_text("")
    (ours_root / "etc/resolv.conf").write_text("")
    (theirs_root / "etc/resolv.conf").write_text("")
    stubs = tree.buildah_stubs_left(tree.flatten(ours_root), tree.flatten(theirs_root))
    assert stubs == {"/etc/hosts", "/run"}
