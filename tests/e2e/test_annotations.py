"""--annotation: manifest and index annotations (buildx's levels), read back from the pushed manifest and index
by skopeo (an independent client); annotations no output can hold are refused before the build."""

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


def test_index_annotation_makes_a_one_platform_push_an_index(registry, busybox_base, tmp_path):
    """buildx puts index annotations on the index its attestations make of a one-platform push; dockyard makes
    no attestation, so the index annotation itself makes the push an index of that one image."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo hi > /hi\n"})
    ref = f"{registry.host}/annotated/indexed:1"
    digest_file, metadata_file = tmp_path / "digest", tmp_path / "meta.json"
    result = dockyard("build", "-q", "--push", "-t", ref, "--annotation", "index:org.opencontainers.image.vendor=acme",
                      "--annotation", "manifest-descriptor,manifest:com.example.both=yes", "--digest-file",
                      str(digest_file), "--metadata-file", str(metadata_file), str(context))
    assert result.returncode == 0, result.stderr
    index = json.loads(skopeo_raw(f"docker://{ref}"))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index["annotations"] == {"org.opencontainers.image.vendor": "acme"}
    [entry] = index["manifests"]
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["annotations"] == {"com.example.both": "yes"}
    manifest = json.loads(skopeo_raw(f"docker://{registry.host}/annotated/indexed@{entry['digest']}"))
    assert manifest["annotations"]["com.example.both"] == "yes"
    index_digest = result.stdout.strip()
    assert digest_file.read_text().strip() == index_digest != entry["digest"]
    metadata = json.loads(metadata_file.read_text())
    assert metadata["containerimage.descriptor"]["mediaType"] == index["mediaType"]
    assert metadata["containerimage.digest"] == index_digest
    assert metadata["platforms"] == [{"platform": "linux/amd64", "digest": entry["digest"],
                                      "config_digest": manifest["config"]["digest"]}]


def test_annotations_that_cannot_be_written_are_refused_before_the_build(tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY Dockerfile /\n"})
    for args, message in [
            (["--annotation", "layer:org.opencontainers.image.vendor=acme"], "unknown annotation type 'layer'"),
            (["--annotation", "index:k=v", "--output", f"type=docker,dest={tmp_path / 'x.tar'}"],
             "writes no image index"),
            (["--annotation", "k=v", "--output", f"type=oci,dest={tmp_path / 'oci'},oci-mediatypes=false"],
             "cannot carry annotations")]:
        result = dockyard("build", *args, str(context))
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert "COPY" not in result.stderr  # refused before any step ran
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "oci").exists()


def skopeo_raw(ref: str) -> str:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", ref],
                          capture_output=True, text=True, timeout=60, check=True).stdout
