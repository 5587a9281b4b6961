"""A builder that is not root gives the images root gives, whichever path a file's owner takes to the image.

The reference is dockyard run as root (namespaces mode: real chown, overlay snapshots). The same Dockerfiles
are built by uid 1000 without subordinate ids (proot mode: the owners the host cannot give are kept in the
ownership ledger, rootfs/ownership.py) and by a user with subordinate ids (userns mode: root of a user
namespace). Every path an owner can take is in the Dockerfile: a RUN as root and as other users, RUN chown,
COPY and ADD (a local file, a tar unpacked) with and without --chown, COPY --from of files a RUN made, setuid
bits, hard links and symlinks; then a rebuild that is all local cache hits, and a build with an empty cache
that takes its layers from a registry cache (--cache-to/--cache-from on the loopback registry) and runs a
step on top of them. RUN steps write what `stat` shows them, so the owners a step sees are compared too
(those of the builder's own uid too: test_chown_to_the_builder_s_own_uid_is_told_from_chown_to_root).

A second Dockerfile, on the fidelity base, covers device nodes, a file capability, setuid/setgid bits and a
rename, through RUN, COPY --from and ADD. The root build of the first is also compared with buildah's.

Images are compared layer by layer (every tar entry's name, type, mode, owner, content, link target, device
numbers and xattrs) and by digest: the builds are reproducible (SOURCE_DATE_EPOCH), so a non-root build must
give root's digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.helpers import CliResult, dockyard, write_context
from tests.support import oracle
from tests.support.users import open_directory, owned_directory, user_with_subordinate_ids

EPOCH = "1700000000"
BUILDER_UID = 1000  # also the image's `app` user (tests/support/images.py): its files are the host user's

STAGES = """\
FROM {base} AS build
RUN mkdir -p /out/etc /out/bin /out/owned \\
 && echo made > /out/etc/made.txt && ln /out/etc/made.txt /out/etc/hard && ln -s made.txt /out/etc/link \\
 && echo single > /out/etc/single \\
 && cp /bin/busybox /out/bin/tool && chmod 4755 /out/bin/tool && chmod 2750 /out/owned \\
 && echo owned > /out/owned/f && chown -R 33:44 /out/owned && echo by-root > /home/app/by-root
USER app
RUN mkdir /home/app/mine && echo mine > /home/app/mine/f && ln -s f /home/app/mine/l \\
 && ln /home/app/mine/f /home/app/mine/h && echo more >> /home/app/.profile
USER 2000:3000
RUN mkdir /tmp/u2000 && echo u > /tmp/u2000/f

FROM {base}
COPY --from=build /out /app
COPY --from=build /home/app /home/app
COPY --from=build /tmp/u2000 /u2000
COPY --from=build --chown=7:8 /out/etc /chowned
COPY local.txt /local/
COPY --chown=app:app local.txt /local/mine.txt
COPY tool.sh /local/
ADD archive.tar /unpacked/
ADD --chown=5:6 archive.tar /unpacked-chown/
RUN chown 3:4 /app/etc/single && chown -h 5:6 /app/etc/link && echo more >> /local/local.txt \\
 && ln /app/bin/tool /app/bin/tool2 && chmod u+s /local/tool.sh && touch /opt/old/a.txt
USER app
RUN echo u > /home/app/u.txt && mkdir /home/app/d && ln -s u.txt /home/app/d/l
USER 2000:3000
RUN cd / && stat -c '%u:%g %a %n' app/etc/made.txt app/etc/single app/owned u2000/f chowned/hard \\
 unpacked/pkg/file > /tmp/seen-by-2000.txt
USER root
RUN cd / && stat -c '%u:%g %a %n' app/etc/made.txt app/etc/hard app/etc/single app/owned app/owned/f app/bin/tool \\
 home/app/by-root u2000/f chowned/hard unpacked/pkg/file unpacked/pkg/hard unpacked-chown/pkg/suid opt/old/a.txt \\
 > /owners.txt
