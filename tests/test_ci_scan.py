"""The CI adapters' vulnerability scan without a runner: the kernel's mapping of `scan`, `fail-on-vuln`,
`ignore-unfixed`, `vuln-ignore-file`, `vuln-db`, `vuln-db-url` onto `dockyard build --scan ...` and its
`--scan-report` files; the GitHub job summary's scan table and the `scan` output; the GitLab component's container
scanning artifact and its merge-request note; the Jenkins step's result file. The scan results are the json
`--scan-report` (written when the gate fails the build too), else the metadata file's `dockyard.scan`.

The merge-request note talks to tests/support/gitlab_api.py, a loopback stand-in for the few GitLab API calls it
makes, because a GitLab server cannot run here: the stand-in checks each request against GitLab's published API
for that operation (see its docstring) and answers as GitLab does, refusals included."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard.scan.model import report_to_json
from dockyard_integrations.common import scan as common_scan
from dockyard_integrations.common.request import BuildRequest, build_arguments
from dockyard_integrations.github import action, summary
from dockyard_integrations.github.flags import ResultFiles
from dockyard_integrations.github.flags import build_arguments as action_arguments
from dockyard_integrations.github.inputs import ActionInputs
from dockyard_integrations.gitlab import job, note
from dockyard_integrations.gitlab.inputs import ComponentInputs
from dockyard_integrations.jenkins import step
from tests.support.gitlab_api import GitLabStandIn, Server
from tests.test_scan_reports import FULL, OPENSSL, report

REPO = Path(__file__).resolve().parent.parent
SCAN_JSON = json.dumps({"reports": [report_to_json(FULL), report_to_json(report("linux/arm64", (OPENSSL,)))]})
METADATA = {"digest": "sha256:" + "1" * 64, "config_digest": "sha256:" + "2" * 64, "platform": "linux/amd64",
            "tags": ["r/a:1"], "pushed": ["r/a:1"], "layers": [{"digest": "x", "size": 10}], "steps": [],
            "cache": {"hits": 0, "misses": 1}, "dockyard.scan": [report_to_json(FULL)]}


# --- the kernel ----------------------------------------------------------------------------------------------

def test_scan_arguments_come_after_the_supply_chain_and_before_extra_args(tmp_path):
    scan = common_scan.scan_request(scan=True, fail_on_vuln="High", ignore_unfixed=True,
                                    ignore_file=".trivyignore.yaml", database="/srv/osv",
                                    reports=(("json", tmp_path / "s.json"), ("sarif", tmp_path / "s.sarif")))
    args = build_arguments(BuildRequest(sbom="true", scan=scan, extra_args=("--no-cache",)))
    start = args.index("--scan")
    assert args[start:start + 11] == [
        "--scan", "--fail-on-vuln", "high", "--ignore-unfixed", "--vuln-ignore-file", ".trivyignore.yaml",
        "--vuln-db", "/srv/osv", "--scan-report", f"json={tmp_path / 's.json'}", "--scan-report"]
    assert args.index("--sbom=true") < start < args.index("--no-cache")
    assert "--scan" not in build_arguments(BuildRequest())
    assert common_scan.scan_request(scan=False) is None


@pytest.mark.parametrize("fields, subject, words", [
    ({"scan": False, "fail_on_vuln": "high"}, "input fail-on-vuln", "scan is not"),
    ({"scan": False, "ignore_unfixed": True}, "input ignore-unfixed", "scan is not"),
    ({"scan": False, "database_url": "https://m.example/osv"}, "input vuln-db-url", "scan is not"),
    ({"scan": True, "fail_on_vuln": "severe"}, "input fail-on-vuln", "unknown level 'severe'"),
    ({"scan": True, "database": "/srv/osv", "database_url": "https://m"}, "input vuln-db", "both set"),
])
def test_scan_settings_that_do_not_fit_are_errors_naming_the_input(fields, subject, words):
    with pytest.raises(UsageError) as info:
        common_scan.scan_request(**fields)
    assert info.value.subject == subject and words in info.value.message


def test_results_come_from_the_json_report_else_the_metadata(tmp_path):
    scan_file = tmp_path / "scan.json"
    assert common_scan.read_scan_reports(scan_file, None) == []
    assert common_scan.read_scan_reports(scan_file, METADATA) == [FULL]
    scan_file.write_text(SCAN_JSON)
    reports = common_scan.read_scan_reports(scan_file, None)
    assert [r.platform for r in reports] == ["linux/amd64", "linux/arm64"]
    # openssl on both platforms is one vulnerability of the image
    assert common_scan.counts_text(common_scan.total_counts(reports)) == "1 critical, 1 high, 1 medium, 0 low"
    assert common_scan.scan_lines(reports) == [
        "linux/amd64: 142 packages, 1 critical, 1 high, 1 medium, 0 low, 1 ignored",
        "linux/arm64: 142 packages, 0 critical, 1 high, 0 medium, 0 low"]


def test_every_adapter_offers_the_kernels_fail_on_vuln_levels():
    groovy = (REPO / "integrations/jenkins/src/io/dockyard/jenkins/BuildRequest.groovy").read_text()
    levels = re.search(r"FAIL_ON_VULN_LEVELS = \[([^\]]*)\]", groovy).group(1)
    assert tuple(re.findall(r"'(\w+)'", levels)) == common_scan.FAIL_ON_VULN_LEVELS
    template = (REPO / "templates/build.yml").read_text()
    options = re.search(r"  fail-on-vuln:\n(?:      .*\n)*?      options: \[([^\]]*)\]", template).group(1)
    assert {item.strip().strip('"') for item in options.split(",")} == {"", *common_scan.FAIL_ON_VULN_LEVELS}


# --- GitHub --------------------------------------------------------------------------------------------------

def set_inputs(monkeypatch, **inputs: str) -> None:
    for name, value in inputs.items():
        monkeypatch.setenv(f"INPUT_{name.upper()}", value)


def test_github_inputs_and_flags(monkeypatch, tmp_path):
    set_inputs(monkeypatch, scan="true", fail_on_vuln="critical", ignore_unfixed="true", scan_sarif="scan.sarif",
               vuln_db_url="https://mirror.example/osv")
    inputs = ActionInputs.from_environment()
    assert (inputs.scan, inputs.fail_on_vuln, inputs.ignore_unfixed) == (True, "critical", True)
    files = ResultFiles(metadata=tmp_path / "m.json", report=tmp_path / "r", scan_json=tmp_path / "scan.json")
    args = action_arguments(inputs, tags=["r/a:1"], labels=[], secret_dir=tmp_path / "s", files=files)
    assert f"json={tmp_path / 'scan.json'}" in args and "sarif=scan.sarif" in args
    assert args[args.index("--vuln-db-url") + 1] == "https://mirror.example/osv"
    with pytest.raises(UsageError) as info:
        action_arguments(ActionInputs(scan_sarif="x.sarif"), tags=[], labels=[], secret_dir=tmp_path / "s",
                         files=files)
    assert info.value.subject == "input scan-sarif"
    monkeypatch.setenv("INPUT_SCAN", "maybe")
    with pytest.raises(UsageError) as info:
        ActionInputs.from_environment()
    assert info.value.subject == "input scan"


def test_action_yml_passes_the_scan_inputs_and_the_scan_output():
    text = (REPO / "action.yml").read_text()
    for name in ("scan", "fail-on-vuln", "ignore-unfixed", "vuln-ignore-file", "vuln-db", "vuln-db-url",
                 "scan-sarif"):
        assert re.search(rf"^  {name}:\n    description: ", text, re.M), name
        assert f"INPUT_{name.upper().replace('-', '_')}: ${{{{ inputs.{name} }}}}" in text, name
    assert "value: ${{ steps.build.outputs.scan }}" in text


FAKE_DOCKYARD = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["SEEN"], "w") as out:
    json.dump(args, out)
for index, arg in enumerate(args):
    if arg == "--scan-report":
        fmt, _, path = args[index + 1].partition("=")
        if fmt == "json":
            open(path, "w").write(os.environ["SCAN_JSON"])
event = {"event": "build_failed", "error": "VulnerabilitiesFound", "exit_code": 12, "time": 1.0,
         "message": "2 vulnerabilities at or above high", "file": None, "line": None, "subject": None, "hint": None}
print(json.dumps(event), file=sys.stderr)
sys.exit(12)
'''


def test_github_gate_failure_still_summarises_the_scan_and_sets_the_output(tmp_path, monkeypatch):
    """main() with a stand-in for `dockyard build` that writes the json scan report and fails the gate (exit 12,
    no metadata file); the real build under act is the e2e test's."""
    fake = tmp_path / "fake_dockyard.py"
    fake.write_text(FAKE_DOCKYARD)
    output, step_summary, seen = tmp_path / "output", tmp_path / "summary.md", tmp_path / "seen.json"
    output.touch()
    for name, value in {"GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": step_summary, "RUNNER_TEMP": tmp_path,
                        "HOME": tmp_path, "SEEN": seen, "SCAN_JSON": SCAN_JSON}.items():
        monkeypatch.setenv(name, str(value))
    set_inputs(monkeypatch, tags="r/a:1", scan="true", fail_on_vuln="high")

    def run_fake(command, log, env=None):
        proc = subprocess.run([sys.executable, str(fake), *command[3:]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env)
        log.feed(proc.stderr.splitlines(keepends=True))
        return proc.returncode

    monkeypatch.setattr(action, "run_dockyard", run_fake)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert action.main() == 12
    assert "--fail-on-vuln" in json.loads(seen.read_text())
    assert "scanned linux/amd64: 142 packages, 1 critical, 1 high, 1 medium, 0 low, 1 ignored" in out.getvalue()
    md = step_summary.read_text()
    assert "## dockyard build failed" in md
    assert "### Vulnerabilities: `registry.example/app:1.0` (linux/amd64)" in md
    assert "| high | [DSA-5532-1](https://osv.dev/vulnerability/DSA-5532-1) (CVE-2023-5363) | `libssl3` " in md
    assert "app/Dockerfile:4 (RUN apt-get install -y openssl)" in md
    written = output.read_text()
    assert "scan<<" in written and '"DSA-5532-1"' in written


def test_github_summary_has_no_scan_section_without_a_scan():
    assert summary.scan_section([]) == ""


# --- GitLab --------------------------------------------------------------------------------------------------

def gitlab_files(tmp_path: Path) -> job.WorkFiles:
    return job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json",
                         scan_json=tmp_path / "scan.json", container_scanning=tmp_path / "cs.json")


