"""--annotation: manifest annotations, read back from the pushed manifest by skopeo (an independent client)."""

from __future__ import annotations

import json
import subprocess

from tests.e2e.helpers import dockyard, write_context


def test_manifest_annotations_are_pushed(registry, busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo hi > /hi\n"})
    ref = f"{registry.host}/annotated/app:1"
    result = dockyard("build", "-q", "--push", "-t", ref, "--annotation", "org.opencontainers.image.vendor=acme",
                      "--annotation", "manifest:com.example.note=a=b, c", str(context))
    assert result.returncode == 0, result.stderr
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    annotations = json.loads(raw)["annotations"]
    assert annotations["org.opencontainers.image.vendor"] == "acme"
    assert annotations["com.example.note"] == "a=b, c"  # the value keeps its own `=` and commas
    assert annotations["org.opencontainers.image.base.name"] == busybox_base  # the base's are kept


def test_index_level_annotation_is_refused(tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    result = dockyard("build", "--annotation", "index:org.opencontainers.image.vendor=acme", str(context))
    assert result.returncode == 2
    assert "only manifest annotations are supported" in result.stderr and "Traceback" not in result.stderr
