"""The global ARG scope (predefined platform args, build-arg overrides) and stage planning."""

from __future__ import annotations

import pytest

from dockyard.build_args import unused_build_args
from dockyard.builder import directive_notes
from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.errors import DockerfileError
from dockyard.stage.ops import exposed_ports, is_signal
from dockyard.image.model import Platform
from dockyard.plan import make_plan, predefined_args, run_platforms, stage_platforms

ARM = Platform("linux", "arm", "v7")
AMD = Platform("linux", "amd64")


def plan(text: str, build_args: dict | None = None, target: str | None = None, used: set | None = None):
    return make_plan(parse_dockerfile(text, "Dockerfile"), target, build_args or {},
                     used if used is not None else set(), platform=ARM, build_platform=AMD)


def test_predefined_platform_args():
    assert predefined_args(ARM, AMD, "release") == {
        "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": "",
        "TARGETPLATFORM": "linux/arm/v7", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7",
        "TARGETSTAGE": "release",
    }


def test_platform_args_usable_in_from_without_arg():
    built = plan("FROM scratch AS base-arm\nFROM scratch AS base-amd64\nFROM base-${TARGETARCH} AS out\n")
    assert built.stages[-1].base_stage == 0
    assert built.global_args["TARGETSTAGE"] == "out"


def test_global_defaults_expand_earlier_values_and_build_args_override():
    used: set[str] = set()
    built = plan("ARG A=one\nARG B=${A}-two\nARG C=$TARGETOS/$BUILDARCH\nARG NOVALUE\nFROM scratch\n",
                 {"A": "given", "TARGETARCH": "s390x"}, used=used)
    assert built.global_args["B"] == "given-two"
    assert built.global_args["C"] == "linux/amd64"
    assert built.global_args["TARGETARCH"] == "s390x"  # a build arg replaces a predefined value
    assert "NOVALUE" not in built.global_args
    assert used == {"A", "TARGETARCH"}


def test_from_and_platform_expand_global_args():
    built = plan("ARG IMG=registry.example/app:1\nARG P=linux/arm64\nFROM --platform=$P ${IMG}\n")
    assert (built.stages[0].base_image, built.stages[0].platform) == ("registry.example/app:1", "linux/arm64")


def test_from_naming_nothing_is_an_error():
    with pytest.raises(DockerfileError, match="FROM names no image") as info:
        plan("ARG IMG\nFROM ${IMG}\n")
    assert info.value.location.start_line == 2


@pytest.mark.parametrize("ref", ["${STAGE}", "$STAGE", "build-$STAGE"])
def test_copy_from_refuses_variables_as_buildkit(ref):
    text = f"ARG STAGE=build\nFROM scratch AS build\nFROM scratch AS unused\nCOPY --from={ref} /a /b\nFROM scratch\n"
    with pytest.raises(DockerfileError, match="variable expansion is not supported for --from") as info:
        plan(text)  # even in a stage the target does not need
    assert info.value.location.start_line == 4


def test_target_prunes_unneeded_stages():
    built = plan("FROM scratch AS a\nFROM scratch AS b\nCOPY --from=a /x /x\nFROM scratch AS c\n", target="b")
    assert [p.stage.index for p in built.stages] == [0, 1]
    assert built.global_args["TARGETSTAGE"] == "b"


def test_unused_build_args_skip_proxies_and_frontend_options():
    args = {"USED": "1", "UNUSED": "2", "HTTP_PROXY": "p", "https_proxy": "p", "No_Proxy": "x",
            "BUILDKIT_INLINE_CACHE": "1", "OTHER": "3"}
    assert unused_build_args(args, {"USED"}) == ["OTHER", "UNUSED"]


def test_directive_notes():
    dockerfile = parse_dockerfile("# syntax=docker/dockerfile:1.7\n# check=skip=all\nFROM scratch\n", "Dockerfile")
    notes = directive_notes(dockerfile)
    assert notes[0] == ("dockyard uses its built-in Dockerfile frontend; the syntax directive "
                        "(docker/dockerfile:1.7) is not fetched")
    assert "check directive (skip=all)" in notes[1]
    assert directive_notes(parse_dockerfile("# escape=`\nFROM scratch\n", "Dockerfile")) == []


