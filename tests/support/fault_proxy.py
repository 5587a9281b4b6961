"""An HTTP reverse proxy on loopback that sits between dockyard and the real test registry and injects faults.

Clients address the proxy as if it were the registry (`{proxy.host}/repo:tag`); the Host header goes through
unchanged, so the upload Locations the registry builds point back at the proxy. Each request is matched
against the rules in order; every matching rule counts the request, and the first one whose turn it is (past
its `skip` matches, within its `times`) is applied:

* `cut_request`: read `after` bytes of the request body, then drop the connection (the registry sees nothing);
* `cut_response`: forward the request, then send the answer's headers and `after` bytes of its body and drop
  the connection (the registry did the work; the client lost the answer);
* `drop_response`: forward the request, then drop the connection without answering;
* `status`: answer `status` with `headers` (e.g. 500, or 429 with Retry-After) without forwarding, and `body`
  when one is given (else a registry error document);
* `delay`: wait `seconds`, then forward (a slow registry);
* `strip_range`: forward without the Range header (a registry that cannot resume downloads).

Every request is logged (method, path, query, Content-Range, Range, the rule applied) for tests to assert on.
Bodies are held in memory: this is for test-sized blobs.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class Rule:
    action: str  # cut_request | cut_response | drop_response | status | delay | strip_range
    method: str | None = None  # None: any
    path: str = ""  # a regular expression searched in the path
    query: str = ""  # a regular expression searched in the query string
    skip: int = 0  # matching requests to let through before applying
    times: int = 1  # how many matching requests it applies to (-1: all)
    after: int = 0  # bytes let through before a cut
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a `status` answer's body
    seconds: float = 0.0
    seen: int = 0

    def matches(self, method: str, path: str, query: str) -> bool:
        return ((self.method is None or self.method == method) and re.search(self.path, path) is not None
                and re.search(self.query, query) is not None)

    def count(self) -> bool:
        """Count a matching request; True if this one is the rule's to fault."""
        self.seen += 1
        return self.seen > self.skip and (self.times < 0 or self.seen <= self.skip + self.times)


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    query: dict[str, list[str]]
    content_range: str | None
    range: str | None
    fault: str | None


class FaultProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.rules: list[Rule] = []
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, action: str, **kwargs) -> Rule:
        rule = Rule(action, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def requests(self, method: str | None = None, path: str = "") -> list[Logged]:
        with self._lock:
            return [e for e in self.log if (method is None or e.method == method) and re.search(path, e.path)]

    def _take_rule(self, method: str, path: str, query: str) -> Rule | None:
        chosen = None
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, query) and rule.count() and chosen is None:
                    chosen = rule
        return chosen

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)


def _handler_class(proxy: FaultProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _dispatch(self):
            try:
                self._apply_rules()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout a test provoked): nothing to do

        def _apply_rules(self):
            url = urlsplit(self.path)
            rule = proxy._take_rule(self.command, url.path, url.query)
            proxy._record(Logged(self.command, url.path, parse_qs(url.query), self.headers.get("Content-Range"),
                                 self.headers.get("Range"), rule.action if rule else None))
            length = int(self.headers.get("Content-Length") or 0)
            if rule is not None and rule.action == "cut_request":
                self.rfile.read(min(rule.after, length))
                return self._drop()
            body = self.rfile.read(length) if length else b""
            if rule is not None and rule.action == "status":
                return self._answer(rule.status, rule.headers, rule.body if rule.body is not None else
                                    b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}')
            if rule is not None and rule.action == "delay":
                time.sleep(rule.seconds)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if rule is not None and rule.action == "strip_range":
                headers = {k: v for k, v in headers.items() if k.lower() != "range"}
            status, reply_headers, reply = self._forward(headers, body)
            if rule is not None and rule.action == "drop_response":
                return self._drop()
            if rule is not None and rule.action == "cut_response":
                return self._answer(status, reply_headers, reply, cut_after=rule.after)
            return self._answer(status, reply_headers, reply)

        def _forward(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                resp = upstream.getresponse()
                reply = resp.read()
                kept = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}}
                if self.command == "HEAD":
                    kept["Content-Length"] = resp.getheader("Content-Length", "0")
                return resp.status, kept, reply
            finally:
                upstream.close()

        def _answer(self, status: int, headers: dict[str, str], body: bytes, cut_after: int | None = None):
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if self.command != "HEAD" or "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if cut_after is None:
                self.wfile.write(body)
                return
            self.wfile.write(body[:cut_after])
            self.wfile.flush()
            self._drop()

        def _drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    return Handler
