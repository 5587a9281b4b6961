"""Build-wide semantics seen on the command line: unused build args, parser-directive notes, ONBUILD trigger
errors and --from expansion. (Image contents per instruction are in tests/compat/cases/{var,arg,env,meta}-*.)"""

from __future__ import annotations

from tests.e2e.helpers import dockyard, write_context


def _build(context, *args: str):
    return dockyard("build", "--progress=plain", *args, str(context))


def test_unused_build_args_warned_by_name_proxies_never(busybox_base, tmp_path):
    context = write_context(tmp_path, {"Dockerfile": "# syntax=docker/dockerfile:1\nARG BASE\nFROM ${BASE}\n"
                                                     "ARG USED\nLABEL used=$USED\n"})
    result = _build(context, f"--build-arg=BASE={busybox_base}", "--build-arg=USED=1", "--build-arg=SPARE=2",
                    "--build-arg=EXTRA=3", "--build-arg=HTTP_PROXY=http://proxy.invalid", "--build-arg=no_proxy=x")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warning = next(line for line in output.splitlines() if "not consumed" in line)
    assert "EXTRA, SPARE" in warning
    assert "PROXY" not in warning.upper() and "USED" not in warning.replace("not consumed", "")
    assert ("dockyard uses its built-in Dockerfile frontend; the syntax directive (docker/dockerfile:1) is not "
            "fetched") in output


def test_onbuild_trigger_error_points_at_from_line(busybox_base, tmp_path):
    context = write_context(tmp_path, {"Dockerfile": f"FROM {busybox_base} AS parent\n"
                                                     "ONBUILD COPY missing.txt /x\n"
                                                     "\n"
                                                     "FROM parent\n"})
    result = _build(context)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr[result.stderr.index("error: "):]
    assert "Dockerfile:4: ONBUILD trigger 'COPY missing.txt /x' from the base image" in error
    assert "missing.txt" in error and "hint:" in error


def test_copy_from_variable_refused(busybox_base, tmp_path):
    context = write_context(tmp_path, {"Dockerfile": f"ARG SRC=one\nFROM {busybox_base} AS one\n"
                                                     f"FROM {busybox_base}\nCOPY --from=$SRC /etc/passwd /p\n"})
    result = _build(context)
    assert result.returncode == 3, result.stderr
    assert "Dockerfile:4: variable expansion is not supported for --from ($SRC)" in result.stderr
