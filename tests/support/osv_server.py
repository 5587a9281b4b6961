"""A loopback stand-in for osv.dev's archive bucket: serves `<Ecosystem>/all.zip` made from OSV records, answers
conditional requests (ETag / If-None-Match, Last-Modified / If-Modified-Since) as a storage bucket does, counts
requests, and can cut a download short (Content-Length promised, connection closed) to test an interrupted
download."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable

DATA = Path(__file__).resolve().parent.parent / "vuln_data"


def fixture_records() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(DATA.glob("*.json"))]


def archives(records: Iterable[dict]) -> dict[str, bytes]:
    """One zip per base ecosystem, as osv.dev publishes them (a record is in every ecosystem it names)."""
    grouped: dict[str, list[dict]] = {}
    for record in records:
        for ecosystem in {a["package"]["ecosystem"].split(":")[0] for a in record["affected"]}:
            grouped.setdefault(ecosystem, []).append(record)
    return {ecosystem: zip_of(items) for ecosystem, items in grouped.items()}


def zip_of(records: Iterable[dict]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            info = zipfile.ZipInfo(f"{record['id']}.json", date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, json.dumps(record))
    return buffer.getvalue()


class OsvServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)  # ecosystem -> all.zip bytes
        self.requests: list[tuple[str, int]] = []  # (path, status)
        self.cut_short = False
        self.modified = formatdate(1704067200, usegmt=True)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                body = server.files.get(parts[0]) if len(parts) == 2 and parts[1] == "all.zip" else None
                if body is None:
                    self._status(404)
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._status(304)
                    return
                self.send_response(200)
                server.requests.append((self.path, 200))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", server.modified)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_short:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _status(self, code: int) -> None:
                server.requests.append((self.path, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OsvServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