@pytest.mark.parametrize("spec, ports", [
    ("80", ["80/tcp"]), ("53/udp", ["53/udp"]), ("53/UDP", ["53/udp"]), ("9/sctp", ["9/sctp"]),
    ("8000-8002/tcp", ["8000/tcp", "8001/tcp", "8002/tcp"]), ("7-7", ["7/tcp"]),
])
def test_exposed_ports(spec, ports):
    assert exposed_ports(spec) == ports


@pytest.mark.parametrize("spec", ["", "http", "80/xyz", "90-80", "70000", "1-70000", "-5"])
def test_exposed_ports_invalid(spec):
    with pytest.raises(DockerfileError, match="invalid port"):
        exposed_ports(spec)


@pytest.mark.parametrize("text, ok", [
    ("SIGTERM", True), ("term", True), ("KILL", True), ("9", True), ("SIGRTMIN+3", True), ("RTMAX-1", True),
    ("SIGRTMIN", True), ("0", False), ("SIGNOPE", False), ("RTMIN+99", False), ("", False), ("-9", False),
])
def test_is_signal(text, ok):
    assert is_signal(text) is ok


# --- several target platforms --------------------------------------------------------------------------------

ARM64 = Platform("linux", "arm64")
CROSS = """\
FROM --platform=$BUILDPLATFORM scratch AS build
RUN make all
FROM build AS tools
RUN make tools
FROM scratch AS emulated
RUN make native-test
FROM --platform=linux/s390x scratch AS fixed
RUN true
FROM scratch AS files
COPY a /a
FROM scratch
ARG TARGETARCH
COPY --from=build /out/$TARGETARCH /
COPY --from=tools /x /x
COPY --from=emulated /y /y
COPY --from=fixed /z /z
COPY --from=files /a /a
"""


def test_each_target_gets_its_own_target_args_and_the_same_build_args():
    dockerfile = parse_dockerfile(CROSS, "Dockerfile")
    plans = [make_plan(dockerfile, None, {}, set(), platform=target, build_platform=AMD) for target in (AMD, ARM64)]
    assert [(p.global_args["TARGETPLATFORM"], p.global_args["TARGETARCH"]) for p in plans] == [
        ("linux/amd64", "amd64"), ("linux/arm64", "arm64")]
    assert {p.global_args["BUILDPLATFORM"] for p in plans} == {"linux/amd64"}


def test_stage_platforms_follow_from_platform_then_the_base_stage_then_the_target():
    built = make_plan(parse_dockerfile(CROSS, "Dockerfile"), None, {}, set(), platform=ARM64, build_platform=AMD)
    platforms = stage_platforms(built, ARM64)
    assert {p.stage.display_name: str(platforms[p.stage.index]) for p in built.stages} == {
        "build": "linux/amd64",  # FROM --platform=$BUILDPLATFORM, expanded
        "tools": "linux/amd64",  # FROM an earlier stage: that stage's platform
        "emulated": "linux/arm64",  # no --platform: the target's
        "fixed": "linux/s390x",
        "files": "linux/arm64",
        "stage-5": "linux/arm64",
    }


def test_run_platforms_are_those_of_the_stages_with_a_run():
    built = make_plan(parse_dockerfile(CROSS, "Dockerfile"), None, {}, set(), platform=ARM64, build_platform=AMD)
    # `files` and the final stage have no RUN: their platform needs no emulation.
    assert run_platforms(built, ARM64) == {AMD, ARM64, Platform("linux", "s390x")}
    native = make_plan(parse_dockerfile(CROSS.replace("RUN make native-test\n", "").replace("RUN true\n", ""),
                                        "Dockerfile"), None, {}, set(), platform=ARM64, build_platform=AMD)
    assert run_platforms(native, ARM64) == {AMD}  # the cross-compilation pattern runs everything natively


def test_run_platforms_leave_out_stages_the_target_does_not_need():
    text = "FROM scratch AS unused\nRUN x\nFROM --platform=$BUILDPLATFORM scratch\nRUN y\n"
    built = make_plan(parse_dockerfile(text, "Dockerfile"), None, {}, set(), platform=ARM64, build_platform=AMD)
    assert run_platforms(built, ARM64) == {AMD}


def test_a_bad_from_platform_is_an_error_at_its_line():
    text = "FROM scratch\nFROM --platform=linux/arm64/v8/extra scratch\nRUN x\n"
    built = make_plan(parse_dockerfile(text, "Dockerfile"), None, {}, set(), platform=ARM64, build_platform=AMD)
    with pytest.raises(DockerfileError, match="FROM --platform") as info:
        run_platforms(built, ARM64)
    assert info.value.location.start_line == 2
