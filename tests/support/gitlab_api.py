"""A loopback stand-in for the few GitLab REST API calls the merge-request note makes (a GitLab server cannot run
here). Each request is checked against GitLab's published API for that operation: the path, the authentication
header, the parameters the operation takes and those it requires, and the values it allows, as GitLab's REST
API documentation (doc/api/notes.md, doc/api/discussions.md, doc/api/merge_requests.md) and its OpenAPI
description (doc/api/openapi/openapi_v2.yaml, operation ids below) publish them. A request outside that contract
is answered as GitLab answers it (400 naming the parameter, 401, 404) and recorded in `violations`, which a test
asserts empty. A diff discussion on a line outside the merge request's diff is refused as GitLab refuses it."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/api/v4/projects/{id}/merge_requests/{iid}"


@dataclass(frozen=True)
class Operation:
    operation_id: str  # openapi_v2.yaml's operationId
    method: str
    path: str  # after /api/v4
    required: tuple[str, ...] = ()  # body parameters GitLab requires
    allowed: tuple[str, ...] = ()  # body or query parameters the operation takes


# The operations the note uses. Pagination (page, per_page) is allowed on every list, as GitLab's API has it.
OPERATIONS = (
    Operation("getApiV4ProjectsIdMergeRequestsMergeRequestIid", "GET", "/projects/{id}/merge_requests/{iid}",
              allowed=("render_html", "include_diverged_commits_count", "include_rebase_in_progress")),
    Operation("getApiV4ProjectsIdMergeRequestsNoteableIdNotes", "GET", "/projects/{id}/merge_requests/{iid}/notes",
              allowed=("order_by", "sort", "activity_filter", "page", "per_page", "pagination")),
    Operation("postApiV4ProjectsIdMergeRequestsNoteableIdNotes", "POST", "/projects/{id}/merge_requests/{iid}/notes",
              required=("body",), allowed=("body", "confidential", "internal", "created_at",
                                           "merge_request_diff_head_sha")),
    Operation("putApiV4ProjectsIdMergeRequestsNoteableIdNotesNoteId", "PUT",
              "/projects/{id}/merge_requests/{iid}/notes/{note_id}", required=("body",),
              allowed=("body", "confidential")),
    Operation("getApiV4ProjectsIdMergeRequestsNoteableIdDiscussions", "GET",
              "/projects/{id}/merge_requests/{iid}/discussions", allowed=("page", "per_page", "pagination")),
    Operation("postApiV4ProjectsIdMergeRequestsNoteableIdDiscussions", "POST",
              "/projects/{id}/merge_requests/{iid}/discussions", required=("body",),
              allowed=("body", "position", "commit_id", "created_at")),
)
# A diff discussion's position (doc/api/discussions.md, "Create a new thread in the merge request diff"):
# base_sha, start_sha, head_sha and position_type are required; new_path/old_path and new_line/old_line for text.
POSITION_REQUIRED = ("base_sha", "start_sha", "head_sha", "position_type")
POSITION_ALLOWED = POSITION_REQUIRED + ("new_path", "old_path", "new_line", "old_line", "line_range", "width",
                                        "height", "x", "y")
POSITION_TYPES = ("text", "image", "file")


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^/api/v4" + re.sub(r"\{[a-z_]+\}", r"([^/]+)", path) + "$")


@dataclass
class GitLabStandIn:
    """One project's one merge request: its notes, its discussions, and the lines its diff changes."""

    token: str
    project_id: str = "7"
    iid: int = 3
    diff_lines: dict[str, set[int]] = field(default_factory=dict)  # path → new lines in the diff
    diff_refs: dict[str, str] = field(default_factory=lambda: {
        "base_sha": "a" * 40, "start_sha": "b" * 40, "head_sha": "c" * 40})
    notes: list[dict[str, Any]] = field(default_factory=list)
    discussions: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (operation id, path)
    violations: list[str] = field(default_factory=list)
    _next_id: int = 100

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: Any,
               body: dict[str, Any]) -> tuple[int, Any]:
        for operation in OPERATIONS:
            match = _pattern(operation.path).match(path)
            if operation.method != method or not match:
                continue
            self.requests.append((operation.operation_id, path))
            if headers.get("PRIVATE-TOKEN") != self.token and headers.get("Authorization") != f"Bearer {self.token}":
                self.violations.append(f"{operation.operation_id}: not authenticated with the user's token")
                return 401, {"message": "401 Unauthorized"}
            project, iid = match.group(1), match.group(2)
            if project != self.project_id or iid != str(self.iid):
                return 404, {"message": "404 Not found"}
            given = set(body) | set(query)
            unknown = given - set(operation.allowed)
            missing = [name for name in operation.required if not body.get(name)]
            if unknown or missing:
                self.violations.append(f"{operation.operation_id}: unknown {sorted(unknown)} missing {missing}")
                return 400, {"error": f"{(missing or sorted(unknown))[0]} is missing" if missing
                             else f"{sorted(unknown)[0]} does not have a valid value"}
            return getattr(self, "_" + operation.operation_id)(match, body)
        self.violations.append(f"no such operation: {method} {path}")
        return 404, {"message": "404 Not Found"}

    def _note(self, body: str, **more: Any) -> dict[str, Any]:
        return {"id": self.next_id(), "type": more.pop("type", None), "body": body, "system": False,
                "noteable_type": "MergeRequest", "noteable_iid": self.iid, "author": {"id": 1, "username": "bot"},
                "created_at": "2026-12-07T21:00:00.000Z", "updated_at": "2026-12-07T21:00:00.000Z",
                "resolvable": False, **more}

    def _getApiV4ProjectsIdMergeRequestsMergeRequestIid(self, match, body):
        return 200, {"id": 1000 + self.iid, "iid": self.iid, "project_id": int(self.project_id), "state": "opened",
                     "title": "Add the app", "diff_refs": dict(self.diff_refs), "sha": self.diff_refs["head_sha"]}

    def _getApiV4ProjectsIdMergeRequestsNoteableIdNotes(self, match, body):
        return 200, list(self.notes)

    def _postApiV4ProjectsIdMergeRequestsNoteableIdNotes(self, match, body):
        note = self._note(str(body["body"]))
        self.notes.append(note)
        return 201, note

    def _putApiV4ProjectsIdMergeRequestsNoteableIdNotesNoteId(self, match, body):
        for note in self.notes:
            if str(note["id"]) == match.group(3):
                note["body"] = str(body["body"])
                note["updated_at"] = "2026-12-07T22:00:00.000Z"
                return 200, note
        return 404, {"message": "404 Note Not Found"}

    def _getApiV4ProjectsIdMergeRequestsNoteableIdDiscussions(self, match, body):
        return 200, list(self.discussions)

    def _postApiV4ProjectsIdMergeRequestsNoteableIdDiscussions(self, match, body):
        position = body.get("position")
        if position is not None:
            problems = [name for name in POSITION_REQUIRED if not position.get(name)]
            problems += [name for name in position if name not in POSITION_ALLOWED]
            if position.get("position_type") not in POSITION_TYPES:
                problems.append("position_type")
            if problems:
                self.violations.append(f"discussion position: {problems}")
                return 400, {"error": f"position[{problems[0]}] is missing or invalid"}
            if {key: position[key] for key in ("base_sha", "start_sha", "head_sha")} != self.diff_refs:
                self.violations.append("discussion position: not the merge request's diff_refs")
                return 400, {"message": "400 Bad request - Note {:line_code=>[\"can't be blank\"]}"}
            if position.get("new_line") not in self.diff_lines.get(str(position.get("new_path")), set()):
                # GitLab's answer to a line outside the diff (not a contract violation: the caller must cope).
                return 400, {"message": "400 Bad request - Note {:line_code=>[\"can't be blank\", "
                                        "\"must be a valid line code\"]}"}
        note = self._note(str(body["body"]), type="DiffNote" if position else "DiscussionNote",
                          position=position, resolvable=bool(position))
        discussion = {"id": f"{self.next_id():040x}", "individual_note": False, "notes": [note]}
        self.discussions.append(discussion)
        return 201, discussion


class _Handler(BaseHTTPRequestHandler):
    stand_in: GitLabStandIn

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: dict[str, Any] = {}
        if raw:
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
            else:
                body = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
        status, answer = self.stand_in.handle(self.command, url.path, parse_qs(url.query), self.headers, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    """The stand-in on 127.0.0.1, on a port of its own, for a `with` block."""

    def __init__(self, stand_in: GitLabStandIn) -> None:
        handler = type("Handler", (_Handler,), {"stand_in": stand_in})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
