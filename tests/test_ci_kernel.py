"""The CI adapters' kernel (integrations/common): the build request's `dockyard build` arguments, the lint levels,
the OCI labels, the default cache, the platforms inputs, the merge's `dockyard manifest create` arguments, the
runner that reads dockyard's JSON events (with the real CLI), and a failure event as each adapter renders it
(GitHub, GitLab, Jenkins' result file)."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard.events import BuildFailed, StageStarted, StepFinished, StepLog, StepStarted, event_from_json
from dockyard_integrations.common import cache, failure, findings, labels, levels, manifest, platforms
from dockyard_integrations.common.phases import PhasedLog
from dockyard_integrations.common.public import Platform
from dockyard_integrations.common.request import (BuildRequest, Report, build_arguments, push_by_digest_output,
                                                  pushes, pushes_by_digest)
from dockyard_integrations.common.runner import COMMAND_NOT_FOUND, dockyard_command, run_dockyard
from dockyard_integrations.github import action, summary
from dockyard_integrations.github.log import GroupedLog, failure_annotation
from dockyard_integrations.gitlab.sections import SectionedLog
from dockyard_integrations.jenkins import step

REPO = Path(__file__).resolve().parent.parent
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")

STEP_FAILED = BuildFailed(exit_code=5, error="StepFailed", message="RUN exited with 3: false", file="app/Dockerfile",
                          line=3, end_line=3, details="last output:\ngoing to fail", hint="look at its output",
                          time=100.0)
NO_LOCATION = BuildFailed(exit_code=6, error="RegistryError", message="connection refused",
                          subject="127.0.0.1:9/app:1", time=100.0)


# --- request → arguments -----------------------------------------------------------------------------------------

def test_every_request_field_becomes_its_flag_the_context_last(tmp_path):
    request = BuildRequest(
        context="app", dockerfile="app/Containerfile", tags=("r/a:1", "r/a:2"), labels=("l=1",),
        build_args=("A=1,2", "BARE"), build_contexts=("base=docker-image://alpine:3.20",),
        annotations=("manifest:k=v",), target="release", push=True, no_cache=True, cache="r/a:buildcache",
        cache_from=("type=registry,ref=r/other",), cache_to=("type=registry,ref=r/other,mode=min",),
        platforms=("linux/amd64", "linux/arm64"), outputs=("type=oci,dest=out",), secrets=("id=t,env=TOKEN",),
        insecure_registries=("reg:5000",), registry_mirrors=("mirror.io",), lint="warning",
        reports=(Report("sarif", tmp_path / "r.sarif"), Report("text", tmp_path / "r.txt")),
        metadata_file=tmp_path / "m.json", digest_file=tmp_path / "d", extra_args=("--compression", "zstd"))
    assert build_arguments(request) == [
        "--progress", "json", "--metadata-file", str(tmp_path / "m.json"), "--digest-file", str(tmp_path / "d"),
        "--check", "--fail-on", "warning", "--report", f"sarif={tmp_path / 'r.sarif'}",
        "--report", f"text={tmp_path / 'r.txt'}", "--file", "app/Containerfile", "--tag", "r/a:1", "--tag", "r/a:2",
        "--label", "l=1", "--build-arg", "A=1,2", "--build-arg", "BARE",
        "--build-context", "base=docker-image://alpine:3.20", "--annotation", "manifest:k=v", "--target", "release",
        "--cache-from", "type=registry,ref=r/a:buildcache", "--cache-from", "type=registry,ref=r/other",
        "--cache-to", "type=registry,ref=r/a:buildcache,mode=max", "--cache-to", "type=registry,ref=r/other,mode=min",
        "--push", "--no-cache", "--platform", "linux/amd64,linux/arm64", "--output", "type=oci,dest=out",
        "--insecure-registry", "reg:5000", "--registry-mirror", "mirror.io", "--secret", "id=t,env=TOKEN",
        "--compression", "zstd", "app"]


def test_the_smallest_request_checks_at_the_default_level():
    assert build_arguments(BuildRequest()) == ["--progress", "json", "--check", "--fail-on", "error", "."]


def test_the_cache_is_written_only_by_a_build_that_pushes():
    args = build_arguments(BuildRequest(cache="r/a:buildcache"))
    assert "type=registry,ref=r/a:buildcache" in args and not any("mode=max" in a for a in args)


def test_an_output_dockyard_cannot_write_fails_naming_the_input():
    with pytest.raises(UsageError) as info:
        build_arguments(BuildRequest(outputs=("type=local,dest=out",)))
    assert info.value.subject == "input outputs" and "type=docker,dest=FILE.tar" in (info.value.hint or "")


# --- platforms -----------------------------------------------------------------------------------------------

def test_any_number_of_platforms_become_one_comma_list():
    request = BuildRequest(platforms=("linux/amd64,linux/arm64", " linux/arm/v7 ", "linux/s390x", "linux/amd64"))
    args = build_arguments(request)
    assert args[args.index("--platform") + 1] == "linux/amd64,linux/arm64,linux/arm/v7,linux/s390x"
    assert args.count("--platform") == 1


@pytest.mark.parametrize("given, normalised", [
    ("linux/amd64", "linux/amd64"), ("linux/x86_64", "linux/amd64"), ("Linux/AArch64", "linux/arm64"),
    ("linux/arm/v7", "linux/arm/v7"), ("linux/armhf", "linux/arm/v7"), ("linux/ppc64le", "linux/ppc64le"),
    ("linux/riscv64", "linux/riscv64"), ("linux/386", "linux/386"), ("windows/amd64", "windows/amd64")])
def test_platform_syntax_and_aliases_as_docker_reads_them(given, normalised):
    assert platforms.check_platforms((given,)) == (normalised,)


@pytest.mark.parametrize("bad, words", [
    ("amd64", "expected OS/ARCH[/VARIANT]"), ("linux/", "expected OS/ARCH[/VARIANT]"),
    ("linux/arm64/v8/x", "expected OS/ARCH[/VARIANT]"), ("linux/amd46", "unknown architecture 'amd46'"),
    ("lniux/amd64", "unknown operating system 'lniux'"), ("linux/arm/v-7", "invalid variant 'v-7'")])
def test_a_bad_platform_is_an_error_naming_it_and_the_input(bad, words):
    with pytest.raises(UsageError) as info:
        build_arguments(BuildRequest(platforms=("linux/amd64", bad)))
    assert words in info.value.message and repr(bad) in info.value.message
    assert info.value.subject == "input platforms" and "linux/arm64" in (info.value.hint or "")
    with pytest.raises(UsageError) as info:
        platforms.check_platforms((bad,), subject="platforms")
    assert info.value.subject == "platforms"


def test_no_platform_is_dockyards_default_and_platforms_in_extra_args_are_dockyards_to_read():
    assert "--platform" not in build_arguments(BuildRequest(platforms=("", " , ")))
    assert build_arguments(BuildRequest(extra_args=("--platform", "linux/amd64,linux/arm64")))[-3:] == [
        "--platform", "linux/amd64,linux/arm64", "."]


def test_outputs_that_push_by_digest():
    output = push_by_digest_output("reg:5000/g/app")
    assert output == "type=image,name=reg:5000/g/app,push-by-digest=true,push=true"
    assert pushes_by_digest([output]) and pushes([output])
    assert pushes_by_digest(['type=image,"name=reg/a,reg/b",push-by-digest=true,push=true'])
    assert not pushes_by_digest(["type=registry"]) and pushes(["type=registry"])
    assert not pushes(["type=oci,dest=out", "type=image,name=r/a"])
    # the build writes its cache when an output pushes, as when it is asked to push
    args = build_arguments(BuildRequest(cache="reg:5000/g/app:buildcache-linux-arm64", outputs=(output,)))
    assert args[args.index("--cache-to") + 1] == "type=registry,ref=reg:5000/g/app:buildcache-linux-arm64,mode=max"
    assert args[args.index("--output") + 1] == output and "--push" not in args


# --- the merge of a distributed build ----------------------------------------------------------------------------

DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_manifest_create_arguments(tmp_path):
    request = manifest.ManifestRequest(tags=("r:5000/g/app:1", "r:5000/g/app:latest"),
                                       sources=(f"r:5000/g/app@{DIGEST_A}", "r:5000/g/app:arm64"),
                                       annotations=("index:org.opencontainers.image.title=app",), append=True,
                                       digest_file=tmp_path / "d", insecure_registries=("r:5000",),
                                       extra_args=("--x",))
    assert manifest.manifest_arguments(request) == [
        "--progress", "json", "--tag", "r:5000/g/app:1", "--tag", "r:5000/g/app:latest",
        "--annotation", "index:org.opencontainers.image.title=app", "--append", "--digest-file", str(tmp_path / "d"),
        "--insecure-registry", "r:5000", "--x", f"r:5000/g/app@{DIGEST_A}", "r:5000/g/app:arm64"]
    dry = manifest.ManifestRequest(tags=("r/a:1",), sources=(f"r/a@{DIGEST_A}",), dry_run=True)
    assert manifest.manifest_arguments(dry) == ["--progress", "json", "--tag", "r/a:1", "--dry-run", f"r/a@{DIGEST_A}"]


@pytest.mark.parametrize("tags, sources, subject", [
    ((), (f"r/a@{DIGEST_A}",), "input tags"), (("r/a:1",), (), "input sources"),
    (("r/a:has space",), (f"r/a@{DIGEST_A}",), "input tags"), (("r/a:1",), ("r/a@latest",), "input sources")])
def test_a_merge_without_tags_or_sources_or_with_a_bad_reference_fails_naming_the_input(tags, sources, subject):
    with pytest.raises(UsageError) as info:
        manifest.manifest_arguments(manifest.ManifestRequest(tags=tags, sources=sources))
    assert info.value.subject == subject


def test_digest_files_hand_the_digests_to_the_merge(tmp_path):
    directory = tmp_path / "digests"
    assert manifest.write_digest_file(directory, DIGEST_B).name == "b" * 64
    manifest.write_digest_file(directory, DIGEST_A)
    manifest.write_digest_file(directory, DIGEST_A)  # a retried job: the same digest once
    assert manifest.digests_in(directory, subject="input merge-digests") == [DIGEST_A, DIGEST_B]
    assert manifest.sources_by_digest("r/a", [DIGEST_A]) == [f"r/a@{DIGEST_A}"]
    with pytest.raises(UsageError) as info:
        manifest.write_digest_file(directory, "md5:abc")
    (directory / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match=r"'notes.txt' .* is not named by a digest") as info:
        manifest.digests_in(directory, subject="input merge-digests")
    assert info.value.subject == "input merge-digests"
    (tmp_path / "empty").mkdir()
    for missing in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(UsageError) as info:
            manifest.digests_in(missing, subject="input merge-digests")
        assert info.value.subject == "input merge-digests"


# --- lint levels, labels, cache ----------------------------------------------------------------------------------

def test_lint_levels():
    assert levels.parse_lint_level(" Warning ") == "warning" and levels.parse_lint_level("") == "error"
    with pytest.raises(UsageError) as info:
        levels.parse_lint_level("loud", subject="input lint")
    assert info.value.message == "unknown level 'loud'" and "info, warning, error, none" in (info.value.hint or "")
    assert levels.reaches("error", "warning") and levels.reaches("warning", "warning")
    assert not levels.reaches("info", "warning") and not levels.reaches("error", "none")


def test_the_jenkins_step_checks_the_kernels_lint_levels():
    """The Groovy step checks `lint` before anything runs, so it holds the levels too: the kernel's, in order."""
    source = (REPO / "integrations/jenkins/src/io/dockyard/jenkins/BuildRequest.groovy").read_text()
    groovy = re.search(r"LINT_LEVELS = \[([^\]]*)\]", source).group(1)
    assert tuple(re.findall(r"'(\w+)'", groovy)) == levels.LINT_LEVELS