def test_gitlab_inputs_and_flags(tmp_path):
    environ = {"DOCKYARD_INPUT_IMAGE": "reg/g/app", "DOCKYARD_INPUT_FAIL_ON_VULN": "high",
               "DOCKYARD_INPUT_VULN_IGNORE_FILE": ".trivyignore.yaml",
               "DOCKYARD_INPUT_TYPED": json.dumps({"scan": True, "ignore-unfixed": True, "mr-note": True})}
    inputs = ComponentInputs.from_environment(environ)
    assert (inputs.scan, inputs.fail_on_vuln, inputs.ignore_unfixed, inputs.mr_note) == (True, "high", True, True)
    assert inputs.mr_note_token_variable == "DOCKYARD_GITLAB_TOKEN"
    files = gitlab_files(tmp_path)
    args = job.build_arguments(inputs, references=["reg/g/app:main"], labels=[], files=files)
    assert args[args.index("--fail-on-vuln") + 1] == "high" and "--ignore-unfixed" in args
    assert f"gitlab={files.container_scanning}" in args and f"json={files.scan_json}" in args
    with pytest.raises(UsageError) as info:
        ComponentInputs.from_environment({**environ, "DOCKYARD_INPUT_FAIL_ON_VULN": "urgent"})
    assert info.value.subject == "input fail-on-vuln"