"""

FILESYSTEM_STEPS = sum(1 for line in STAGES.splitlines() if line.startswith(("RUN ", "COPY ", "ADD ")))

# Steps on top of layers that came from the registry cache: a copy from a stage made of them, the owners a
# RUN sees, and the files it adds.
ON_TOP = """\
COPY --from=build /out/owned /owned-again
RUN cd / && stat -c '%u:%g %a %n' app/etc/single app/owned/f unpacked/pkg/file u2000/f owned-again/f \\
 > /owners-on-top.txt && touch /app/etc/single && echo top > /top.txt
"""


def _archive() -> bytes:
    """A tar for ADD to unpack: owners of its own, a setuid file, a hard link and a symlink."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, mode: int, uid: int, gid: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 1600000000
            info.linkname, info.size = link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("pkg", tarfile.DIRTYPE, 0o755, 123, 456)
        add("pkg/file", tarfile.REGTYPE, 0o640, 123, 456, b"in the archive\n")
        add("pkg/suid", tarfile.REGTYPE, 0o4755, 0, 0, b"#!/bin/sh\n")
        add("pkg/mine", tarfile.REGTYPE, 0o644, BUILDER_UID, BUILDER_UID, b"the builder's ids\n")
        add("pkg/hard", tarfile.LNKTYPE, 0o640, 123, 456, link="pkg/file")
        add("pkg/sym", tarfile.SYMTYPE, 0o777, 9, 9, link="file")
    return buffer.getvalue()


@contextmanager
def _context(base: str, on_top: bool = False) -> Iterator[Path]:
    with open_directory("dockyard-ownership-") as root:
        ctx = write_context(root / "ctx", {"Dockerfile": STAGES.format(base=base) + (ON_TOP if on_top else ""),
                                           "local.txt": "local\n", "tool.sh": "#!/bin/sh\necho tool\n",
                                           "archive.tar": _archive()})
        os.chmod(ctx / "tool.sh", 0o755)
        yield ctx


