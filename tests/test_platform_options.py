"""`--platform` as buildx takes it (a comma list, repeated flags adding up, a platform given twice built once,
a malformed one refused naming it) and kaniko's `--custom-platform` (one platform)."""

from __future__ import annotations

import pytest

from dockyard.cli import make_parser, options_from_args
from dockyard.errors import UsageError
from dockyard.options import parse_platforms


def build_options(tmp_path, *argv: str):
    return options_from_args(make_parser().parse_args(["build", *argv, str(tmp_path)]), {})


def test_the_default_is_linux_amd64(tmp_path):
    assert build_options(tmp_path).platforms == ("linux/amd64",)


@pytest.mark.parametrize("argv", [
    ("--platform", "linux/amd64,linux/arm64,linux/arm/v7"),
    ("--platform=linux/amd64", "--platform", "linux/arm64,linux/arm/v7"),
    ("--platform", "linux/amd64, linux/arm64 ,,linux/arm/v7"),
])
def test_comma_lists_and_repeated_flags_add_up_in_order(tmp_path, argv):
    assert build_options(tmp_path, *argv).platforms == ("linux/amd64", "linux/arm64", "linux/arm/v7")


@pytest.mark.parametrize("given, built", [
    ("linux/arm64,linux/amd64,linux/arm64", ("linux/arm64", "linux/amd64")),
    ("linux/arm64,linux/arm64/v8,linux/aarch64", ("linux/arm64",)),  # one platform once normalized, as containerd
    ("linux/arm,linux/arm/v7,linux/armhf,linux/arm/v6", ("linux/arm", "linux/arm/v6")),
    ("linux/x86_64,linux/amd64", ("linux/x86_64",)),
])
def test_a_platform_given_twice_is_built_once_where_it_first_appears(given, built):
    assert parse_platforms([given]) == built


@pytest.mark.parametrize("bad", ["linux", "linux/", "linux/amd64/v2/x", "linux/am d64", "linux//amd64"])
def test_a_malformed_platform_is_a_usage_error_naming_it(tmp_path, bad):
    with pytest.raises(UsageError) as caught:
        build_options(tmp_path, "--platform", f"linux/amd64,{bad}")
    assert repr(bad.strip()) in caught.value.message and "OS/ARCH[/VARIANT]" in caught.value.message


def test_kaniko_custom_platform_is_one_platform(tmp_path):
    from dockyard.kaniko.flags import parse_flags
    from dockyard.kaniko.options import custom_platform

    assert custom_platform(parse_flags([])) == ("linux/amd64",)
    assert custom_platform(parse_flags(["--custom-platform=linux/arm/v7"])) == ("linux/arm/v7",)
    with pytest.raises(UsageError, match="names one platform") as caught:
        custom_platform(parse_flags(["--custom-platform", "linux/amd64,linux/arm64"]))
    assert "--platform linux/amd64,linux/arm64" in (caught.value.hint or "")
