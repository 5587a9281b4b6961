"""`dockyard kaniko`: every kaniko executor flag read as pflag reads it and mapped onto BuildOptions, and the
errors for flags dockyard cannot honour. Real files and directories; no build runs here (tests/e2e/test_kaniko.py
builds and pushes)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import ContextError, UsageError
from dockyard.kaniko.context import ContextSource, materialized
from dockyard.kaniko.flags import FLAG_KINDS, parse_flags
from dockyard.kaniko.options import NO_MEANING, RegistryCacheRequest, context_source, kaniko_run
from dockyard.options import RegistryCache
from dockyard.kaniko.results import name_lines
from dockyard.options import OutputSpec

DEST = "registry.example.com/team/app:1.0"


@pytest.fixture
def ctx(tmp_path) -> Path:
    (tmp_path / "ctx" / "docker").mkdir(parents=True)
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "ctx" / "docker" / "Dockerfile.prod").write_text("FROM scratch\n")
    return tmp_path / "ctx"


def run_for(ctx: Path, *argv: str, environ=None):
    return kaniko_run(parse_flags(list(argv)), ctx, environ or {}, cwd=ctx.parent)


def test_value_flags_take_equals_or_next_word_and_short_names(ctx):
    a = run_for(ctx, "--destination", DEST, "-d=reg.example.com/b:2", "--target=build", "-f", "docker/Dockerfile.prod")
    assert a.destinations == (DEST, "reg.example.com/b:2")
    assert a.options.tags == a.destinations and a.options.push
    assert a.options.target == "build"
    assert a.options.dockerfile == ctx / "docker" / "Dockerfile.prod"


def test_booleans_follow_pflag(ctx):
    assert not run_for(ctx, "--no-push").options.push
    assert not run_for(ctx, "--no-push=true").options.push
    assert run_for(ctx, "--no-push=false", "-d", DEST).options.push
    # pflag never takes the next word for a boolean: `--no-push false` leaves `false` as a stray argument.
    with pytest.raises(UsageError, match="unexpected argument 'false'"):
        parse_flags(["--no-push", "false"])
    with pytest.raises(UsageError, match="invalid value 'maybe' for --reproducible"):
        parse_flags(["--reproducible=maybe"])
    assert run_for(ctx, "--no-push", "--reproducible").options.reproducible


def test_push_needs_a_destination(ctx):
    with pytest.raises(UsageError, match="--destination, or use --no-push"):
        run_for(ctx)
    with pytest.raises(UsageError, match="--image-name-with-digest-file needs --destination"):
        run_for(ctx, "--no-push", "--image-name-with-digest-file=names")


def test_unknown_flags_and_missing_values_are_usage_errors():
    with pytest.raises(UsageError, match="unknown kaniko flag --frobnicate"):
        parse_flags(["--frobnicate"])
    with pytest.raises(UsageError, match="unknown kaniko flag '-x'"):
        parse_flags(["-x"])
    with pytest.raises(UsageError, match="--destination needs a value"):
        parse_flags(["--destination"])


def test_outputs_and_result_files(ctx, tmp_path):
    a = run_for(ctx, "-d", DEST, "--tar-path=out/image.tar", "--oci-layout-path", "out/layout",
                "--digest-file=d", "--image-name-with-digest-file=n", "--image-name-tag-with-digest-file=t")
    assert a.options.outputs == (OutputSpec("docker", "out/image.tar"), OutputSpec("oci", "out/layout"))
    # kaniko writes these itself, in its own formats (results.py), not as dockyard's digest file.
    assert a.options.digest_file is None
    assert (a.digest_file, a.image_name_digest_file, a.image_name_tag_digest_file) == (Path("d"), Path("n"), Path("t"))


def test_digest_file_formats_are_kanikos():
    digest = "sha256:" + "ab" * 32
    dests = ("reg.example.com:5000/team/app:1.0", "busybox", "user/tool:dev")
    assert name_lines(dests, digest, with_tag=False) == (
        f"reg.example.com:5000/team/app@{digest}\nindex.docker.io/library/busybox@{digest}\n"
        f"index.docker.io/user/tool@{digest}\n")
    assert name_lines(dests, digest, with_tag=True) == (
        f"reg.example.com:5000/team/app:1.0@{digest}\nindex.docker.io/library/busybox:latest@{digest}\n"
        f"index.docker.io/user/tool:dev@{digest}\n")


def test_build_args_labels_platform(ctx):
    a = run_for(ctx, "--no-push", "--build-arg", "A=1", "--build-arg=B", "--build-arg", "C", "--label", "x=y",
                "--custom-platform=linux/arm64", environ={"B": "from-env"})
    assert a.options.build_args == (("A", "1"), ("B", "from-env"))  # a bare name absent from the env is dropped
    assert a.options.labels == (("x", "y"),)
    assert a.options.platforms == ("linux/arm64",)


def test_cache_flags(ctx, tmp_path):
    a = run_for(ctx, "--no-push", f"--cache-dir={tmp_path / 'c'}", "--cache-ttl", "6h", "--cache=true",
                "--cache-repo", "reg.example.com/team/app/cache")
    assert a.options.cache_dir == tmp_path / "c" and a.options.cache_ttl == 6 * 3600
    assert a.registry_cache == RegistryCacheRequest(True, "reg.example.com/team/app/cache")
    cache = RegistryCache("reg.example.com/team/app/cache:cache", mode="max")
    assert a.options.cache_from == (cache,) and a.options.cache_to == (cache,)
    assert run_for(ctx, "--no-push").registry_cache == RegistryCacheRequest(False, None)
    assert run_for(ctx, "--no-push").options.cache_from == ()


def test_registry_cache_defaults_to_the_destination_repository(ctx):
    a = run_for(ctx, "-d", "reg.example.com/team/app:1.0", "--cache=true")
    cache = RegistryCache("reg.example.com/team/app/cache:cache", mode="max")
    assert a.options.cache_from == (cache,) and a.options.cache_to == (cache,)
    read_only = run_for(ctx, "-d", "reg.example.com/team/app:1.0", "--cache", "--no-push-cache")
    assert read_only.options.cache_from == (cache,) and read_only.options.cache_to == ()
    ignored = run_for(ctx, "-d", "reg.example.com/team/app:1.0", "--cache-repo", "reg.example.com/c")
    assert ignored.options.cache_from == () and any("ignored without --cache=true" in n for n in ignored.notes)
    local_only = run_for(ctx, "--no-push", "--cache=true")
    assert local_only.options.cache_to == () and any("local cache" in n for n in local_only.notes)
    with pytest.raises(UsageError, match="invalid --cache-ttl"):
        run_for(ctx, "--no-push", "--cache-ttl=soon")


def test_compression(ctx):
    a = run_for(ctx, "--no-push", "--compression=zstd", "--compression-level", "9")
    assert (a.options.compression, a.options.compression_level) == ("zstd", 9)
    assert run_for(ctx, "--no-push", "--compression-level=-1").options.compression_level is None
    assert run_for(ctx, "--no-push", "--compression=zstd", "--compression-level=0").options.compression_level is None
    with pytest.raises(UsageError, match="kaniko's values are gzip and zstd"):
        run_for(ctx, "--no-push", "--compression=lz4")


def test_registry_flags(ctx, tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    a = run_for(ctx, "-d", "reg.example.com:5000/app:1", "-d", "other.example.com/app:1", "--insecure",
                "--insecure-registry", "mirror.corp", "--skip-tls-verify-registry=self.signed",
                f"--registry-certificate=reg.example.com:5000={ca}",
                f"--registry-client-cert=reg.example.com:5000={ca},{ca}", "--registry-mirror", "mirror.corp",
                "--registry-map=index.docker.io=mirror.corp;mirror2.corp", "--skip-default-registry-fallback",
                "--push-retry=5", "--image-download-retry", "2")
    o = a.options
    assert o.insecure_registries == ("mirror.corp", "other.example.com", "reg.example.com:5000")
    assert o.skip_tls_verify_registries == ("self.signed",)
    assert o.registry_cas == (("reg.example.com:5000", str(ca)),)
    assert o.registry_client_certs == (("reg.example.com:5000", str(ca), str(ca)),)
    assert o.registry_mirrors == ("mirror.corp",) and o.registry_maps == ("index.docker.io=mirror.corp;mirror2.corp",)
    assert o.skip_default_registry_fallback and (o.push_retry, o.image_download_retry) == (5, 2)
    b = run_for(ctx, "-d", "reg.example.com/app:1", "--skip-tls-verify").options
    assert b.skip_tls_verify_registries == ("reg.example.com",) and b.insecure_registries == ()
    for flag in ("--insecure-pull", "--skip-tls-verify-pull"):
        with pytest.raises(UsageError, match="not supported") as exc:
            run_for(ctx, "--no-push", flag)
        assert "HOST[:PORT]" in exc.value.hint
    with pytest.raises(UsageError, match="invalid retry count"):
        run_for(ctx, "--no-push", "--push-retry=many")


def test_logging_flags_choose_the_progress_output(ctx):
    assert run_for(ctx, "--no-push").progress == "plain"
    assert run_for(ctx, "--no-push", "--log-format=json", "-v", "debug").progress == "json"
    assert run_for(ctx, "--no-push", "--verbosity=error").progress == "quiet"
    with pytest.raises(UsageError, match="invalid --verbosity"):
        run_for(ctx, "--no-push", "--verbosity=loud")
    with pytest.raises(UsageError, match="invalid --log-format"):
        run_for(ctx, "--no-push", "--log-format=xml")


@pytest.mark.parametrize("flag", sorted(NO_MEANING))
def test_flags_without_meaning_are_accepted_with_one_note(ctx, flag):
    argv = ["--no-push", f"--{flag}" if FLAG_KINDS[flag] == "bool" else f"--{flag}=x"]
    notes = run_for(ctx, *argv).notes
    assert [n for n in notes if n.startswith(f"--{flag}:")] and all("\n" not in n for n in notes)


def test_every_flag_is_mapped_or_noted():
    mapped = {"context", "context-sub-path", "dockerfile", "destination", "no-push", "tar-path", "oci-layout-path",
              "digest-file", "image-name-with-digest-file", "image-name-tag-with-digest-file", "build-arg",
              "target", "label", "cache", "cache-repo", "no-push-cache", "cache-dir", "cache-ttl", "reproducible",
              "compression", "compression-level", "insecure", "insecure-pull", "insecure-registry", "skip-tls-verify",
              "skip-tls-verify-pull", "skip-tls-verify-registry", "registry-certificate", "registry-client-cert",
              "registry-mirror", "registry-map", "skip-default-registry-fallback", "push-retry",
              "image-download-retry", "custom-platform", "verbosity", "log-format"}
    assert set(FLAG_KINDS) == mapped | set(NO_MEANING)


def test_dockerfile_is_found_as_given_then_in_the_context(ctx, tmp_path):
    assert run_for(ctx, "--no-push").options.dockerfile == ctx / "Dockerfile"
    # relative to the working directory first (kaniko's order), here ctx.parent
    assert run_for(ctx, "--no-push", "-f", "ctx/Dockerfile").options.dockerfile == ctx.parent / "ctx" / "Dockerfile"
    with pytest.raises(ContextError, match="--dockerfile nope"):
        run_for(ctx, "--no-push", "--dockerfile=nope")


def test_context_forms(ctx):
    assert ContextSource.parse("dir:///src") == ContextSource("dir", "/src")
    assert ContextSource.parse("src/app") == ContextSource("dir", "src/app")
    assert context_source(parse_flags([])) == ContextSource("dir", "/workspace/")
    for remote in ("s3://bucket/ctx.tar.gz", "gs://bucket/ctx.tar.gz", "https://example.com/ctx.tar.gz"):
        with pytest.raises(UsageError, match="is not supported") as exc:
            ContextSource.parse(remote)
        assert "dir://" in exc.value.hint
    with pytest.raises(UsageError, match="tar://stdin"):
        ContextSource.parse("tar://stdin")
    with materialized(ContextSource("dir", str(ctx), "docker")) as d:
        assert d == ctx / "docker"
    with pytest.raises(UsageError, match="leaves the build context"):
        with materialized(ContextSource("dir", str(ctx), "../..")):
            pass
    with pytest.raises(ContextError, match="no such directory"):
        with materialized(ContextSource("dir", str(ctx / "missing"))):
            pass


def _tar_gz(path: Path, members: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tar.addfile(info)
    return path


def test_tar_context_is_unpacked_into_scratch_and_removed(tmp_path):
    archive = _tar_gz(tmp_path / "ctx.tar.gz", {"app/Dockerfile": b"FROM scratch\n", "app/x": b"x"})
    with materialized(ContextSource.parse(f"tar://{archive}", "app"), scratch=tmp_path / "scratch") as d:
        assert (d / "Dockerfile").read_bytes() == b"FROM scratch\n"
    assert list((tmp_path / "scratch").iterdir()) == []


def test_tar_context_cannot_write_outside_its_directory(tmp_path):
    archive = _tar_gz(tmp_path / "evil.tar.gz", {"../escaped": b"x", "/etc/absolute": b"y"})
    with materialized(ContextSource.parse(f"tar://{archive}"), scratch=tmp_path / "scratch") as d:
        assert (d / "escaped").read_bytes() == b"x" and (d / "etc" / "absolute").read_bytes() == b"y"
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "scratch" / "escaped").exists()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(ContextError, match="cannot unpack"):
        with materialized(ContextSource.parse(f"tar://{broken}"), scratch=tmp_path / "s2"):
            pass
    with pytest.raises(ContextError, match="no such file"):
        with materialized(ContextSource.parse(f"tar://{tmp_path}/missing.tar.gz"), scratch=tmp_path / "s"):
            pass