def _layers(layout: Path) -> tuple[str, list[list[tuple]], dict, dict[str, str]]:
    """(manifest digest, every layer's tar entries as (name, type, mode, uid, gid, content, link, device,
    xattrs), config, the text of the image's .txt files)."""
    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(blob(digest))
    layers, texts = [], {}
    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        if layer["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        entries = []
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                content = tar.extractfile(m).read() if m.isreg() else None
                if content is not None and m.name.endswith(".txt"):
                    texts[m.name] = content.decode()
                xattrs = tuple(sorted((k, v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")))
                entries.append((m.name, m.type, oct(m.mode), m.uid, m.gid,
                                hashlib.sha256(content).hexdigest() if content is not None else None, m.linkname,
                                (m.devmajor, m.devminor) if m.ischr() or m.isblk() else None, xattrs))
        layers.append(entries)
    return digest, layers, json.loads(blob(manifest["config"]["digest"])), texts


def _image_files(layers: list[list[tuple]]) -> dict[str, tuple]:
    """The image's files (whiteouts applied): path -> (type, mode, uid, gid, content, link)."""
    files: dict[str, tuple] = {}
    for entries in layers:
        for name, kind, mode, uid, gid, content, link, *_ in entries:
            name = name.strip("/").removeprefix("./")
            parent, _, base = name.rpartition("/")
            if base.startswith(".wh."):
                gone = f"{parent}/{base[4:]}".strip("/") if base != ".wh..wh..opq" else parent
                for key in [k for k in files if k == gone or k.startswith(gone + "/")]:
                    if base == ".wh..wh..opq" and key == gone:
                        continue
                    del files[key]
                continue
            files[name] = (kind, mode, uid, gid, content, link)
    return files


class Builder:
    """Runs `dockyard build` as one user, with a home, a cache directory and an output directory of its own."""

    def __init__(self, shared: Path, uid: int | None, gid: int | None = None):
        self.uid, self.gid = uid, gid if gid is not None else uid
        owner = (uid, self.gid) if uid is not None else (0, 0)
        name = f"{uid if uid is not None else 'root'}-{len(list(shared.iterdir()))}"
        self.home = owned_directory(shared, f"home-{name}", *owner)
        self.out = owned_directory(shared, f"out-{name}", *owner)

    def build(self, context: Path, name: str, *args: str, cache: str = "cache") -> tuple[CliResult, Path]:
        out = self.out / name
        env = {"HOME": str(self.home), "XDG_CACHE_HOME": str(self.home / "xdg"), "DOCKYARD_WORK_DIR": str(self.home),
               "SOURCE_DATE_EPOCH": EPOCH}
        argv = ["build", "--progress=plain", "--cache-dir", str(self.home / cache), "--output",
                f"type=oci,dest={out}", *args, str(context)]
        if self.uid is None:
            return dockyard(*argv, env=env), out
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", sys.executable, "-m",
               "dockyard", *argv]
        proc = subprocess.run(cmd, env={**os.environ, "CI": "true", **env}, capture_output=True, text=True,
                              timeout=600)
        return CliResult(proc.returncode, proc.stdout, proc.stderr), out


def _reference(busybox_base: str, shared: Path) -> dict:
    root = Builder(shared, None)
    with _context(busybox_base) as ctx:
        result, out = root.build(ctx, "plain")
        assert result.returncode == 0, result.stderr
        assert "isolation: namespaces" in result.stderr
        plain = _layers(out)
    with _context(busybox_base, on_top=True) as ctx:
        result, out = root.build(ctx, "on-top")
        assert result.returncode == 0, result.stderr
        on_top = _layers(out)
    return {"plain": plain, "on-top": on_top}


@pytest.fixture(scope="module")
def shared() -> Iterator[Path]:
    with open_directory("dockyard-ownership-builds-") as path:
        yield path


@pytest.fixture(scope="module")
def reference(busybox_base, shared) -> dict:
    return _reference(busybox_base, shared)


def test_the_reference_has_the_owners_docker_gives(reference):
    """A comparison with a wrong reference would pass too: it says what docker's image says."""
    _, layers, _, _ = reference["plain"]
    files = _image_files(layers)
    expected = {
        "app/etc/made.txt": (0, 0), "app/etc/single": (3, 4), "app/etc/link": (5, 6), "app/owned/f": (33, 44),
        "app/bin/tool": (0, 0), "home/app": (1000, 1000), "home/app/.profile": (1000, 1000),
        "home/app/by-root": (0, 0), "home/app/mine/f": (1000, 1000), "home/app/mine/l": (1000, 1000),
        "home/app/u.txt": (1000, 1000), "home/app/d": (1000, 1000), "u2000/f": (2000, 3000),
        "chowned/hard": (7, 8), "local/local.txt": (0, 0), "local/mine.txt": (1000, 1000),
        "unpacked/pkg/file": (123, 456), "unpacked/pkg/mine": (1000, 1000), "unpacked/pkg/sym": (9, 9),
        "unpacked-chown/pkg/file": (5, 6), "opt/old/a.txt": (0, 0)}
    assert {path: files[path][2:4] for path in expected} == expected
    assert files["app/bin/tool"][1] == oct(0o4755) and files["app/owned"][1] == oct(0o2750)
    assert files["local/tool.sh"][1] == oct(0o4755) and files["unpacked/pkg/suid"][1] == oct(0o4755)
    # Hard links stay hard links (the tar's second name refers to its first).
    pairs = {frozenset((entry[0], entry[6])) for layer in layers for entry in layer if entry[1] == tarfile.LNKTYPE}
    assert {frozenset(pair) for pair in (("app/etc/hard", "app/etc/made.txt"),
                                         ("app/bin/tool2", "app/bin/tool"),
                                         ("home/app/mine/h", "home/app/mine/f"),
                                         ("unpacked/pkg/hard", "unpacked/pkg/file"))} <= pairs


def _assert_same_image(ours: tuple, reference: tuple) -> None:
    digest, layers, config, texts = ours
    ref_digest, ref_layers, ref_config, ref_texts = reference
    for name, text in ref_texts.items():  # what the RUN steps saw
        assert texts.get(name, "").splitlines() == text.splitlines(), f"{name}:\n{texts.get(name)}\nroot's:\n{text}"
    assert len(layers) == len(ref_layers)
    for index, (entries, ref_entries) in enumerate(zip(layers, ref_layers)):
        extra, missing = sorted(set(entries) - set(ref_entries)), sorted(set(ref_entries) - set(entries))
        assert entries == ref_entries, f"layer {index}: not in root's {extra}, only in root's {missing}"
    assert config == ref_config
    assert digest == ref_digest


def _nonroot_builds(builder: Builder, busybox_base: str, registry, reference: dict, mode: str) -> None:
    cache_ref = f"{registry.host}/cache/ownership-{mode}:1"
    with _context(busybox_base) as ctx:
        first, out = builder.build(ctx, "first", "--cache-to", f"type=registry,ref={cache_ref},mode=max")
        assert first.returncode == 0, first.stderr
        assert f"isolation: {mode}" in first.stderr, first.stderr
        _assert_same_image(_layers(out), reference["plain"])

        again, out = builder.build(ctx, "again")
        assert again.returncode == 0, again.stderr
        assert again.stderr.count(" CACHED") == FILESYSTEM_STEPS, again.stderr
        _assert_same_image(_layers(out), reference["plain"])

    with _context(busybox_base, on_top=True) as ctx:
        fresh, out = builder.build(ctx, "from-registry", "--cache-from", f"type=registry,ref={cache_ref}",
                                   cache="fresh-cache")
        assert fresh.returncode == 0, fresh.stderr
        assert fresh.stderr.count(" CACHED (from ") == FILESYSTEM_STEPS, fresh.stderr  # the step on top runs
        ours = _layers(out)
        _assert_same_image(ours, reference["on-top"])
    assert ours[3]["owners-on-top.txt"].splitlines() == [
        "3:4 644 app/etc/single", "33:44 644 app/owned/f", "123:456 640 unpacked/pkg/file", "2000:3000 644 u2000/f",
        "33:44 644 owned-again/f"]


def test_the_proot_mode_gives_root_s_images(registry, busybox_base, reference, shared):
    builder = Builder(shared, BUILDER_UID)
    _nonroot_builds(builder, busybox_base, registry, reference, "proot")


def test_the_user_namespace_mode_gives_root_s_images(registry, busybox_base, reference, shared):
    with user_with_subordinate_ids() as (uid, gid):
        _nonroot_builds(Builder(shared, uid, gid), busybox_base, registry, reference, "namespaces")



# The fidelity base (tests/support/images.py): device nodes, a FIFO, setuid/setgid bits, a file capability
# (security.capability), a file of uid 1000 (the builder's), whiteouts; ADD unpacks more of the same.
SPECIALS = """\
FROM {fidelity} AS specials
RUN echo changed >> /fid/owned && touch /fid/suid && mv /fid/sgid /fid/sgid-moved

FROM {base}
COPY --from=specials /fid /fid
ADD specials.tar /added/
RUN touch /fid/sgid-moved /added/cap
"""


def _specials_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, uid in (("null", tarfile.CHRTYPE, 0o666, 0), ("cap", tarfile.REGTYPE, 0o755, 0),
                                      ("mine", tarfile.REGTYPE, 0o640, BUILDER_UID)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, 5, 1600000000
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            if name == "cap":  # cap_net_bind_service=ep
                info.pax_headers = {"SCHILY.xattr.security.capability":
                                    b"\x01\x00\x00\x02\x00\x04\x00\x00" .decode("latin-1") + "\x00" * 12}
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def test_device_nodes_capabilities_and_special_bits_survive_a_non_root_builder(registry, busybox_base,
                                                                               fidelity_base, shared):
    with open_directory("dockyard-specials-") as root:
        ctx = write_context(root / "ctx", {"Dockerfile": SPECIALS.format(fidelity=fidelity_base, base=busybox_base),
                                           "specials.tar": _specials_archive()})
        result, out = Builder(shared, None).build(ctx, "specials")
        assert result.returncode == 0, result.stderr
        reference = _layers(out)
        files = _image_files(reference[1])
        assert files["fid/dev/null"][0] == tarfile.CHRTYPE and files["added/null"][0] == tarfile.CHRTYPE
        assert files["fid/owned"][2:4] == (1000, 50) and files["fid/sgid-moved"][1:4] == (oct(0o2755), 0, 50)
        assert any(entry[0] == "added/cap" and entry[8] for entry in reference[1][-1])  # the RUN's layer
        result, out = Builder(shared, BUILDER_UID).build(ctx, "specials")
        assert result.returncode == 0, result.stderr
        assert "isolation: proot" in result.stderr
        _assert_same_image(_layers(out), reference)
        with user_with_subordinate_ids() as (uid, gid):
            result, out = Builder(shared, uid, gid).build(ctx, "specials")
        assert result.returncode == 0, result.stderr
        _assert_same_image(_layers(out), reference)


def _as_files(files: dict[str, tuple]) -> dict[str, tuple]:
    """Tar entries as the files they make: permission bits only, a hard link as the file it names (which
    name of a file a layer writes first is the builder's choice)."""
    made = {}
    for path, (kind, mode, uid, gid, content, link) in files.items():
        if kind == tarfile.LNKTYPE:
            kind, content, link = tarfile.REGTYPE, files[link.strip("/")][4], ""
        made[path] = (kind, oct(int(mode, 8) & 0o7777), uid, gid, content, link)
    return made


@pytest.mark.slow
def test_the_reference_is_buildah_s_image(reference, busybox_base, tmp_path):
    """The root build the others are compared with gives buildah's files (the mount points buildah's RUN
    leaves behind aside, tests/support/oracle.py)."""
    with _context(busybox_base) as ctx:
        oracle.buildah_build(ctx, ctx / "Dockerfile", "localhost/ownership:1", tmp_path / "buildah", push=False)
        layout = oracle.buildah_export_oci("localhost/ownership:1", tmp_path / "buildah", tmp_path / "oci")
    theirs = _as_files(_image_files(_layers(layout)[1]))
    ours = _as_files(_image_files(reference["plain"][1]))
    assert ours["app/owned/f"][2:4] == (33, 44)
    stubs = {path.lstrip("/") for path in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run", "/proc",
                                             "/sys", "/dev")}
    # BuildKit (v0.23 on) applies ADD --chown to the files a tar unpacks, as dockyard does; buildah 1.28 keeps
    # the archive's owners there (and owners.txt, which lists one of them, differs with it).
    ignored = stubs | {path for path in ours if path.startswith("unpacked-chown/")} | {"owners.txt"}
    assert ours["unpacked-chown/pkg/file"][2:4] == (5, 6) and theirs["unpacked-chown/pkg/file"][2:4] == (123, 456)
    differences = {path: (ours.get(path), theirs.get(path)) for path in set(ours) | set(theirs)
                   if ours.get(path) != theirs.get(path) and path not in ignored}
    assert differences == {}, "\n".join(f"{k}: {v}" for k, v in sorted(differences.items()))


# The builder's own uid as an image owner: proot swaps the step's id (0) with proot's own uid in chown and stat,
# so without dockyard's care `chown 1000` and `chown root` would come out alike for a builder of uid 1000, and a
# file of uid 1000 would look root's to a later step (proot_supervisor.py says how they are told apart).
OWN_UID = """\
FROM {base}
RUN echo a > /to-app && chown 1000:1000 /to-app && echo b > /to-root && chown 1000:1000 /to-root \\
 && chown root:root /to-root && echo c > /app-then-gid && chown 1000 /app-then-gid && chgrp 0 /app-then-gid \\
 && mkdir /d && chown app:app /d && touch /d/made-by-root
USER app
RUN echo u > /home/app/by-app.txt && chown app:app /home/app/by-app.txt
USER root
RUN cd / && stat -c '%u:%g %n' to-app to-root app-then-gid d d/made-by-root home/app home/app/by-app.txt \\
 home/app/.profile > /own-uid-seen.txt
"""


def test_chown_to_the_builder_s_own_uid_is_told_from_chown_to_root(busybox_base, shared):
    with open_directory("dockyard-own-uid-") as root:
        ctx = write_context(root / "ctx", {"Dockerfile": OWN_UID.format(base=busybox_base)})
        result, out = Builder(shared, None).build(ctx, "own-uid")
        assert result.returncode == 0, result.stderr
        reference = _layers(out)
        assert reference[3]["own-uid-seen.txt"].splitlines() == [
            "1000:1000 to-app", "0:0 to-root", "1000:0 app-then-gid", "1000:1000 d", "0:0 d/made-by-root",
            "1000:1000 home/app", "1000:1000 home/app/by-app.txt", "1000:1000 home/app/.profile"]
        result, out = Builder(shared, BUILDER_UID).build(ctx, "own-uid")
        assert result.returncode == 0, result.stderr
        assert "isolation: proot" in result.stderr
        _assert_same_image(_layers(out), reference)
