"""TLS and pull routing through the real command line: a registry behind HTTPS with a test CA (trusted by
--registry-ca or a certs.d directory, refused without it), and mirrors that fail over to the image's registry."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.e2e.helpers import dockyard, write_context
from tests.support.certs import make_ca
from tests.support.images import push_busybox_base
from tests.support.registry import RegistryServer, free_port


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    server = RegistryServer.start(tmp_path_factory.mktemp("tls-registry"), tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_base(tls_registry, tmp_path_factory) -> str:
    return push_busybox_base(tls_registry.host, tmp_path_factory.mktemp("tls-base"))


def _context(tmp_path, base: str):
    return write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base}\nRUN echo built > /built\n"})


def _pushed_digest(ref: str, ca_dir) -> str:
    """The digest skopeo reads back, verifying the registry's certificate with the test CA."""
    out = subprocess.run(["skopeo", "inspect", f"--cert-dir={ca_dir}", f"docker://{ref}"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Digest"]


def _ca_dir(tls_registry, tmp_path):
    ca_dir = tmp_path / "skopeo-ca"
    ca_dir.mkdir()
    shutil.copy(tls_registry.ca_path, ca_dir / "ca.crt")
    return ca_dir


def test_build_and_push_with_the_ca_from_the_flag(tls_registry, tls_base, tmp_path):
    target = f"{tls_registry.host}/tls/flag:1"
    result = dockyard("build", "-q", "--registry-ca", f"{tls_registry.host}={tls_registry.ca_path}", "-t", target,
                      "--push", str(_context(tmp_path, tls_base)), env={"DOCKYARD_CERTS_D": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert _pushed_digest(target, _ca_dir(tls_registry, tmp_path)) == result.stdout.strip()


def test_build_and_push_with_the_ca_from_a_certs_d_directory(tls_registry, tls_base, tmp_path):
    certs_d = tmp_path / "certs.d"
    (certs_d / tls_registry.host).mkdir(parents=True)
    shutil.copy(tls_registry.ca_path, certs_d / tls_registry.host / "ca.crt")
    target = f"{tls_registry.host}/tls/certsd:1"
    result = dockyard("build", "-q", "-t", target, "--push", str(_context(tmp_path, tls_base)),
                      env={"DOCKYARD_CERTS_D": str(certs_d)})
    assert result.returncode == 0, result.stderr
    assert _pushed_digest(target, _ca_dir(tls_registry, tmp_path)) == result.stdout.strip()


def test_a_wrong_ca_fails_naming_the_registry_and_how_to_trust_it(tls_registry, tls_base, tmp_path):
    other_ca = make_ca(tmp_path / "other-ca", name="not the registry's CA")
    result = dockyard("build", "--progress=plain", "--image-download-retry", "0", "--registry-ca",
                      f"{tls_registry.host}={other_ca.cert}", "-t", f"{tls_registry.host}/tls/wrong:1", "--push",
                      str(_context(tmp_path, tls_base)), env={"DOCKYARD_CERTS_D": str(tmp_path / "none")})
    assert result.returncode == 6, result.stderr
    assert tls_registry.host in result.stderr
    assert "--registry-ca" in result.stderr and "certs.d" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_mirror_that_is_down_falls_back_to_the_original(registry, busybox_base, tmp_path):
    dead_mirror = f"127.0.0.1:{free_port()}"
    context = _context(tmp_path, busybox_base)
    oci = tmp_path / "oci"
    result = dockyard("build", "--progress=plain", "--image-download-retry", "0", "--registry-map",
                      f"{registry.host}={dead_mirror}", "-t", "app:1", "--output", f"type=oci,dest={oci}",
                      str(context))
    assert result.returncode == 0, result.stderr
    assert f"cannot pull {busybox_base} from {dead_mirror}" in result.stderr + result.stdout
    manifest_digest = json.loads((oci / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((oci / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == busybox_base

    refused = dockyard("build", "--image-download-retry", "0", "--skip-default-registry-fallback",
                       "--registry-map", f"{registry.host}={dead_mirror}", "-t", "app:1", str(context))
    assert refused.returncode == 6, refused.stderr
    assert dead_mirror in refused.stderr


def test_a_mirror_serves_an_image_its_original_registry_cannot(registry, busybox_base, tmp_path):
    # The image names a registry that is not running; the map sends the pull to the one that has it.
    unreachable = f"127.0.0.1:{free_port()}"
    written = busybox_base.replace(registry.host, unreachable, 1)
    oci = tmp_path / "oci"
    result = dockyard("build", "--image-download-retry", "0", "--registry-map", f"{unreachable}={registry.host}",
                      "--skip-default-registry-fallback", "-t", "app:1", "--output", f"type=oci,dest={oci}",
                      str(_context(tmp_path, written)))
    assert result.returncode == 0, result.stderr
    manifest_digest = json.loads((oci / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((oci / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == written