def test_the_gitlab_template_offers_the_kernels_lint_levels():
    template = (REPO / "templates" / "build.yml").read_text()
    options = re.search(r"^    lint:\n(?:      .*\n)*?      options: \[([^\]]*)\]", template, re.M).group(1)
    assert {item.strip() for item in options.split(",")} == set(levels.LINT_LEVELS)


def test_labels_created_time_the_epoch_wins_then_the_platforms_time_then_now():
    provenance = labels.ImageProvenance(source="https://h/o/r", revision="f" * 40, created="2026-01-02T03:04:05Z")
    by_key = dict(item.split("=", 1) for item in labels.standard_labels(provenance, {}))
    assert by_key == {"org.opencontainers.image.source": "https://h/o/r",
                      "org.opencontainers.image.revision": "f" * 40,
                      "org.opencontainers.image.created": "2026-01-02T03:04:05Z"}
    epoch = dict(item.split("=", 1) for item in labels.standard_labels(provenance, {"SOURCE_DATE_EPOCH": "86400"}))
    assert epoch["org.opencontainers.image.created"] == "1970-01-02T00:00:00Z"
    now = dict(item.split("=", 1) for item in labels.standard_labels(labels.ImageProvenance(), {}))
    assert list(now) == ["org.opencontainers.image.created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now["org.opencontainers.image.created"])


def test_labels_the_user_set_are_left_alone():
    provenance = labels.ImageProvenance(source="https://h/o/r", revision="abc")
    assert labels.standard_labels(provenance, {"SOURCE_DATE_EPOCH": "0"},
                                  ["org.opencontainers.image.source=mine", "org.opencontainers.image.created=x"]) == [
        "org.opencontainers.image.revision=abc"]


def test_the_default_cache_is_a_tag_of_the_image():
    assert cache.default_cache_reference("reg:5000/g/app") == "reg:5000/g/app:buildcache"
    assert cache.default_cache_reference("reg:5000/g/app", "linux/arm/v7") == "reg:5000/g/app:buildcache-linux-arm-v7"
    assert cache.cache_from("r/a:c") == "type=registry,ref=r/a:c"
    assert cache.cache_to("r/a:c") == "type=registry,ref=r/a:c,mode=max"


# --- the runner, with the real CLI -------------------------------------------------------------------------------

class RecordingLog(PhasedLog):
    def __init__(self) -> None:
        self.out = io.StringIO()
        super().__init__(self.out)
        self.groups: list[str] = []

    def open_group(self, phase, when) -> None:
        self.groups.append(phase.key)

    def close_group(self, phase, when) -> None:
        pass


def test_a_failed_build_ends_with_its_failure_event_which_the_runner_hands_on(tmp_path):
    """The real `dockyard build` (an invalid instruction on line 2): the failure reaches the log as an event, with
    its exit code, class, file and line, and dockyard's text for it is not printed twice."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nFOO bar\n")
    log = RecordingLog()
    args = build_arguments(BuildRequest(context=str(tmp_path), lint="none"))
    code = run_dockyard([*dockyard_command(), "build", *args], log, cwd=tmp_path)
    assert code == 3
    assert log.failure is not None
    assert (log.failure.exit_code, log.failure.error, log.failure.line) == (3, "DockerfileError", 2)
    assert log.failure.message == 'unknown instruction "FOO"' and log.failure.file.endswith("Dockerfile")
    errors = [line for line in log.out.getvalue().splitlines() if line.startswith("error: ")]
    assert errors == [f'error: {log.failure.file}:2: unknown instruction "FOO"']
    assert log.other_lines and log.other_lines[0].startswith("error: ")  # dockyard's own text, kept, not printed


def test_a_command_that_is_not_there_is_127():
    log = RecordingLog()
    assert run_dockyard(["/nonexistent/dockyard", "build", "."], log) == COMMAND_NOT_FOUND
    assert log.other_lines == ["error: cannot run /nonexistent/dockyard: no such command"]


def test_the_failure_event_reads_back_from_its_json_line():
    line = json.dumps(STEP_FAILED.to_json())
    assert json.loads(line)["event"] == "build_failed" and event_from_json(json.loads(line)) == STEP_FAILED


def test_findings_reaching_a_level_are_counted_from_the_json_report(tmp_path):
    report = tmp_path / "findings.json"
    report.write_text(json.dumps({"findings": [{"severity": "warning"}, {"severity": "warning"},
                                               {"severity": "info"}, {"severity": "error"}]}))
    assert findings.count_reaching(report, "warning") == (3, 4)
    assert findings.count_reaching(report, "none") == (0, 4)
    assert findings.count_reaching(tmp_path / "absent.json", "info") == (0, 0)


# --- the failure as each adapter renders it ----------------------------------------------------------------------

def test_failure_text():
    assert failure.paragraph(STEP_FAILED) == (
        "app/Dockerfile:3: RUN exited with 3: false\nlast output:\ngoing to fail\nhint: look at its output")
    assert failure.headline(NO_LOCATION) == "127.0.0.1:9/app:1: connection refused"
    assert failure.title(STEP_FAILED) == "StepFailed (exit code 5)"


def test_github_annotates_the_failure_at_its_line():
    assert failure_annotation(STEP_FAILED) == (
        "::error file=app/Dockerfile,line=3,title=StepFailed (exit code 5)::RUN exited with 3: false%0A"
        "last output:%0Agoing to fail%0Ahint: look at its output")
    assert failure_annotation(NO_LOCATION) == (
        "::error title=RegistryError (exit code 6)::127.0.0.1:9/app:1: connection refused")


def test_github_log_and_summary_of_a_failure_event_and_the_report_without_it_twice():
    out = io.StringIO()
    log = GroupedLog(out)
    log.feed(json.dumps(e.to_json()) + "\n" for e in (
        StageStarted(stage="s", base="b", time=99.0),
        StepStarted(step=1, total=1, stage="s", text="RUN false", file="app/Dockerfile", line=3, time=99.1),
        StepLog(step=1, line="going to fail", time=99.2), StepFinished(step=1, duration=0.5, failed=True, time=99.7),
        STEP_FAILED))
    log.line("error: app/Dockerfile:3: RUN exited with 3: false")  # dockyard's text for the same error
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("::error file=app/Dockerfile,line=3,")
    assert "error: app/Dockerfile:3: RUN exited with 3: false" not in lines
    md = summary.render(log, None)
    assert "**StepFailed (exit code 5)** at `app/Dockerfile:3`" in md and "hint: look at its output" in md
    assert "| 1 | s | `RUN false` | failed | 0.5s |  |" in md
    report = ("::warning file=app/Dockerfile,line=1,title=FromAsCasing (dockyard)::casing\n"
              "::error file=app/Dockerfile,line=3,title=StepFailed (build)::RUN exited with 3\n")
    assert action.findings_annotations(report, log) == [report.splitlines()[0]]
    assert action.findings_annotations(report, GroupedLog(io.StringIO())) == report.splitlines()


def test_gitlab_gives_the_failure_an_open_section():
    out = io.StringIO()
    log = SectionedLog(out)
    log.feed([json.dumps(NO_LOCATION.to_json()) + "\n", "error: 127.0.0.1:9/app:1: connection refused\n"])
    text = out.getvalue()
    assert text.startswith("\x1b[0Ksection_start:100:dockyard_failure\r\x1b[0K\x1b[31;1mdockyard build failed: "
                           "RegistryError (exit code 6) at 127.0.0.1:9/app:1\x1b[0m\n")
    assert "error: 127.0.0.1:9/app:1: connection refused\n\x1b[0Ksection_end:100:dockyard_failure" in text
    assert text.count("connection refused") == 1  # dockyard's own text for it is not printed again


def test_jenkins_result_file_holds_the_failure_escaped(tmp_path):
    files = step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                           digest=tmp_path / "d", metadata=tmp_path / "m")
    (tmp_path / "f.json").write_text(json.dumps({"findings": [{"severity": "warning"}, {"severity": "error"}]}))
    text = step.result_text(step.result_values(5, files, "warning", STEP_FAILED))
    assert text.splitlines() == [
        "exit_code=5", "findings=2", "findings_reaching=2", "error=StepFailed", "message=RUN exited with 3: false",
        "file=app/Dockerfile", "line=3", "hint=look at its output",
        "headline=app/Dockerfile:3: RUN exited with 3: false"]
    assert step.escape("a\\b\nc") == "a\\\\b\\nc"


def test_jenkins_request_becomes_the_kernels(tmp_path):
    files = step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                           digest=tmp_path / "d", metadata=tmp_path / "m")
    request = step.build_request({"image": "r/app", "references": ["r/app:1"], "context": ".", "dockerfile": None,
                                  "buildArgs": {"A": "1", "FROM_ENV": None}, "buildContexts": {"lib": "libs"},
                                  "labels": {"k": "v w"}, "push": True, "target": None, "cache": True,
                                  "lint": "warning", "extraArgs": ["--no-cache"]}, files)
    args = build_arguments(request)
    assert args[:4] == ["--progress", "json", "--metadata-file", str(tmp_path / "m")]
    assert "--fail-on none" in " ".join(args)  # the step makes the build UNSTABLE itself, at its `lint` level
    for pair in (["--build-arg", "FROM_ENV"], ["--label", "k=v w"], ["--build-context", "lib=libs"],
                 ["--cache-to", "type=registry,ref=r/app:buildcache,mode=max"],
                 ["--report", f"json={tmp_path / 'f.json'}"]):
        assert any(args[i:i + 2] == pair for i in range(len(args))), pair
    assert step.cache_reference("r/app", "other/cache:1") == "other/cache:1"
    assert step.cache_reference("r/app", False) == ""


def test_a_jenkins_branch_of_a_distributed_build_pushes_by_digest_with_a_cache_of_its_own(tmp_path):
    files = step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                           digest=tmp_path / "d", metadata=tmp_path / "m")
    request = step.build_request({"image": "r/app", "references": [], "push": True, "cache": True,
                                  "platforms": ["linux/arm64"], "pushByDigest": True}, files)
    args = build_arguments(request)
    for pair in (["--platform", "linux/arm64"], ["--output", "type=image,name=r/app,push-by-digest=true,push=true"],
                 ["--cache-to", "type=registry,ref=r/app:buildcache-linux-arm64,mode=max"]):
        assert any(args[i:i + 2] == pair for i in range(len(args))), pair
    assert "--push" not in args and "--tag" not in args
    several = step.build_request({"image": "r/app", "references": ["r/app:1"], "push": True, "cache": True,
                                  "platforms": ["linux/amd64", "linux/arm64"]}, files)
    assert several.platforms == ("linux/amd64", "linux/arm64") and several.cache == "r/app:buildcache"


def test_the_jenkins_merge_request_becomes_manifest_create(tmp_path):
    request = step.manifest_request({"kind": "manifest", "image": "r/app", "references": ["r/app:1"],
                                     "sources": [f"r/app@{DIGEST_A}"], "annotations": ["index:k=v"],
                                     "append": False, "push": False}, tmp_path / "d")
    assert manifest.manifest_arguments(request) == ["--progress", "json", "--tag", "r/app:1", "--annotation",
                                                    "index:k=v", "--dry-run", "--digest-file", str(tmp_path / "d"),
                                                    f"r/app@{DIGEST_A}"]


def test_the_jenkins_helper_runs_as_a_module(tmp_path):
    """`python -m dockyard_integrations.jenkins` with requests the kernel refuses (a platform that is not one, a
    merge without sources): a usage error naming the argument in the result file, before dockyard runs."""
    import subprocess

    for request, subject in (({"image": "r/app", "references": ["r/app:1"], "platforms": ["linux/amd64", "arm"]},
                              "platforms"),
                             ({"kind": "manifest", "image": "r/app", "references": ["r/app:1"], "sources": []},
                              "sources")):
        (tmp_path / "request.json").write_text(json.dumps(request))
        result = subprocess.run([sys.executable, "-m", "dockyard_integrations.jenkins",
                                 str(tmp_path / "request.json"), str(tmp_path / "result")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stdout + result.stderr
        values = dict(line.split("=", 1) for line in (tmp_path / "result").read_text().splitlines())
        assert values["exit_code"] == "2" and values["error"] == "UsageError"
        assert values["headline"].startswith(f"{subject}: ")
