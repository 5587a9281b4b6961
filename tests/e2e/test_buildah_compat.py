"""The image dockyard pushes is the image buildah builds from the same Dockerfile (the issue's done-when).

Both builders pull the same busybox base from the loopback registry and push to it; both results are read
back with skopeo, unpacked with umoci, and compared as flattened trees and configs. The only paths ignored are
the mount-point stubs buildah's RUN leaves behind (see tests/support/oracle.py, finding 2); docker and dockyard
leave none.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support import oracle, tree

DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS builder
ARG GREETING=hello
ENV APPDIR=/srv/app
WORKDIR ${APPDIR}
COPY hello.txt ./
COPY tree/ ./tree/
RUN echo "${GREETING} from RUN" > generated.txt \\
 && mkdir -p /var/lib/app && chown 1000:1000 /var/lib/app \\
 && rm /etc/remove-me && rm -rf /opt/old \\
 && ln -s /srv/app/hello.txt /srv/link && ln -s hello.txt hello-link \\
 && chmod 4755 generated.txt

FROM ${BASE}
ARG GREETING=hello
ENV GREETING=${GREETING} APPDIR=/srv/app
COPY --from=builder /srv/app /srv/app
COPY --from=builder /srv/link /srv/link
COPY --chown=app:app hello.txt /home/app/hello.txt
RUN rm /etc/remove-me && rm -rf /opt/old && mkdir /data && touch /data/a /data/b && rm /data/a && ln /data/b /data/hard
USER app
WORKDIR /home/app
EXPOSE 8080 53/udp
LABEL com.example.name="compat test" com.example.greeting=${GREETING}
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/app/generated.txt"]
"""


@pytest.mark.slow
def test_same_image_as_buildah(registry, busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": DOCKERFILE,
        "hello.txt": "hello, file\n",
        "tree/a/one.txt": "one\n",
        "tree/b/two.sh": "#!/bin/sh\necho two\n",
    })
    (context / "tree/b/two.sh").chmod(0o750)
    args = {"BASE": busybox_base, "GREETING": "bonjour"}
    ours = f"{registry.host}/compat/dockyard:1"
    theirs = f"{registry.host}/compat/buildah:1"

    result = dockyard("build", "--progress=plain", "-t", ours, "--push",
                      *[f"--build-arg={k}={v}" for k, v in args.items()], str(context))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("sha256:")
    oracle.buildah_build(context, context / "Dockerfile", theirs, tmp_path / "buildah", build_args=args)

    # Read back what each builder pushed.
    assert oracle.inspect_summary(ours)["Digest"] == result.stdout.strip()
    base_root = oracle.unpack(oracle.fetch_oci(busybox_base, tmp_path / "base-oci"), tmp_path / "base-bundle")
    our_root = oracle.unpack(oracle.fetch_oci(ours, tmp_path / "ours-oci"), tmp_path / "ours-bundle")
    their_root = oracle.unpack(oracle.fetch_oci(theirs, tmp_path / "theirs-oci"), tmp_path / "theirs-bundle")
    ignore = tree.buildah_run_stubs(tree.flatten(base_root))
    ours_tree, theirs_tree = tree.flatten(our_root), tree.flatten(their_root)
    assert tree.diff_trees(ours_tree, theirs_tree, ignore, "dockyard", "buildah") == []
    # The things the Dockerfile did are really there (a comparison of two wrong trees would pass too).
    assert "/etc/remove-me" not in ours_tree and "/opt/old" not in ours_tree
    assert ours_tree["/srv/app/generated.txt"].mode == 0o4755
    # A symlink named as a COPY source is followed (BuildKit's rule); one inside a copied tree is kept.
    assert ours_tree["/srv/link"].type == "f" and ours_tree["/srv/link"].size == len("hello, file\n")
    assert ours_tree["/srv/app/hello-link"].link == "hello.txt"
    assert ours_tree["/home/app/hello.txt"].uid == 1000
    assert "/data/a" not in ours_tree and ours_tree["/data/hard"].sha256 == ours_tree["/data/b"].sha256
    assert ours_tree["/srv/app/tree/b/two.sh"].mode == 0o750
    for stub in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run"):
        assert stub not in ours_tree, f"dockyard leaked the RUN mount point {stub} into a layer"

    our_cfg, their_cfg = oracle.inspect(ours), oracle.inspect(theirs)
    assert tree.compare_configs(our_cfg, their_cfg, a_name="dockyard", b_name="buildah") == []
    assert our_cfg["config"]["User"] == "app"
    assert our_cfg["config"]["Labels"]["com.example.greeting"] == "bonjour"
    assert len(our_cfg["rootfs"]["diff_ids"]) == len(oracle.inspect_summary(ours)["Layers"])

    # The image really works: run its entrypoint+cmd as its user in a chroot of the unpacked rootfs.
    run = subprocess.run(["chroot", "--userspec=1000:1000", str(our_root), *our_cfg["config"]["Entrypoint"],
                          *our_cfg["config"]["Cmd"]], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "bonjour from RUN\n"
