"""--sbom and --provenance end to end: a two-platform build of a Debian-like base (tests/support/sbom_images.py)
pushed to the loopback registry, read back with skopeo and plain HTTP: the index lists one attestation manifest
per platform manifest as BuildKit writes them (docs/attestations/attestation-storage.md in moby/buildkit), the
SBOM's deb packages are what dpkg-query reads from the image's own status file, the SPDX validates with
spdx-tools, the provenance names the base image's digest, the Dockerfile's digest and the ADD URL's checksum;
build args appear in max mode only; a --secret's value appears nowhere."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import subprocess
import threading
import urllib.request

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.e2e.test_sbom import deb_packages, spdx_errors
from tests.support.sbom_images import (debian_image_layers, dpkg_query, status_text, upgraded_status,
                                       write_index_layout)

EPOCH = "1704067200"
SECRET_VALUE = "s3cr3t-value-that-must-not-leak"


@pytest.fixture(scope="module")
def debian_index(registry, tmp_path_factory):
    """A Debian-like base for linux/amd64 and linux/arm64 in the registry: (reference, platform digests)."""
    layout = tmp_path_factory.mktemp("debian-index") / "layout"
    digests = write_index_layout(layout, [(debian_image_layers(), "amd64"), (debian_image_layers(), "arm64")])
    reference = f"{registry.host}/attest/debian-base:1"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:1",
                    f"docker://{reference}"], check=True, capture_output=True, timeout=300)
    index = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
                           check=True, capture_output=True, timeout=120).stdout
    return reference, {"index": "sha256:" + hashlib.sha256(index).hexdigest(),
                       **dict(zip(("linux/amd64", "linux/arm64"), digests))}


@pytest.fixture(scope="module")
def file_server(tmp_path_factory):
    """A loopback HTTP server of one file, for ADD URL."""
    root = tmp_path_factory.mktemp("served")
    (root / "payload.txt").write_text("downloaded by ADD\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/payload.txt", hashlib.sha256(
        (root / "payload.txt").read_bytes()).hexdigest()
    server.shutdown()


def get(registry, repository: str, what: str, digest: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(f"http://{registry.host}/v2/{repository}/{what}/{digest}",
                                     headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


def raw_index(reference: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out)


def statements(registry, repository: str, index: dict) -> dict[str, dict[str, list[dict]]]:
    """For each platform manifest digest: its attestation manifest's statements by predicate type."""
    found: dict[str, dict[str, list[dict]]] = {}
    for entry in index["manifests"]:
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") != "attestation-manifest":
            continue
        assert entry["platform"] == {"architecture": "unknown", "os": "unknown"}
        manifest = json.loads(get(registry, repository, "manifests", entry["digest"],
                                  "application/vnd.oci.image.manifest.v1+json"))
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        # BuildKit's attestationsConfig: an image config of platform unknown/unknown, the statements as diff_ids.
        assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        config = json.loads(get(registry, repository, "blobs", manifest["config"]["digest"]))
        assert config == {"architecture": "unknown", "os": "unknown", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in manifest["layers"]]}}
        by_type: dict[str, list[dict]] = {}
        for layer in manifest["layers"]:
            assert layer["mediaType"] == "application/vnd.in-toto+json"
            body = json.loads(get(registry, repository, "blobs", layer["digest"]))
            assert layer["annotations"] == {"in-toto.io/predicate-type": body["predicateType"]}
            assert body["_type"] == "https://in-toto.io/Statement/v1"
            by_type.setdefault(body["predicateType"], []).append(body)
        found[annotations["vnd.docker.reference.digest"]] = by_type
    return found


def everything_pushed(registry, repository: str, index: dict) -> bytes:
    """Every manifest and blob the index reaches, concatenated (to look for what must not be there)."""
    parts = [json.dumps(index).encode()]
    for entry in index["manifests"]:
        manifest = get(registry, repository, "manifests", entry["digest"], entry["mediaType"])
        parts.append(manifest)
        doc = json.loads(manifest)
        for blob in [doc["config"], *doc["layers"]]:
            data = get(registry, repository, "blobs", blob["digest"])
            if blob["mediaType"].endswith("gzip"):
                import gzip

                data = gzip.decompress(data)
            parts.append(data)
    return b"\n".join(parts)


