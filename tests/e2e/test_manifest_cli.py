"""`dockyard manifest create|inspect` from the command line against the real test registry.

The sources are single-platform images made by tests/support/images.py (one layer each; the second's config
says arm64: nothing runs them) and pushed by digest only, as the matrix jobs of a distributed multi-platform
build push them. The indexes are read back with skopeo (`inspect --raw`, `--override-arch`), and buildah's
`manifest create/add` is the oracle for the platform entries.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import requests

from core.image.blobs import BlobStore
from core.image.index import ATTESTATION_MANIFEST, REFERENCE_DIGEST, REFERENCE_TYPE
from core.image.model import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from core.image.reference import parse_reference
from core.registry.client import RegistryClient
from core.registry.push import push_image
from tests.e2e.helpers import dockyard
from tests.support.fault_proxy import FaultProxy
from tests.support.images import one_layer_image
from tests.support.oracle import SKOPEO_TIMEOUT, ToolError, buildah_manifest_index, run_tool
from tests.support.registry import RegistryServer, start_tls_htpasswd_registry

IN_TOTO = "application/vnd.in-toto+json"


# --- making sources ------------------------------------------------------------------------------------------

def push_platform_image(host: str, repo: str, arch: str, store_dir: Path, *, variant: str | None = None,
                        docker: bool = False, client: RegistryClient | None = None) -> str:
    """A one-layer image for linux/ARCH pushed to HOST/REPO by digest only; returns `HOST/REPO@sha256:...`."""
    store = BlobStore(store_dir)
    image = one_layer_image(store, arch=arch, manifest_type=DOCKER_MANIFEST if docker else OCI_MANIFEST)
    if variant:
        image = image.with_meta(variant=variant)
    ref = parse_reference(f"{host}/{repo}@{image.digest}")
    push_image(client or RegistryClient(), image, store, [ref])
    return str(ref)


def put_json(client: RegistryClient, repo: str, doc: dict, media_type: str) -> tuple[str, int]:
    """A manifest or index put by digest into REPO (a Reference's name); returns (digest, size)."""
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    client.put_manifest(parse_reference(repo), digest, body, media_type)
    return digest, len(body)


def push_attested_index(host: str, repo: str, store_dir: Path) -> tuple[str, str, str]:
    """An index as BuildKit pushes it with provenance: a linux/amd64 image and its attestation manifest (an
    in-toto statement layer, platform unknown/unknown, annotated with the image's digest). Returns (the index's
    reference, the image's digest, the attestation manifest's digest)."""
    client = RegistryClient()
    store = BlobStore(store_dir)
    image_ref = parse_reference(push_platform_image(host, repo, "amd64", store_dir, client=client))
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "predicateType":
                            "https://slsa.dev/provenance/v0.2", "subject": [{"name": "app", "digest": {
                                "sha256": image_ref.digest.split(":")[1]}}], "predicate": {}}).encode()
    statement_digest = store.put_bytes(statement)
    config = json.dumps({"architecture": "unknown", "os": "unknown", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [statement_digest]}}).encode()
    config_digest = store.put_bytes(config)
    repository = parse_reference(f"{host}/{repo}")
    for digest, size in ((statement_digest, len(statement)), (config_digest, len(config))):
        client.upload_blob(repository, digest, size, store)
    attestation_digest, attestation_size = put_json(client, f"{host}/{repo}", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": IN_TOTO, "digest": statement_digest, "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]}, OCI_MANIFEST)
    image_body, _, _ = client.get_manifest(image_ref)
    index_digest, _ = put_json(client, f"{host}/{repo}", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": image_ref.digest, "size": len(image_body),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": attestation_digest, "size": attestation_size,
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: image_ref.digest}}]}, OCI_INDEX)
    return f"{host}/{repo}@{index_digest}", image_ref.digest, attestation_digest


# --- reading back --------------------------------------------------------------------------------------------