def test_gitlab_publishes_the_container_scanning_report_when_the_gate_failed(tmp_path, capsys):
    files = gitlab_files(tmp_path)
    files.container_scanning.write_text('{"version": "15.2.1", "vulnerabilities": []}\n')
    files.scan_json.write_text(SCAN_JSON)
    results = tmp_path / "results"
    job.publish(results, files, ComponentInputs(image="reg/g/app", scan=True), ["reg/g/app:main"], {})
    assert (results / job.CONTAINER_SCANNING).read_text() == files.container_scanning.read_text()
    assert not (results / job.DOTENV).exists()  # no metadata: the build failed, no image to hand on
    assert "scanned linux/arm64: 142 packages, 0 critical, 1 high" in capsys.readouterr().out


def test_the_template_declares_the_container_scanning_artifact():
    template = (REPO / "templates/build.yml").read_text()
    assert "      container_scanning: .dockyard/gl-container-scanning-report.json\n" in template
    assert job.CONTAINER_SCANNING == "gl-container-scanning-report.json"
    for name in ("scan", "ignore-unfixed", "mr-note"):
        assert f'"{name}": $[[ inputs.{name} ]]' in template


CODE_QUALITY = [
    {"description": "Use absolute WORKDIR", "check_name": "DL3000", "fingerprint": "f" * 64, "severity": "critical",
     "location": {"path": "app/Dockerfile", "lines": {"begin": 4, "end": 4}}, "categories": ["Bug Risk"]},
    {"description": "'as' and 'FROM' keywords' casing do not match", "check_name": "FromAsCasing",
     "fingerprint": "e" * 64, "severity": "major", "location": {"path": "app/Dockerfile", "lines": {"begin": 1,
                                                                                                    "end": 1}},
     "categories": ["Style"]},
]
TOKEN = "glpat-user-token-1234"