def test_sbom_and_max_provenance_of_a_two_platform_push(registry, debian_index, file_server, tmp_path):
    base, base_digests = debian_index
    url, url_sha256 = file_server
    context = write_context(tmp_path / "context", {
        "Dockerfile": f"FROM {base}\nARG GREETING\nCOPY hello.txt /hello.txt\nADD {url} /payload.txt\n",
        "hello.txt": "hello\n"})
    target = f"{registry.host}/attest/app:1"
    metadata_file = tmp_path / "metadata.json"
    build = dockyard("build", "-q", "--push", "-t", target, "--platform", "linux/amd64,linux/arm64",
                     "--sbom", "--provenance", "mode=max,builder-id=https://ci.example/run/7",
                     "--build-arg", "GREETING=hello-from-max", "--metadata-file", str(metadata_file),
                     str(context), env={"SOURCE_DATE_EPOCH": EPOCH})
    assert build.returncode == 0, build.stderr
    index = raw_index(target)
    platforms = [e for e in index["manifests"] if e["platform"]["os"] != "unknown"]
    attestation_entries = index["manifests"][len(platforms):]
    assert [f"{e['platform']['os']}/{e['platform']['architecture']}" for e in platforms] == ["linux/amd64",
                                                                                             "linux/arm64"]
    assert [e["annotations"]["vnd.docker.reference.digest"] for e in attestation_entries] == [
        e["digest"] for e in platforms]

    found = statements(registry, "attest/app", index)
    expected_packages = dpkg_query(status_text(upgraded_status()), tmp_path)
    dockerfile_digest = hashlib.sha256((context / "Dockerfile").read_bytes()).hexdigest()
    for entry in platforms:
        platform = f"linux/{entry['platform']['architecture']}"
        by_type = found[entry["digest"]]
        assert sorted(by_type) == ["https://slsa.dev/provenance/v0.2", "https://spdx.dev/Document"]
        sbom = by_type["https://spdx.dev/Document"][0]
        assert sbom["subject"] == [{"name": f"pkg:docker/{registry.host}/attest/app@1?platform="
                                            f"{platform.replace('/', '%2F')}",
                                    "digest": {"sha256": entry["digest"].split(":")[1]}}]
        spdx_file = tmp_path / f"{entry['platform']['architecture']}.spdx.json"
        spdx_file.write_text(json.dumps(sbom["predicate"]))
        assert spdx_errors(spdx_file) == []
        assert deb_packages(sbom["predicate"]) == expected_packages

        provenance = by_type["https://slsa.dev/provenance/v0.2"][0]["predicate"]
        assert provenance["builder"] == {"id": "https://ci.example/run/7"}
        assert provenance["buildType"] == "https://mobyproject.org/buildkit@v1"
        materials = {m["uri"]: m["digest"] for m in provenance["materials"]}
        base_purl = f"pkg:docker/{registry.host}/attest/debian-base@1?platform={platform.replace('/', '%2F')}"
        # As BuildKit pins a base: the digest its reference resolved to (here an index's).
        assert materials[base_purl] == {"sha256": base_digests["index"].split(":")[1]}
        assert materials[url] == {"sha256": url_sha256}
        invocation = provenance["invocation"]
        assert invocation["configSource"] == {"digest": {"sha256": dockerfile_digest}, "entryPoint": "Dockerfile"}
        assert invocation["parameters"]["args"]["build-arg:GREETING"] == "hello-from-max"
        assert invocation["parameters"]["args"]["platform"] == platform
        assert provenance["metadata"]["buildStartedOn"] == "2024-01-01T00:00:00Z"
        assert provenance["metadata"]["reproducible"] is True

    metadata = json.loads(metadata_file.read_text())
    assert [(a["platform"], a["subject"]) for a in metadata["attestations"]] == [
        (f"linux/{e['platform']['architecture']}", e["digest"]) for e in platforms]
    assert metadata["attestations"][0]["predicateTypes"] == ["https://spdx.dev/Document",
                                                             "https://slsa.dev/provenance/v0.2"]

    # The same build again (SOURCE_DATE_EPOCH): the same index, attestations included.
    again = dockyard("build", "-q", "--push", "-t", target, "--platform", "linux/amd64,linux/arm64",
                     "--sbom", "--provenance", "mode=max,builder-id=https://ci.example/run/7",
                     "--build-arg", "GREETING=hello-from-max", str(context), env={"SOURCE_DATE_EPOCH": EPOCH})
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == build.stdout.strip()


