"""A Dockerfile that uses the features kaniko never had builds, and its secret leaks nowhere.

Heredocs, a secret mount, a cache mount, a bind mount from another stage, `COPY --link --chmod`, and ADD of a
local tarball, in one build pushed to the loopback registry. The secret's value is then searched for in every
byte dockyard produced: each layer's files (decompressed), the config and its history, the manifest, the
metadata file, and everything printed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

from dockyard.image.compression import open_decompressed

from tests.e2e.helpers import dockyard, write_context
from tests.support import oracle, tree

SECRET = "s3cr3t-value-8c1f0e"

DOCKERFILE = """\
# syntax=docker/dockerfile:1.7
ARG BASE
FROM ${BASE} AS tools
RUN <<EOF
mkdir -p /tools
echo 'echo built-by-tools' > /tools/hello.sh
EOF

FROM ${BASE}
ARG GREETING=hello
# The secret is checked against its hash: the value itself must not be passed in any other way.
ARG SECRET_SHA256
RUN --mount=type=secret,id=token,required=true \\
    test "$(sha256sum < /run/secrets/token | cut -d' ' -f1)" = "$SECRET_SHA256" && echo "secret ok" > /secret-check
RUN --mount=type=secret,id=token,env=TOKEN \\
    test -n "$TOKEN" && echo "env secret ok" > /secret-env-check
RUN --mount=type=cache,target=/var/cache/app \\
    echo run >> /var/cache/app/runs && wc -l < /var/cache/app/runs > /cache-runs
RUN --mount=type=bind,from=tools,source=/tools,target=/mnt/tools \\
    sh /mnt/tools/hello.sh > /from-tools.txt
COPY --link --chmod=0750 run.sh /app/run.sh
ADD bundle.tar.gz /opt/bundle/
COPY <<EOF /etc/greeting
${GREETING}, heredoc
EOF
RUN cat <<'EOF' > /app/literal.txt
$GREETING stays literal
EOF
"""


def _bundle() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        data = b"inside the tarball\n"
        info = tarfile.TarInfo("data/readme.txt")
        info.size, info.mode = len(data), 0o644
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _layer_files(oci_dir) -> list[bytes]:
    """The content of every regular file in every layer of the image in an OCI layout (one image)."""
    index = json.loads((oci_dir / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((oci_dir / "blobs/sha256" / manifest_digest).read_bytes())
    contents = []
    for layer in manifest["layers"]:
        with open(oci_dir / "blobs/sha256" / layer["digest"].split(":", 1)[1], "rb") as raw:
            with tarfile.open(fileobj=open_decompressed(raw), mode="r|") as archive:
                for member in archive:
                    if member.isfile():
                        contents.append(member.name.encode() + b"\0" + archive.extractfile(member).read())
                    else:
                        contents.append(member.name.encode() + b"\0" + member.linkname.encode())
    return contents


def test_modern_dockerfile_builds_and_keeps_its_secret(registry, busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "run.sh": "#!/bin/sh\necho run\n"})
    (context / "bundle.tar.gz").write_bytes(_bundle())
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET)
    ref = f"{registry.host}/issue3/modern:latest"  # the OCI layout names it "latest", for umoci
    oci_dir = tmp_path / "oci"
    metadata = tmp_path / "metadata.json"
    cache_home = tmp_path / "cache-home"

    secret_sha256 = hashlib.sha256(SECRET.encode()).hexdigest()

    def build(*extra: str):
        return dockyard("build", "--progress=plain", *extra, "-t", ref, "--push", f"--output=type=oci,dest={oci_dir}",
                        f"--build-arg=BASE={busybox_base}", f"--build-arg=SECRET_SHA256={secret_sha256}",
                        f"--secret=id=token,src={secret_file}", f"--metadata-file={metadata}", str(context),
                        env={"XDG_CACHE_HOME": str(cache_home)})

    result = build()
    assert result.returncode == 0, result.stderr
    assert "built-in" in result.stderr  # the note that `# syntax=` is not fetched

    root = oracle.unpack(oci_dir, tmp_path / "bundle")
    files = tree.flatten(root)
    assert (root / "secret-check").read_text() == "secret ok\n"
    assert (root / "secret-env-check").read_text() == "env secret ok\n"
    assert "/run/secrets" not in files and "/run/secrets/token" not in files
    assert (root / "cache-runs").read_text().strip() == "1"
    assert "/var/cache/app" not in files  # the cache mount's content stays in the cache
    assert (root / "from-tools.txt").read_text() == "built-by-tools\n"
    assert "/mnt/tools" not in files and "/tools" not in files
    assert files["/app/run.sh"].mode == 0o750
    assert (root / "opt/bundle/data/readme.txt").read_text() == "inside the tarball\n"
    assert (root / "etc/greeting").read_text() == "hello, heredoc\n"
    assert (root / "app/literal.txt").read_text() == "$GREETING stays literal\n"

    # The secret is nowhere: not in a layer, the config (history included), the metadata, or the output.
    needle = SECRET.encode()
    assert not [c for c in _layer_files(oci_dir) if needle in c]
    for blob in (oci_dir / "blobs/sha256").iterdir():
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        assert needle not in data, f"the secret is in blob {blob.name}"
    assert SECRET not in json.dumps(oracle.inspect(ref))
    assert SECRET not in metadata.read_text()
    assert SECRET not in result.stdout and SECRET not in result.stderr

    # The cache mount persists between builds on this machine: the second build sees the first's file (with
    # --no-cache, or the step would come from the layer cache without running).
    again = build("--no-cache")
    assert again.returncode == 0, again.stderr
    root2 = oracle.unpack(oci_dir, tmp_path / "bundle2")
    assert (root2 / "cache-runs").read_text().strip() == "2"
