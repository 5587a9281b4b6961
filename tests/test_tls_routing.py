"""Unit tests: which certificates a registry gets (core/registry/tls.py), where pulls are routed
(core/registry/routing.py, pull.py's fallback), and the command-line flags that fill them."""

from __future__ import annotations

import io
from argparse import Namespace
from pathlib import Path

import pytest

from dockyard.cli import PASSWORD_ARG_WARNING, make_parser, options_from_args, read_login_password
from dockyard.errors import RegistryError, UsageError
from dockyard.events import Events, Message
from dockyard.image.blobs import BlobStore, DigestMismatch
from dockyard.image.model import Platform
from dockyard.image.reference import Reference, parse_reference
from dockyard.registry import pull as pull_module
from dockyard.registry.routing import Routes
from dockyard.registry.tls import TLSConfig, TLSSettings, certs_dirs_from_env, system_ca_bundle


def _pem(path: Path, name: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n")
    return str(path)


# --- TLS ---------------------------------------------------------------------------------------------------

def test_a_registry_without_configuration_uses_the_system_cas(tmp_path):
    system = _pem(tmp_path / "system.pem", "SYSTEM")
    tls = TLSSettings(certs_dirs=[tmp_path / "certs.d"], system_cas=system)
    assert tls.for_registry("registry.example.com") == TLSConfig(verify=system, cert=None)
    assert TLSSettings(certs_dirs=[]).for_registry("r.example.com") == TLSConfig(verify=True)


def test_certs_d_cas_are_added_to_the_system_cas_in_one_private_bundle(tmp_path):
    system = _pem(tmp_path / "system.pem", "SYSTEM")
    host_dir = tmp_path / "certs.d" / "registry.example.com:5000"
    _pem(host_dir / "b.crt", "SECOND")
    _pem(host_dir / "a.crt", "FIRST")
    (host_dir / "README").write_text("not a certificate")
    flag_ca = _pem(tmp_path / "flag.crt", "FLAG")
    tls = TLSSettings(certs_dirs=[tmp_path / "certs.d"], system_cas=system,
                      ca_files=[("registry.example.com:5000", flag_ca)])
    config = tls.for_registry("Registry.Example.com:5000")
    bundle = Path(config.verify)
    text = bundle.read_text()
    assert [line for line in text.splitlines() if "-----" not in line] == ["SYSTEM", "FIRST", "SECOND", "FLAG"]
    assert bundle.parent.stat().st_mode & 0o077 == 0  # private to this process
    # The port is part of the name, as in docker: the same host on another port has no CAs.
    assert tls.for_registry("registry.example.com").verify == system
    assert tls.configured("registry.example.com:5000") and not tls.configured("registry.example.com")
    tls.close()
    assert not bundle.exists() and not bundle.parent.exists()


def test_client_certificates_from_certs_d_and_the_flag_which_wins(tmp_path):
    certs_d = tmp_path / "certs.d"
    host_dir = certs_d / "mtls.example.com"
    _pem(host_dir / "client.cert", "CERT")
    _pem(host_dir / "client.key", "KEY")
    tls = TLSSettings(certs_dirs=[certs_d])
    assert tls.for_registry("mtls.example.com").cert == (str(host_dir / "client.cert"),
                                                         str(host_dir / "client.key"))
    flagged = TLSSettings(certs_dirs=[certs_d], client_certs=[("mtls.example.com", "/x/c.pem", "/x/k.pem")])
    assert flagged.for_registry("mtls.example.com").cert == ("/x/c.pem", "/x/k.pem")
    assert flagged.configured("mtls.example.com")


def test_a_client_certificate_without_its_key_is_an_error_naming_the_registry(tmp_path):
    _pem(tmp_path / "certs.d" / "mtls.example.com" / "client.cert", "CERT")
    with pytest.raises(RegistryError) as info:
        TLSSettings(certs_dirs=[tmp_path / "certs.d"]).for_registry("mtls.example.com")
    assert "mtls.example.com" in info.value.message and "client.key" in info.value.message


def test_docker_hub_certs_d_names_all_mean_docker_io(tmp_path):
    _pem(tmp_path / "certs.d" / "registry-1.docker.io" / "ca.crt", "HUB")
    tls = TLSSettings(certs_dirs=[tmp_path / "certs.d"])
    assert "HUB" in Path(tls.for_registry("docker.io").verify).read_text()
    assert tls.for_registry("index.docker.io") == tls.for_registry("docker.io")
    tls.close()


def test_insecure_registries_skip_verification_with_one_warning_each(tmp_path):
    events = Events()
    seen: list[Message] = []
    events.subscribe(seen.append)
    _pem(tmp_path / "certs.d" / "insecure.example.com" / "ca.crt", "IGNORED")
    tls = TLSSettings(certs_dirs=[tmp_path / "certs.d"], insecure=["insecure.example.com"], events=events)
    for _ in range(3):
        assert tls.for_registry("insecure.example.com").verify is False
    assert tls.for_registry("secure.example.com").verify is not False
    warnings = [e for e in seen if isinstance(e, Message) and e.level == "warning"]
    assert len(warnings) == 1 and "insecure.example.com" in warnings[0].text


def test_an_unreadable_ca_file_is_a_registry_error_with_a_hint(tmp_path):
    tls = TLSSettings(certs_dirs=[], ca_files=[("r.example.com", str(tmp_path / "missing.crt"))])
    with pytest.raises(RegistryError) as info:
        tls.for_registry("r.example.com")
    assert "r.example.com" in info.value.message and "--registry-ca" in info.value.hint


def test_environment_chooses_the_certs_dir_and_the_system_bundle(tmp_path):
    assert certs_dirs_from_env({"DOCKYARD_CERTS_D": str(tmp_path)}) == (tmp_path,)
    assert Path("/etc/docker/certs.d") in certs_dirs_from_env({})
    own = _pem(tmp_path / "own.pem", "OWN")
    assert system_ca_bundle({"SSL_CERT_FILE": own}) == own
    assert system_ca_bundle({"SSL_CERT_FILE": str(tmp_path / "absent.pem")}) != str(tmp_path / "absent.pem")


# --- routing -----------------------------------------------------------------------------------------------

def _names(refs: list[Reference]) -> list[str]:
    return [str(r) for r in refs]


def test_mirrors_for_docker_hub_come_first_and_the_original_last():
    routes = Routes.parse(["https://mirror.example.com/", "mirror2.example.com:5000"])
    assert _names(routes.pull_candidates(parse_reference("busybox:1.36"))) == [
        "mirror.example.com/library/busybox:1.36", "mirror2.example.com:5000/library/busybox:1.36",
        "docker.io/library/busybox:1.36"]
    # Other registries are not mirrored by --registry-mirror.
    assert _names(routes.pull_candidates(parse_reference("quay.io/org/app:1"))) == ["quay.io/org/app:1"]


def test_registry_map_with_several_targets_paths_and_no_fallback():
    routes = Routes.parse(registry_maps=["quay.io=a.example.com;b.example.com/cache/quay", "",
                                         "index.docker.io=hub.example.com"], fallback=False)
    ref = parse_reference("quay.io/org/app@sha256:" + "a" * 64)
    assert _names(routes.pull_candidates(ref)) == [f"a.example.com/org/app@sha256:{'a' * 64}",
                                                   f"b.example.com/cache/quay/org/app@sha256:{'a' * 64}"]
    assert _names(routes.pull_candidates(parse_reference("alpine"))) == ["hub.example.com/library/alpine:latest"]
    # Without a mirror for it, an image is pulled from its own registry even without fallback.
    assert _names(routes.pull_candidates(parse_reference("gcr.io/x/y:1"))) == ["gcr.io/x/y:1"]


@pytest.mark.parametrize("bad", ["quay.io", "=mirror", "quay.io=", "quay.io=Bad Host", "quay.io=m.example.com/UP"])
def test_malformed_registry_maps_are_usage_errors(bad):
    with pytest.raises(UsageError) as info:
        Routes.parse(registry_maps=[bad])
    assert "--registry-map" in info.value.message


class _FakeClient:
    """Stands in for RegistryClient in pull's fallback loop: only `events` is used there."""

    def __init__(self):
        self.events = Events()
        self.messages: list[Message] = []
        self.events.subscribe(self.messages.append)


def _fake_pull(outcomes: dict[str, BaseException | None], tried: list[str]):
    def pull_from(client, ref, platform, store, fetch_layers=True):
        tried.append(ref.registry)
        failure = outcomes[ref.registry]
        if failure is not None:
            raise failure
        return pull_module.PulledImage(image=None, reference=ref, digest="sha256:" + "1" * 64, index_digest=None)
    return pull_from


def test_pull_falls_back_from_a_failing_mirror_and_records_the_name_the_user_wrote(monkeypatch, tmp_path):
    tried: list[str] = []
    monkeypatch.setattr(pull_module, "_pull_from", _fake_pull(
        {"down.example.com": RegistryError("cannot reach registry down.example.com"),
         "empty.example.com": RegistryError("image not found"), "docker.io": None}, tried))
    client = _FakeClient()
    ref = parse_reference("busybox")
    pulled = pull_module.pull_image(client, ref, Platform.parse("linux/amd64"), BlobStore(tmp_path),
                                    Routes.parse(["down.example.com", "empty.example.com"]))
    assert tried == ["down.example.com", "empty.example.com", "docker.io"]
    assert pulled.reference == ref
    texts = [m.text for m in client.messages]
    assert "down.example.com" in texts[0] and "trying empty.example.com" in texts[0]
    assert "image not found" in texts[1] and "trying docker.io" in texts[1]


def test_pull_does_not_fall_back_on_a_corrupted_blob_nor_after_the_last_candidate(monkeypatch, tmp_path):
    tried: list[str] = []
    corrupt = DigestMismatch("blob sha256:abc does not match its digest")
    monkeypatch.setattr(pull_module, "_pull_from", _fake_pull({"bad.example.com": corrupt, "docker.io": None},
                                                              tried))
    with pytest.raises(DigestMismatch):
        pull_module.pull_image(_FakeClient(), parse_reference("busybox"), Platform.parse("linux/amd64"),
                               BlobStore(tmp_path), Routes.parse(["bad.example.com"]))
    assert tried == ["bad.example.com"]
    tried.clear()
    monkeypatch.setattr(pull_module, "_pull_from", _fake_pull({"down.example.com": RegistryError("down")}, tried))
    with pytest.raises(RegistryError, match="down"):
        pull_module.pull_image(_FakeClient(), parse_reference("busybox"), Platform.parse("linux/amd64"),
                               BlobStore(tmp_path), Routes.parse(["down.example.com"], fallback=False))


# --- command line ------------------------------------------------------------------------------------------

def test_build_flags_fill_the_registry_options(tmp_path):
    ca = _pem(tmp_path / "ca.crt", "CA")
    cert, key = _pem(tmp_path / "c.cert", "C"), _pem(tmp_path / "c.key", "K")
    args = make_parser().parse_args([
        "build", "--registry-ca", f"r.example.com:5000={ca}", "--registry-certificate", f"q.example.com={ca}",
        "--registry-client-cert", f"r.example.com:5000={cert},{key}", "--registry-mirror", "m.example.com",
        "--registry-map", "quay.io=q.example.com", "--skip-default-registry-fallback", "--push-retry", "5",
        "--image-download-retry", "0", "--skip-tls-verify-registry", "self.example.com", str(tmp_path)])
    options = options_from_args(args, {})
    assert options.registry_cas == (("r.example.com:5000", ca), ("q.example.com", ca))
    assert options.registry_client_certs == (("r.example.com:5000", cert, key),)
    assert options.registry_mirrors == ("m.example.com",) and options.registry_maps == ("quay.io=q.example.com",)
    assert options.skip_default_registry_fallback and options.skip_tls_verify_registries == ("self.example.com",)
    assert (options.push_retry, options.image_download_retry) == (5, 0)
    defaults = options_from_args(make_parser().parse_args(["build", str(tmp_path)]), {})
    assert (defaults.push_retry, defaults.image_download_retry, defaults.registry_cas) == (None, None, ())


@pytest.mark.parametrize("argv, message", [
    (["--registry-ca", "r.example.com"], "expected HOST=FILE"),
    (["--registry-ca", "r.example.com=/nonexistent/ca.crt"], "cannot read /nonexistent/ca.crt"),
    (["--registry-client-cert", "r.example.com=only-cert.pem"], "expected HOST=CERT,KEY"),
    (["--push-retry", "-1"], "invalid retry count"),
])
def test_bad_registry_flags_are_usage_errors(tmp_path, argv, message):
    with pytest.raises(UsageError, match=message):
        options_from_args(make_parser().parse_args(["build", *argv, str(tmp_path)]), {})


def _login_args(**kwargs) -> Namespace:
    return Namespace(**{"username": "ci", "password": None, "password_stdin": False, **kwargs})


def test_login_password_from_stdin_loses_only_its_trailing_newline(capsys):
    assert read_login_password(_login_args(password_stdin=True), io.StringIO("s3 cret \n")) == "s3 cret "
    assert read_login_password(_login_args(password="p"), io.StringIO()) == "p"
    assert PASSWORD_ARG_WARNING in capsys.readouterr().err
    with pytest.raises(UsageError, match="mutually exclusive"):
        read_login_password(_login_args(password="p", password_stdin=True), io.StringIO())
    with pytest.raises(UsageError, match="empty"):
        read_login_password(_login_args(password_stdin=True), io.StringIO("\n"))
    with pytest.raises(UsageError, match="not a terminal"):
        read_login_password(_login_args(), io.StringIO())