def test_min_provenance_v1_has_no_build_args_and_no_secret(registry, debian_index, tmp_path):
    base, base_digests = debian_index
    secret = tmp_path / "token.txt"
    secret.write_text(SECRET_VALUE)
    context = write_context(tmp_path / "context", {
        "Dockerfile": f"FROM {base}\nARG GREETING\n"
                      "RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null && echo ok > /ok\n"})
    # The context is a git checkout: its commit is a material.
    git_env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for command in (["init", "-q"], ["add", "Dockerfile"], ["commit", "-qm", "context"]):
        subprocess.run(["git", "-C", str(context), *command], check=True, env=git_env, capture_output=True)
    commit = subprocess.run(["git", "-C", str(context), "rev-parse", "HEAD"], check=True, env=git_env,
                            capture_output=True, text=True).stdout.strip()
    target = f"{registry.host}/attest/secret:1"
    build = dockyard("build", "-q", "--push", "-t", target, "--platform", "linux/amd64",
                     "--attest", "type=provenance,mode=min,version=v1", "--secret", f"id=token,src={secret}",
                     "--build-arg", "GREETING=not-in-min", str(context))
    assert build.returncode == 0, build.stderr
    index = raw_index(target)
    # A single-platform build with attestations is an index (as buildx).
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(index["manifests"]) == 2
    found = statements(registry, "attest/secret", index)
    (by_type,) = found.values()
    provenance = by_type["https://slsa.dev/provenance/v1"][0]["predicate"]
    request = provenance["buildDefinition"]["externalParameters"]["request"]
    assert not any(k.startswith("build-arg:") for k in request["args"])
    assert "secrets" not in request
    deps = {d["uri"]: d["digest"] for d in provenance["buildDefinition"]["resolvedDependencies"]}
    assert deps[f"pkg:docker/{registry.host}/attest/debian-base@1?platform=linux%2Famd64"] == {
        "sha256": base_digests["index"].split(":")[1]}
    assert deps[context.resolve().as_uri()] == {"sha1": commit}
    assert provenance["buildDefinition"]["externalParameters"]["configSource"]["uri"] == context.resolve().as_uri()
    pushed = everything_pushed(registry, "attest/secret", index)
    assert SECRET_VALUE.encode() not in pushed
    assert base64.b64encode(SECRET_VALUE.encode()) not in pushed
    # (The image's own history names the build arg a RUN saw, as docker's does; the provenance must not.)
    assert "not-in-min" not in json.dumps(provenance)


def test_oci_layout_keeps_attestations_and_docker_tarball_has_none(registry, debian_index, tmp_path):
    base, _ = debian_index
    context = write_context(tmp_path / "context", {"Dockerfile": f"FROM {base}\nCOPY Dockerfile /Dockerfile\n"})
    layout = tmp_path / "layout"
    tarball = tmp_path / "image.tar"
    build = dockyard("build", "--progress", "plain", "--platform", "linux/amd64", "--sbom", "--provenance", "true",
                     "-t", "app:1",
                     "--output", f"type=oci,dest={layout}", "--output", f"type=docker,dest={tarball}", str(context))
    assert build.returncode == 0, build.stderr
    assert "holds no attestations" in build.stderr
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    index = json.loads((layout / "blobs" / "sha256" / top["digest"].split(":")[1]).read_bytes())
    kinds = [(e.get("annotations") or {}).get("vnd.docker.reference.type") for e in index["manifests"]]
    assert kinds == [None, "attestation-manifest"]
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][1]["digest"].split(":")[1]).read_bytes())
    assert [l["annotations"]["in-toto.io/predicate-type"] for l in manifest["layers"]] == [
        "https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"]
    import tarfile

    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "manifest.json" in names and not any("in-toto" in n for n in names)


def test_scan_stage_adds_an_sbom_of_each_intermediate_stage(registry, debian_index, tmp_path):
    base, _ = debian_index
    dist_info = "/usr/lib/python3/dist-packages/six-1.16.0.dist-info"
    context = write_context(tmp_path / "context", {"Dockerfile": (
        f"FROM {base} AS builder\n"
        f"COPY METADATA {dist_info}/METADATA\n"
        f"FROM {base}\nCOPY --from=builder /etc/os-release /builder-os-release\n"),
        "METADATA": "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n"})

    def sboms(tag: str, *extra: str) -> list[dict]:
        target = f"{registry.host}/attest/stages:{tag}"
        build = dockyard("build", "-q", "--push", "-t", target, "--sbom", *extra, str(context))
        assert build.returncode == 0, build.stderr
        (by_type,) = statements(registry, "attest/stages", raw_index(target)).values()
        return [s["predicate"] for s in by_type["https://spdx.dev/Document"]]

    (final,) = sboms("plain")
    assert "six" not in {p["name"] for p in final["packages"]}
    final, builder = sboms("scanned", "--build-arg", "BUILDKIT_SBOM_SCAN_STAGE=true")
    assert "six" in {p["name"] for p in builder["packages"]} and "(stage builder)" in builder["name"]
    assert "six" not in {p["name"] for p in final["packages"]}
    assert len(sboms("named", "--build-arg", "BUILDKIT_SBOM_SCAN_STAGE=other")) == 1


