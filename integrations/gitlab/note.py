"""The merge-request note: in a merge request pipeline, one note with the build's summary (image, digest, tags,
what was attested and signed, Dockerfile findings and vulnerabilities by severity), kept up to date across
pipelines instead of piling up, and each Dockerfile finding as a diff discussion on its line, once.

Through python-gitlab, with a token the user gives (a project or personal access token with the `api` scope, in
the CI/CD variable the `mr-note-token-variable` input names): the job token (CI_JOB_TOKEN) cannot write notes.
The note is found again by a hidden marker naming the job, so a component included twice keeps two notes; a
discussion by a marker holding the finding's fingerprint, so a finding already discussed is not posted again.
A note that cannot be written never fails the build: it is a notification, and the reports hold everything."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard import ScanReport, render_scan

from ..common.scan import counts_text, total_counts
from ..common.supplychain import attestation_lines, signature_lines

NOTE_MARKER = "<!-- dockyard:build-summary job={job} -->"
FINDING_MARKER = "<!-- dockyard:finding {fingerprint} -->"
# GitLab's limit on a note's body is 1,000,000 characters; the vulnerability table is cut well before.
NOTE_LIMIT = 900_000


@dataclass(frozen=True)
class MergeRequestContext:
    """Where the note goes: the merge request of a merge request pipeline, the server, the token."""

    server_url: str  # CI_SERVER_URL
    project_id: str  # CI_PROJECT_ID (or CI_MERGE_REQUEST_PROJECT_ID: the target project of a fork's MR)
    merge_request_iid: int
    job_name: str
    token: str
    pipeline_url: str = ""
    commit: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], token_variable: str) -> MergeRequestContext | str:
        """The context, or why there is none (printed in the job's log; the build goes on)."""
        iid = environ.get("CI_MERGE_REQUEST_IID", "")
        if not iid.isdigit():
            return "no merge request note: this is not a merge request pipeline (CI_MERGE_REQUEST_IID is not set)"
        token = environ.get(token_variable, "").strip()
        if not token:
            return (f"no merge request note: the CI/CD variable {token_variable} holding an access token with the "
                    "api scope is not set (the job token cannot write notes)")
        return cls(server_url=environ.get("CI_SERVER_URL", "").rstrip("/"),
                   project_id=environ.get("CI_MERGE_REQUEST_PROJECT_ID") or environ.get("CI_PROJECT_ID", ""),
                   merge_request_iid=int(iid), job_name=environ.get("CI_JOB_NAME", "dockyard-build"), token=token,
                   pipeline_url=environ.get("CI_PIPELINE_URL", ""), commit=environ.get("CI_COMMIT_SHORT_SHA", ""))


@dataclass(frozen=True)
class CodeQualityFinding:
    """One entry of the code quality report dockyard wrote (`--report gitlab=`)."""

    rule: str
    message: str
    severity: str  # Code Climate's: info, minor, major, critical, blocker
    path: str
    line: int
    fingerprint: str

    @classmethod
    def read_all(cls, report: Path) -> list[CodeQualityFinding]:
        try:
            entries = json.loads(report.read_text())
        except FileNotFoundError:
            return []
        return [cls(rule=str(entry["check_name"]), message=str(entry["description"]),
                    severity=str(entry["severity"]), path=str(entry["location"]["path"]),
                    line=int(entry["location"]["lines"]["begin"]), fingerprint=str(entry["fingerprint"]))
                for entry in entries]


def note_body(ctx: MergeRequestContext, *, image: str, succeeded: bool, metadata: Mapping[str, Any] | None,
              references: Sequence[str], findings: Sequence[CodeQualityFinding],
              scans: Sequence[ScanReport]) -> str:
    lines = [NOTE_MARKER.format(job=ctx.job_name),
             f"### dockyard build {'succeeded' if succeeded else 'failed'}: `{image}` ({ctx.job_name})", ""]
    if metadata is not None:
        lines.append(f"- digest: `{metadata['digest']}`")
        lines += [f"- tag: `{reference}`" for reference in references]
        lines += [f"- attested {line}" for line in attestation_lines(metadata)]
        lines += [f"- signed {line}" for line in signature_lines(metadata)]
    by_severity: dict[str, int] = {}
    for finding in findings:
        by_severity[finding.severity] = by_severity.get(finding.severity, 0) + 1
    lines.append("- Dockerfile findings: " + (", ".join(f"{count} {severity}" for severity, count
                                                        in sorted(by_severity.items())) or "none"))
    if scans:
        lines.append(f"- vulnerabilities: {counts_text(total_counts(list(scans)))}")
        lines += ["", render_scan(scans, "markdown", heading="####")]
    footer = "_Updated by " + (f"[pipeline]({ctx.pipeline_url})" if ctx.pipeline_url else "the pipeline") + (
        f" at `{ctx.commit}`" if ctx.commit else "") + "._"
    body = "\n".join(lines).rstrip("\n")
    if len(body) > NOTE_LIMIT:
        body = body[:NOTE_LIMIT] + "\n\n…(cut: the job's reports hold the rest)"
    return body + "\n\n" + footer + "\n"


def finding_body(finding: CodeQualityFinding) -> str:
    return (f"{FINDING_MARKER.format(fingerprint=finding.fingerprint)}\n**dockyard {finding.rule}** "
            f"({finding.severity}): {finding.message}\n")


@dataclass(frozen=True)
class NoteOutcome:
    note_id: int
    created: bool  # False: the existing note was updated
    discussions_created: int
    discussions_skipped: int  # a line outside the diff, which GitLab refuses a diff discussion on


def publish_note(ctx: MergeRequestContext, body: str, findings: Sequence[CodeQualityFinding]) -> NoteOutcome:
    """Creates or updates the summary note, and starts a diff discussion for each finding not discussed yet."""
    import gitlab  # the `gitlab` extra: only this job needs it

    client = gitlab.Gitlab(ctx.server_url, private_token=ctx.token, retry_transient_errors=True)
    project = client.projects.get(ctx.project_id, lazy=True)
    merge_request = project.mergerequests.get(ctx.merge_request_iid)
    marker = NOTE_MARKER.format(job=ctx.job_name)
    existing = next((note for note in merge_request.notes.list(iterator=True)
                     if str(note.body).startswith(marker)), None)
    if existing is None:
        note = merge_request.notes.create({"body": body})
        created = True
    else:
        note = existing
        note.body = body
        note.save()
        created = False
    discussed = set()
    for discussion in merge_request.discussions.list(iterator=True):
        for item in discussion.attributes.get("notes", []):
            first_line = str(item.get("body", "")).split("\n", 1)[0]
            if first_line.startswith("<!-- dockyard:finding "):
                discussed.add(first_line)
    refs = merge_request.diff_refs or {}
    made = skipped = 0
    for finding in findings:
        if FINDING_MARKER.format(fingerprint=finding.fingerprint) in discussed:
            continue
        position = {"position_type": "text", "base_sha": refs.get("base_sha"), "start_sha": refs.get("start_sha"),
                    "head_sha": refs.get("head_sha"), "new_path": finding.path, "old_path": finding.path,
                    "new_line": finding.line}
        try:
            merge_request.discussions.create({"body": finding_body(finding), "position": position})
            made += 1
        except gitlab.exceptions.GitlabCreateError:
            skipped += 1  # GitLab refuses a position outside the merge request's diff: the note counts it
    return NoteOutcome(note_id=int(note.id), created=created, discussions_created=made, discussions_skipped=skipped)