def mr_environ(url: str) -> dict[str, str]:
    return {"CI_MERGE_REQUEST_IID": "3", "CI_PROJECT_ID": "7", "CI_SERVER_URL": url, "CI_JOB_NAME": "build-app",
            "DOCKYARD_GITLAB_TOKEN": TOKEN, "CI_JOB_TOKEN": "job-token-cannot-write-notes",
            "CI_PIPELINE_URL": "https://gitlab.example/g/app/-/pipelines/9", "CI_COMMIT_SHORT_SHA": "abc1234"}


def test_merge_request_note_is_kept_up_to_date_and_findings_discussed_once(tmp_path, capsys):
    stand_in = GitLabStandIn(token=TOKEN, diff_lines={"app/Dockerfile": {3, 4, 5}})
    files = gitlab_files(tmp_path)
    files.code_quality.write_text(json.dumps(CODE_QUALITY))
    files.metadata.write_text(json.dumps(METADATA))
    files.scan_json.write_text(SCAN_JSON)
    inputs = ComponentInputs(image="reg/g/app", scan=True, mr_note=True)
    with Server(stand_in) as server:
        job.publish(tmp_path / "results", files, inputs, ["reg/g/app:main"], mr_environ(server.url))
        first = capsys.readouterr().out
        [summary_note] = stand_in.notes
        body = summary_note["body"]
        assert body.startswith("<!-- dockyard:build-summary job=build-app -->")
        for fact in ("dockyard build succeeded: `reg/g/app`", f"digest: `{METADATA['digest']}`",
                     "tag: `reg/g/app:main`", "Dockerfile findings: 1 critical, 1 major",
                     "vulnerabilities: 1 critical, 1 high, 1 medium, 0 low", "DSA-5532-1", "`libssl3`",
                     "`3.0.11-1~deb12u1`", "app/Dockerfile:4 (RUN apt-get install -y openssl)",
                     "[pipeline](https://gitlab.example/g/app/-/pipelines/9) at `abc1234`"):
            assert fact in body, fact
        # DL3000 is on a line the merge request changes: a diff discussion there. FromAsCasing's line 1 is not
        # in the diff: GitLab refuses the position, and the note still counts the finding.
        [discussion] = stand_in.discussions
        [diff_note] = discussion["notes"]
        assert diff_note["position"]["new_path"] == "app/Dockerfile" and diff_note["position"]["new_line"] == 4
        assert diff_note["position"]["head_sha"] == stand_in.diff_refs["head_sha"]
        assert "**dockyard DL3000** (critical): Use absolute WORKDIR" in diff_note["body"]
        assert f"note {summary_note['id']} written, 1 new finding discussion(s), 1 on lines outside the diff" in first
        # The next pipeline: the same note, updated; the finding already discussed is not posted again.
        files.scan_json.write_text(json.dumps({"reports": [report_to_json(report(vulnerabilities=()))]}))
        job.publish(tmp_path / "results", files, inputs, ["reg/g/app:main"], mr_environ(server.url))
        second = capsys.readouterr().out
    assert [n["id"] for n in stand_in.notes] == [summary_note["id"]]
    assert "vulnerabilities: 0 critical, 0 high, 0 medium, 0 low" in stand_in.notes[0]["body"]
    assert len(stand_in.discussions) == 1
    assert f"note {summary_note['id']} updated, 0 new finding discussion(s)" in second
    operations = [operation for operation, _ in stand_in.requests]
    assert operations.count("postApiV4ProjectsIdMergeRequestsNoteableIdNotes") == 1
    assert operations.count("putApiV4ProjectsIdMergeRequestsNoteableIdNotesNoteId") == 1
    assert stand_in.violations == []