def test_sbom_output_files_cyclonedx_per_platform(registry, debian_index, tmp_path):
    """--sbom-output writes the same catalog as the attestation, in CycloneDX too, a file per platform."""
    base, _ = debian_index
    context = write_context(tmp_path / "context", {"Dockerfile": f"FROM {base}\nCOPY Dockerfile /Dockerfile\n"})
    out = tmp_path / "out"
    build = dockyard("build", "-q", "--platform", "linux/amd64,linux/arm64", "--sbom-output",
                     f"cyclonedx-json={out}/sbom.cdx.json", "--sbom-output", f"spdx-json={out}/{{platform}}.spdx.json",
                     "--output", f"type=oci,dest={tmp_path / 'layout'}", str(context))
    assert build.returncode == 0, build.stderr
    assert sorted(p.name for p in out.iterdir()) == ["linux-amd64.spdx.json", "linux-arm64.spdx.json",
                                                      "sbom.linux-amd64.cdx.json", "sbom.linux-arm64.cdx.json"]
    expected = dpkg_query(status_text(upgraded_status()), tmp_path)
    for arch in ("amd64", "arm64"):
        bom = json.loads((out / f"sbom.linux-{arch}.cdx.json").read_text())
        assert bom["bomFormat"] == "CycloneDX"
        debs = {(c["name"], c["version"]) for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/")}
        assert debs == {(name, version) for name, version, _ in expected}
        assert spdx_errors(out / f"linux-{arch}.spdx.json") == []
    # No attestation was asked for: the layout's index holds the two images only.
    top = json.loads((tmp_path / "layout" / "index.json").read_text())["manifests"][0]
    index = json.loads((tmp_path / "layout" / "blobs" / "sha256" / top["digest"].split(":")[1]).read_bytes())
    assert len(index["manifests"]) == 2


def test_attestations_turn_oci_media_types_on(registry, debian_index, tmp_path):
    """As BuildKit's exporter (EnableOCITypes("attestations")): oci-mediatypes=false gives way to the OCI index
    attestations need, with a warning."""
    base, _ = debian_index
    context = write_context(tmp_path / "context", {"Dockerfile": f"FROM {base}\nCOPY Dockerfile /Dockerfile\n"})
    layout = tmp_path / "layout"
    build = dockyard("build", "--progress", "plain", "--platform", "linux/amd64", "--provenance=true",
                     "--output", f"type=oci,dest={layout},oci-mediatypes=false", str(context))
    assert build.returncode == 0, build.stderr
    assert "attestations need OCI media types" in build.stderr
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
    index = json.loads((layout / "blobs" / "sha256" / top["digest"].split(":")[1]).read_bytes())
    assert [e["mediaType"] for e in index["manifests"]] == ["application/vnd.oci.image.manifest.v1+json"] * 2


def test_scan_context_adds_the_contexts_packages(registry, debian_index, tmp_path):
    base, _ = debian_index
    context = write_context(tmp_path / "context", {
        "Dockerfile": f"FROM {base}\nCOPY app.js /app.js\n",
        "app.js": "require('left-pad')\n",
        "node_modules/left-pad/package.json": json.dumps({"name": "left-pad", "version": "1.3.0",
                                                          "license": "WTFPL"}),
        "ignored/node_modules/hidden/package.json": json.dumps({"name": "hidden", "version": "1.0.0"}),
        ".dockerignore": "ignored\n"})
    target = f"{registry.host}/attest/context:1"
    build = dockyard("build", "-q", "--push", "-t", target, "--sbom", "--build-arg",
                     "BUILDKIT_SBOM_SCAN_CONTEXT=true", str(context))
    assert build.returncode == 0, build.stderr
    (by_type,) = statements(registry, "attest/context", raw_index(target)).values()
    final, scanned = [s["predicate"] for s in by_type["https://spdx.dev/Document"]]
    assert "(build context)" in scanned["name"]
    assert {p["name"] for p in scanned["packages"][1:]} == {"left-pad"}
    assert "left-pad" not in {p["name"] for p in final["packages"]}
    spdx_file = tmp_path / "context.spdx.json"
    spdx_file.write_text(json.dumps(scanned))
    assert spdx_errors(spdx_file) == []