def skopeo_raw(ref: str) -> bytes:
    out = run_tool(["skopeo", "--insecure-policy", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                   SKOPEO_TIMEOUT)
    return out.stdout.encode()


def skopeo_config(ref: str, arch: str) -> dict:
    out = run_tool(["skopeo", "--insecure-policy", "--override-arch", arch, "inspect", "--tls-verify=false",
                    "--config", f"docker://{ref}"], SKOPEO_TIMEOUT)
    return json.loads(out.stdout)


def platforms(index: dict) -> dict[str, str]:
    """platform text → digest of the index's image entries."""
    out = {}
    for entry in index["manifests"]:
        if (entry.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION_MANIFEST:
            continue
        p = entry["platform"]
        out["/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)] = entry["digest"]
    return out


def digest_of(ref: str) -> str:
    return ref.rsplit("@", 1)[1]


def blob_in(host: str, repo: str, digest: str) -> bool:
    return requests.head(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=10).status_code == 200


def layer_digests(ref: str) -> list[str]:
    return [layer["digest"] for layer in json.loads(skopeo_raw(ref))["layers"]]


# --- create --------------------------------------------------------------------------------------------------

def test_create_from_digests_gives_an_index_skopeo_reads_for_each_platform(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/two", "amd64", tmp_path / "store")
    arm64 = push_platform_image(registry.host, "app/two", "arm64", tmp_path / "store")
    digest_file = tmp_path / "out" / "digest.txt"
    # A bare digest is in the first target's repository, as imagetools takes it.
    result = dockyard("manifest", "create", "-t", f"{registry.host}/app/two:1", "--digest-file", str(digest_file),
                      amd64, digest_of(arm64))
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    raw = skopeo_raw(f"{registry.host}/app/two:1")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest == digest_file.read_text().strip()
    index = json.loads(raw)
    assert index["mediaType"] == OCI_INDEX
    assert platforms(index) == {"linux/amd64": digest_of(amd64), "linux/arm64": digest_of(arm64)}
    # The index is also there by digest, and each platform resolves to its own image.
    assert skopeo_raw(f"{registry.host}/app/two@{digest}") == raw
    assert skopeo_config(f"{registry.host}/app/two:1", "arm64")["architecture"] == "arm64"
    assert skopeo_config(f"{registry.host}/app/two:1", "amd64")["architecture"] == "amd64"
    out = tmp_path / "arm64-oci"
    run_tool(["skopeo", "--insecure-policy", "--override-arch", "arm64", "copy", "--src-tls-verify=false",
              f"docker://{registry.host}/app/two:1", f"oci:{out}:latest"], SKOPEO_TIMEOUT)
    copied = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    assert copied == digest_of(arm64)


def test_platform_entries_match_buildahs_index_of_the_same_images(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/oracle", "amd64", tmp_path / "store")
    armv7 = push_platform_image(registry.host, "app/oracle", "arm", tmp_path / "store", variant="v7")
    result = dockyard("manifest", "create", "--dry-run", amd64, armv7)
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    try:
        theirs = buildah_manifest_index([amd64, armv7], tmp_path / "buildah")
    except ToolError as exc:
        pytest.skip(f"buildah cannot run here: {exc}")

    def entries(index: dict) -> list[tuple]:
        return sorted((e["digest"], e["mediaType"], e["size"], json.dumps(e["platform"], sort_keys=True))
                      for e in index["manifests"])

    assert entries(ours) == entries(theirs)
    assert platforms(ours) == {"linux/amd64": digest_of(amd64), "linux/arm/v7": digest_of(armv7)}


def test_sources_in_other_repositories_are_copied_with_their_blobs(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "src/amd64", "amd64", tmp_path / "store")
    arm64 = push_platform_image(registry.host, "src/arm64", "arm64", tmp_path / "store")
    result = dockyard("manifest", "create", "-t", f"{registry.host}/app/merged:1", "-t",
                      f"{registry.host}/app/merged-too:1", "--progress", "json", amd64, arm64)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    # Within one registry every blob is mounted: no byte of a layer is uploaded.
    assert not [e for e in events if e["event"] == "transfer_started" and e["direction"] == "push"]
    mounted = [e["digest"] for e in events if e["event"] == "transfer_finished" and e["skipped"] == "mounted"]
    for layer in layer_digests(amd64) + layer_digests(arm64):
        assert mounted.count(layer) == 2  # into each target repository
    pushed = [e["reference"] for e in events if e["event"] == "image_pushed"]
    assert pushed[-2:] == [f"{registry.host}/app/merged:1", f"{registry.host}/app/merged-too:1"]
    for repo in ("app/merged", "app/merged-too"):
        for source in (amd64, arm64):
            entry = f"{registry.host}/{repo}@{digest_of(source)}"
            assert skopeo_raw(entry) == skopeo_raw(source)
            assert all(blob_in(registry.host, repo, layer) for layer in layer_digests(source))
    assert skopeo_config(f"{registry.host}/app/merged-too:1", "arm64")["architecture"] == "arm64"


def test_sources_on_another_registry_stream_through_the_blob_store(registry, tmp_path):
    other = RegistryServer.start(tmp_path / "other-registry")
    try:
        amd64 = push_platform_image(other.host, "src/amd64", "amd64", tmp_path / "store")
        arm64 = push_platform_image(registry.host, "src/arm64", "arm64", tmp_path / "store")
        result = dockyard("manifest", "create", "-t", f"{registry.host}/app/cross:1", amd64, arm64,
                          env={"DOCKYARD_WORK_DIR": str(tmp_path / "work")})
        assert result.returncode == 0, result.stderr
    finally:
        other.stop()
    # The other registry is gone: the target has everything of the image that came from it.
    assert skopeo_config(f"{registry.host}/app/cross:1", "amd64")["architecture"] == "amd64"
    run_tool(["skopeo", "--insecure-policy", "--override-arch", "amd64", "copy", "--src-tls-verify=false",
              f"docker://{registry.host}/app/cross:1", f"oci:{tmp_path / 'amd64-oci'}:latest"], SKOPEO_TIMEOUT)
    assert list((tmp_path / "work").iterdir()) == []  # the scratch blob store is removed


def test_append_replaces_the_platform_and_keeps_the_others(registry, tmp_path):
    target = f"{registry.host}/app/append:1"
    amd64 = push_platform_image(registry.host, "app/append", "amd64", tmp_path / "store")
    arm64 = push_platform_image(registry.host, "app/append", "arm64", tmp_path / "store")
    # --append to a target that does not exist yet creates it.
    assert dockyard("manifest", "create", "--append", "-t", target, amd64, arm64).returncode == 0
    rebuilt = push_platform_image(registry.host, "app/append", "arm64", tmp_path / "store")
    riscv = push_platform_image(registry.host, "app/append", "riscv64", tmp_path / "store")
    result = dockyard("manifest", "create", "--append", "-t", target, rebuilt, riscv)
    assert result.returncode == 0, result.stderr
    index = json.loads(skopeo_raw(target))
    assert platforms(index) == {"linux/amd64": digest_of(amd64), "linux/arm64": digest_of(rebuilt),
                                "linux/riscv64": digest_of(riscv)}
    assert [e["digest"] for e in index["manifests"]] == [digest_of(amd64), digest_of(rebuilt), digest_of(riscv)]


def test_an_index_source_brings_its_attestation_manifest_along_with_its_platform(registry, tmp_path):
    attested, image_digest, attestation_digest = push_attested_index(registry.host, "src/attested",
                                                                     tmp_path / "store")
    arm64 = push_platform_image(registry.host, "src/arm64", "arm64", tmp_path / "store")
    target = f"{registry.host}/app/attested:1"
    result = dockyard("manifest", "create", "-t", target, attested, arm64)
    assert result.returncode == 0, result.stderr
    index = json.loads(skopeo_raw(target))
    assert platforms(index) == {"linux/amd64": image_digest, "linux/arm64": digest_of(arm64)}
    attestation = index["manifests"][-1]
    assert attestation["digest"] == attestation_digest
    assert attestation["annotations"] == {REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: image_digest}
    # The attestation manifest and its in-toto layer were copied into the target repository.
    statement = json.loads(skopeo_raw(f"{registry.host}/app/attested@{attestation_digest}"))["layers"][0]
    assert statement["mediaType"] == IN_TOTO and blob_in(registry.host, "app/attested", statement["digest"])

    inspected = dockyard("manifest", "inspect", target)
    assert inspected.returncode == 0, inspected.stderr
    assert "attestation of linux/amd64" in inspected.stdout
    assert image_digest in inspected.stdout and digest_of(arm64) in inspected.stdout

    # Replacing linux/arm64 keeps the amd64 image's attestation; replacing linux/amd64 drops it with its image.
    rebuilt_arm = push_platform_image(registry.host, "app/attested", "arm64", tmp_path / "store")
    assert dockyard("manifest", "create", "--append", "-t", target, rebuilt_arm).returncode == 0
    assert attestation_digest in [e["digest"] for e in json.loads(skopeo_raw(target))["manifests"]]
    rebuilt_amd = push_platform_image(registry.host, "app/attested", "amd64", tmp_path / "store")
    result = dockyard("manifest", "create", "--append", "-t", target, rebuilt_amd)
    assert result.returncode == 0, result.stderr
    index = json.loads(skopeo_raw(target))
    assert [e["digest"] for e in index["manifests"]] == [digest_of(rebuilt_amd), digest_of(rebuilt_arm)]


def test_annotations_on_the_index_and_on_one_platforms_descriptor(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/annotated", "amd64", tmp_path / "store")
    arm64 = push_platform_image(registry.host, "app/annotated", "arm64", tmp_path / "store")
    target = f"{registry.host}/app/annotated:1"
    result = dockyard("manifest", "create", "-t", target, "--annotation", "org.opencontainers.image.vendor=Acme",
                      "--annotation", "index:org.opencontainers.image.description=two platforms",
                      "--annotation", "manifest-descriptor[linux/arm64]:com.example.note=arm", amd64, arm64)
    assert result.returncode == 0, result.stderr
    index = json.loads(skopeo_raw(target))
    assert index["annotations"] == {"org.opencontainers.image.vendor": "Acme",
                                    "org.opencontainers.image.description": "two platforms"}
    entries = {e["digest"]: e for e in index["manifests"]}
    assert entries[digest_of(arm64)]["annotations"] == {"com.example.note": "arm"}
    assert "annotations" not in entries[digest_of(amd64)]


def test_docker_manifests_make_a_manifest_list_unless_annotations_need_an_oci_index(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/docker", "amd64", tmp_path / "store", docker=True)
    arm64 = push_platform_image(registry.host, "app/docker", "arm64", tmp_path / "store", docker=True)
    result = dockyard("manifest", "create", "-t", f"{registry.host}/app/docker:list", amd64, arm64)
    assert result.returncode == 0, result.stderr
    listed = json.loads(skopeo_raw(f"{registry.host}/app/docker:list"))
    assert listed["mediaType"] == DOCKER_MANIFEST_LIST and "annotations" not in listed
    assert {e["mediaType"] for e in listed["manifests"]} == {DOCKER_MANIFEST}
    result = dockyard("manifest", "create", "-t", f"{registry.host}/app/docker:annotated",
                      "--annotation", "index:com.example.k=v", amd64, arm64)
    assert result.returncode == 0, result.stderr
    annotated = json.loads(skopeo_raw(f"{registry.host}/app/docker:annotated"))
    assert annotated["mediaType"] == OCI_INDEX and annotated["annotations"] == {"com.example.k": "v"}
    assert "Docker manifest list cannot carry annotations" in result.stderr


def test_a_single_index_source_is_copied_unchanged(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/carbon", "amd64", tmp_path / "store")
    arm64 = push_platform_image(registry.host, "app/carbon", "arm64", tmp_path / "store")
    first = dockyard("manifest", "create", "-t", f"{registry.host}/app/carbon:1", amd64, arm64)
    assert first.returncode == 0, first.stderr
    copy = dockyard("manifest", "create", "-t", f"{registry.host}/app/carbon-copy:1", f"{registry.host}/app/carbon:1")
    assert copy.returncode == 0, copy.stderr
    assert copy.stdout == first.stdout
    assert skopeo_raw(f"{registry.host}/app/carbon-copy:1") == skopeo_raw(f"{registry.host}/app/carbon:1")


def test_dry_run_prints_the_index_and_pushes_nothing(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/dry", "amd64", tmp_path / "store")
    arm64 = push_platform_image(registry.host, "app/dry", "arm64", tmp_path / "store")
    target = f"{registry.host}/app/dry:1"
    result = dockyard("manifest", "create", "--dry-run", "-t", target, "--digest-file", str(tmp_path / "d"),
                      amd64, arm64)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.rstrip("\n").encode()
    assert platforms(json.loads(printed)) == {"linux/amd64": digest_of(amd64), "linux/arm64": digest_of(arm64)}
    assert (tmp_path / "d").read_text().strip() == "sha256:" + hashlib.sha256(printed).hexdigest()
    assert requests.head(f"http://{registry.host}/v2/app/dry/manifests/1", timeout=10).status_code == 404


# --- errors --------------------------------------------------------------------------------------------------

def test_a_missing_source_is_named_and_no_tag_is_pushed(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/missing", "amd64", tmp_path / "store")
    missing = f"{registry.host}/app/missing@sha256:{'0' * 64}"
    result = dockyard("manifest", "create", "-t", f"{registry.host}/app/missing:1", amd64, missing)
    assert result.returncode == 6, result.stderr
    assert missing in result.stderr and "Traceback" not in result.stderr
    assert requests.head(f"http://{registry.host}/v2/app/missing/manifests/1", timeout=10).status_code == 404
    # A JSON event stream ends with the failure, as a build's does (CI adapters read it).
    streamed = dockyard("manifest", "create", "--progress", "json", "-t", f"{registry.host}/app/missing:1", missing)
    # (the CLI's own error text follows the events)
    last = json.loads([line for line in streamed.stderr.splitlines() if line.startswith("{")][-1])
    assert (last["event"], last["exit_code"], last["error"]) == ("build_failed", 6, "RegistryError")


def test_two_sources_of_one_platform_are_refused(registry, tmp_path):
    one = push_platform_image(registry.host, "app/twice", "amd64", tmp_path / "store")
    two = push_platform_image(registry.host, "app/twice", "amd64", tmp_path / "store")
    result = dockyard("manifest", "create", "--dry-run", one, two)
    assert result.returncode == 2
    assert "two sources give platform linux/amd64" in result.stderr
    assert one in result.stderr and two in result.stderr and "--append" in result.stderr


def test_a_source_that_is_not_an_image_is_refused(registry, tmp_path):
    client = RegistryClient()
    store = BlobStore(tmp_path / "store")
    config = b'{"helm": "chart"}'
    digest = store.put_bytes(config)
    client.upload_blob(parse_reference(f"{registry.host}/app/artifact"), digest, len(config), store)
    artifact, _ = put_json(client, f"{registry.host}/app/artifact", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": digest, "size": len(config)}},
        OCI_MANIFEST)
    result = dockyard("manifest", "create", "--dry-run", f"{registry.host}/app/artifact@{artifact}")
    assert result.returncode == 6
    assert "is not a container image" in result.stderr and "helm" in result.stderr


@pytest.mark.parametrize("annotation, says", [
    ("no-value", "expected [LEVEL:]KEY=VALUE"),
    ("manifest:k=v", "'manifest' annotations cannot be added"),
    ("bogus:k=v", "unknown level 'bogus'"),
    ("manifest-descriptor[linux/s390x]:k=v", "no image for platform linux/s390x"),
])
def test_bad_annotations_exit_2_saying_why(registry, tmp_path, annotation, says):
    amd64 = push_platform_image(registry.host, "app/bad-annotation", "amd64", tmp_path / "store")
    result = dockyard("manifest", "create", "--dry-run", "--annotation", annotation, amd64)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr


def test_no_sources_or_no_target_is_a_usage_error(registry):
    assert dockyard("manifest", "create", "-t", f"{registry.host}/app/x:1").returncode == 2
    result = dockyard("manifest", "create", f"{registry.host}/app/x@sha256:{'1' * 64}")
    assert result.returncode == 2 and "-t NAME[:TAG]" in result.stderr


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    """A typical private registry: HTTPS with a certificate of the test CA, and Basic auth."""
    server = start_tls_htpasswd_registry(tmp_path_factory.mktemp("manifest-auth-registry"), {"ci": "s3cret"})
    yield server
    server.stop()


def docker_config(tmp_path: Path, host: str, user: str, password: str) -> dict:
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir(parents=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return {"DOCKER_CONFIG": str(config_dir), "HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": "",
            "DOCKER_AUTH_CONFIG": ""}


def test_credentials_from_the_docker_config_and_the_registry_ca_option_as_for_build(auth_registry, tmp_path):
    from core.registry.credentials import Credentials, CredentialStore, StaticProvider
    from core.registry.tls import TLSSettings

    host, ca = auth_registry.host, str(auth_registry.ca_path)
    client = RegistryClient(credentials=CredentialStore([StaticProvider(host, Credentials("ci", "s3cret", "test"))]),
                            tls=TLSSettings(ca_files=[(host, ca)]))
    amd64 = push_platform_image(host, "app/private", "amd64", tmp_path / "store", client=client)
    arm64 = push_platform_image(host, "app/private", "arm64", tmp_path / "store", client=client)
    target = f"{host}/app/private:1"
    good = docker_config(tmp_path / "good", host, "ci", "s3cret")
    result = dockyard("manifest", "create", "--registry-ca", f"{host}={ca}", "-t", target, amd64, arm64, env=good)
    assert result.returncode == 0, result.stderr
    inspected = dockyard("manifest", "inspect", "--registry-certificate", f"{host}={ca}", "--format", "json", target,
                         env=good)
    assert inspected.returncode == 0, inspected.stderr
    assert {e["platform"] for e in json.loads(inspected.stdout)["manifests"]} == {"linux/amd64", "linux/arm64"}

    # Without the CA the loopback registry is spoken to in plain HTTP, as docker does, which it refuses.
    without_ca = dockyard("manifest", "inspect", target, env=good)
    assert without_ca.returncode == 6 and "HTTPS" in without_ca.stderr and host in without_ca.stderr


def test_bad_credentials_exit_7_naming_the_registry(auth_registry, tmp_path):
    host, ca = auth_registry.host, str(auth_registry.ca_path)
    amd64 = f"{host}/app/private@sha256:{'2' * 64}"
    bad = docker_config(tmp_path / "bad", host, "ci", "wrong-password")
    result = dockyard("manifest", "create", "--registry-ca", f"{host}={ca}", "-t", f"{host}/app/private:1", amd64,
                      env=bad)
    assert result.returncode == 7, result.stderr
    assert host in result.stderr and "wrong-password" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failure_on_the_way_moves_no_tag(registry, tmp_path):
    """Every entry goes into every target repository before any index or tag: a registry that refuses the
    second repository's copy leaves the first repository's tag where it was."""
    proxy = FaultProxy(registry.port).start()
    try:
        first, second = f"{proxy.host}/app/tags-first:1", f"{proxy.host}/app/tags-second:1"
        old = push_platform_image(registry.host, "app/tags-first", "amd64", tmp_path / "store")
        assert dockyard("manifest", "create", "-t", first.replace(proxy.host, registry.host), old).returncode == 0
        before = skopeo_raw(first.replace(proxy.host, registry.host))
        amd64 = push_platform_image(registry.host, "src/tags", "amd64", tmp_path / "store")
        arm64 = push_platform_image(registry.host, "src/tags", "arm64", tmp_path / "store")
        proxy.add("status", method="PUT", path="/v2/app/tags-second/manifests/", status=500, times=-1)
        result = dockyard("manifest", "create", "--push-retry", "0", "-t", first, "-t", second,
                          amd64.replace(registry.host, proxy.host), arm64.replace(registry.host, proxy.host))
    finally:
        proxy.stop()
    assert result.returncode == 6, result.stderr
    assert "app/tags-second" in result.stderr and "Traceback" not in result.stderr
    assert skopeo_raw(first.replace(proxy.host, registry.host)) == before
    assert requests.head(f"http://{registry.host}/v2/app/tags-second/manifests/1", timeout=10).status_code == 404


# --- inspect -------------------------------------------------------------------------------------------------

def test_inspect_shows_platforms_and_digests_raw_and_json(registry, tmp_path):
    amd64 = push_platform_image(registry.host, "app/inspect", "amd64", tmp_path / "store")
    armv7 = push_platform_image(registry.host, "app/inspect", "arm", tmp_path / "store", variant="v7")
    target = f"{registry.host}/app/inspect:1"
    created = dockyard("manifest", "create", "-t", target, amd64, armv7)
    assert created.returncode == 0, created.stderr

    text = dockyard("manifest", "inspect", target)
    assert text.returncode == 0, text.stderr
    rows = {line.split()[0]: line.split()[1] for line in text.stdout.splitlines() if line.startswith("linux/")}
    assert rows == {"linux/amd64": digest_of(amd64), "linux/arm/v7": digest_of(armv7)}
    assert f"Digest:     {created.stdout.strip()}" in text.stdout

    raw = dockyard("manifest", "inspect", "--raw", target)
    assert raw.stdout.encode() == skopeo_raw(target)

    as_json = json.loads(dockyard("manifest", "inspect", "--format", "json", target).stdout)
    assert as_json["digest"] == created.stdout.strip() and as_json["mediaType"] == OCI_INDEX
    assert [(e["platform"], e["attestation"]) for e in as_json["manifests"]] == [("linux/amd64", False),
                                                                                ("linux/arm/v7", False)]

    single = dockyard("manifest", "inspect", amd64)
    assert single.returncode == 0, single.stderr
    assert "Platform:   linux/amd64" in single.stdout and "LAYER" in single.stdout

    missing = dockyard("manifest", "inspect", f"{registry.host}/app/inspect:nope")
    assert missing.returncode == 6 and "app/inspect:nope" in missing.stderr