def test_a_second_job_keeps_a_note_of_its_own(tmp_path, capsys):
    stand_in = GitLabStandIn(token=TOKEN)
    files = gitlab_files(tmp_path)
    files.metadata.write_text(json.dumps(METADATA))
    with Server(stand_in) as server:
        for job_name in ("build-app", "build-worker"):
            job.publish(tmp_path / "results", files, ComponentInputs(image="reg/g/app", mr_note=True), [],
                        {**mr_environ(server.url), "CI_JOB_NAME": job_name})
    assert len(stand_in.notes) == 2 and stand_in.violations == []


def test_no_note_without_a_merge_request_or_a_token_and_a_refusal_never_fails_the_job(tmp_path, capsys):
    files = gitlab_files(tmp_path)
    files.metadata.write_text(json.dumps(METADATA))
    inputs = ComponentInputs(image="reg/g/app", mr_note=True)
    stand_in = GitLabStandIn(token=TOKEN)
    with Server(stand_in) as server:
        environ = mr_environ(server.url)
        not_a_merge_request = {k: v for k, v in environ.items() if k != "CI_MERGE_REQUEST_IID"}
        job.publish(tmp_path / "r", files, inputs, [], not_a_merge_request)
        assert "not a merge request pipeline" in capsys.readouterr().out
        job.publish(tmp_path / "r", files, inputs, [], {k: v for k, v in environ.items()
                                                        if k != "DOCKYARD_GITLAB_TOKEN"})
        assert "the job token cannot write notes" in capsys.readouterr().out
        # A token GitLab refuses: the job's log says so, and the job goes on to hand the image on.
        job.publish(tmp_path / "r", files, inputs, [], {**environ, "DOCKYARD_GITLAB_TOKEN": "revoked"})
        captured = capsys.readouterr()
    assert "merge request note not written" in captured.err and "401" in captured.err
    assert (tmp_path / "r" / job.DOTENV).exists()
    assert stand_in.notes == []


def test_the_note_is_cut_to_gitlabs_limit():
    ctx = note.MergeRequestContext(server_url="http://x", project_id="7", merge_request_iid=3, job_name="j",
                                   token="t")
    many = report(vulnerabilities=tuple(OPENSSL._replace(advisory=f"DSA-{n}-1", summary="x" * 20_000)
                                        for n in range(60)))
    body = note.note_body(ctx, image="r/a", succeeded=True, metadata=None, references=[], findings=[],
                          scans=[many])
    assert len(body) < 1_000_000 and body.rstrip().endswith("._")


# --- Jenkins -------------------------------------------------------------------------------------------------

def jenkins_files(tmp_path: Path) -> step.StepFiles:
    return step.StepFiles(sarif=tmp_path / "s", text=tmp_path / "t", findings=tmp_path / "f.json",
                          digest=tmp_path / "d", metadata=tmp_path / "m", scan_json=tmp_path / "scan.json",
                          scan_issues=tmp_path / "vulnerabilities.json")


def test_jenkins_scan_arguments_and_result_file(tmp_path):
    files = jenkins_files(tmp_path)
    request = {"image": "reg/app", "references": ["reg/app:1"], "scan": True, "failOnVuln": "medium",
               "ignoreUnfixed": True, "vulnDb": "/srv/osv.zip"}
    args = build_arguments(step.build_request(request, files, environ={}))
    assert args[args.index("--fail-on-vuln") + 1] == "medium" and "--ignore-unfixed" in args
    assert f"jenkins={files.scan_issues}" in args and args[args.index("--vuln-db") + 1] == "/srv/osv.zip"
    files.scan_json.write_text(SCAN_JSON)
    values = step.result_values(12, files, "error", None)
    assert values["vulnerabilities"] == "1 critical, 1 high, 1 medium, 0 low"
    assert values["scanned"].splitlines()[1] == "linux/arm64: 142 packages, 0 critical, 1 high, 0 medium, 0 low"
    assert "--scan" not in build_arguments(step.build_request({"image": "reg/app"}, files, environ={}))


def test_jenkins_scan_errors_name_the_steps_argument(tmp_path):
    with pytest.raises(UsageError) as info:
        step.build_request({"image": "reg/app", "failOnVuln": "high"}, jenkins_files(tmp_path), environ={})
    assert info.value.subject == "failOnVuln" and "scan is not" in info.value.message
    with pytest.raises(UsageError) as info:
        step.build_request({"image": "reg/app", "scan": True, "vulnDb": "a", "vulnDbUrl": "b"},
                           jenkins_files(tmp_path), environ={})
    assert info.value.subject == "vulnDb"
