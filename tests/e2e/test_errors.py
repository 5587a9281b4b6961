"""Bad input exits non-zero with one paragraph naming the file and line (or the image) and no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.helpers import dockyard, write_context


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_message(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    error = result.stderr[result.stderr.index("error: "):]
    for needle in needles:
        assert needle in error, error
    assert len(error.strip().splitlines()) <= 16, error  # one paragraph (plus a short output tail)


@pytest.mark.parametrize("dockerfile, code, needles", [
    ("FROM {base}\nRUN echo ok\nCOPY --frm=x a /b\n", 3, ["Dockerfile:3", "--frm"]),
    ("FROM {base}\nRUNN echo hi\n", 3, ["Dockerfile:2", "RUNN", "RUN"]),
    ("RUN echo before from\nFROM {base}\n", 3, ["Dockerfile:1"]),
    ("FROM {base}\nCOPY missing.txt /x\n", 4, ["Dockerfile:2", "missing.txt", "not found"]),
    ("FROM {base}\nRUN echo first\nRUN echo some output && exit 2\n", 5,
     ["Dockerfile:3", "RUN exited with 2", "some output"]),
    ("FROM {base}\nUSER nosuchuser\nRUN true\n", 5, ["Dockerfile:3", "nosuchuser"]),
    ("FROM {base}\nRUN /does/not/exist\n", 5, ["Dockerfile:2", "/does/not/exist"]),
])
def test_dockerfile_errors(busybox_base, tmp_path, dockerfile, code, needles):
    context = write_context(tmp_path, {"Dockerfile": dockerfile.format(base=busybox_base)})
    _check_message(dockyard("build", "--progress=plain", str(context)), code, *needles)


def test_unreachable_base_image(tmp_path):
    ref = f"127.0.0.1:{_free_port()}/nothing/here:1"
    context = write_context(tmp_path, {"Dockerfile": f"FROM {ref}\nRUN true\n"})
    result = dockyard("build", "--progress=plain", str(context))
    _check_message(result, 6, "Dockerfile:1", ref.split("/")[0])


def test_missing_base_image(registry, tmp_path):
    ref = f"{registry.host}/no/such-image:1"
    context = write_context(tmp_path, {"Dockerfile": f"FROM {ref}\n"})
    _check_message(dockyard("build", "--progress=plain", str(context)), 6, "Dockerfile:1", "no/such-image")


def test_missing_dockerfile_and_context(tmp_path):
    _check_message(dockyard("build", str(tmp_path / "nope")), 4, "nope")
    _check_message(dockyard("build", str(tmp_path)), 4, "Dockerfile")


def test_bad_options(tmp_path):
    _check_message(dockyard("build", "--output", "type=tarball", str(tmp_path)), 2, "--output")
    _check_message(dockyard("build", "--push", str(tmp_path)), 2, "--tag")
    _check_message(dockyard("build", "-t", "Bad Name", str(tmp_path)), 2, "Bad Name")


def test_failed_push_keeps_nothing_broken(registry, busybox_base, tmp_path):
    """A failing RUN pushes nothing: the tag that was there stays what it was."""
    tag = f"{registry.host}/errors/keep:1"
    good = write_context(tmp_path / "good", {"Dockerfile": f"FROM {busybox_base}\nRUN echo v1 > /v\n"})
    first = dockyard("build", "-q", "-t", tag, "--push", str(good))
    assert first.returncode == 0, first.stderr
    bad = write_context(tmp_path / "bad", {"Dockerfile": f"FROM {busybox_base}\nRUN exit 1\n"})
    assert dockyard("build", "-q", "-t", tag, "--push", str(bad)).returncode == 5
    from tests.support import oracle
    assert oracle.inspect_summary(tag)["Digest"] == first.stdout.strip()
