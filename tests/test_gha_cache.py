"""type=gha: choosing the cache service version from the runner's variables, and the v2 API (twirp
CacheService + signed blob storage URLs, what GitHub's hosted runners use) end to end through the command line.

act serves only the v1 API (tests/e2e/test_gha_cache.py runs it for real), so v2 is exercised against a loopback
STAND-IN written here from the protocol as BuildKit's client (tonistiigi/go-actions-cache, cache_v2.go) and
@actions/cache speak it: CreateCacheEntry / FinalizeCacheEntryUpload / GetCacheEntryDownloadURL under
/twirp/github.actions.results.api.v1.CacheService/, uploads as Azure Put Blob or Put Block + Put Block List,
downloads by GET. It is a mock because GitHub's service cannot run here; it checks what the real one checks
(bearer token on the service, none on the storage URLs, version match, immutable keys, committed size).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from dockyard.cache import gha
from dockyard.errors import RegistryError, UsageError
from tests.e2e.helpers import dockyard, write_context

TOKEN = "runtime-token-7f3a"
EPOCH = "1700000000"


class StandIn:
    """The v2 cache service and its blob storage on one loopback port."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}  # key -> {"version", "id", "committed", "data"}
        self.blocks: dict[int, dict[str, bytes]] = {}
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.refusals: list[int] = []  # statuses the next service requests get (429: rate limited)
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, code: int, body: bytes = b"", kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self) -> None:
                stand_in.log.append(("POST", self.path, self.headers.get("Authorization")))
                method = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/twirp/github.actions.results.api.v1.CacheService/"):
                    return self._reply(404)
                if stand_in.refusals:
                    self._body()
                    return self._reply(stand_in.refusals.pop(0), b'{"code":"resource_exhausted"}')
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, b'{"code":"unauthenticated"}')
                request = json.loads(self._body())
                with stand_in.lock:
                    answer = stand_in.twirp(method, request, self.server.server_address[1])
                if answer is None:
                    return self._reply(409, b'{"code":"already_exists","msg":"cache entry exists"}')
                self._reply(200, json.dumps(answer).encode())

            def do_PUT(self) -> None:
                stand_in.log.append(("PUT", self.path, self.headers.get("Authorization")))
                url = urlparse(self.path)
                query = parse_qs(url.query)
                entry_id = int(url.path.rsplit("/", 1)[-1])
                data = self._body()
                with stand_in.lock:
                    entry = next(e for e in stand_in.entries.values() if e["id"] == entry_id)
                    comp = query.get("comp", [""])[0]
                    if comp == "block":
                        stand_in.blocks.setdefault(entry_id, {})[query["blockid"][0]] = data
                    elif comp == "blocklist":
                        ids = re.findall(r"<Latest>([^<]+)</Latest>", data.decode())
                        entry["data"] = b"".join(stand_in.blocks[entry_id][i] for i in ids)
                    elif self.headers.get("x-ms-blob-type") == "BlockBlob":
                        entry["data"] = data
                    else:
                        return self._reply(400)
                self._reply(201)

            def do_GET(self) -> None:
                stand_in.log.append(("GET", self.path, self.headers.get("Authorization")))
                entry_id = int(urlparse(self.path).path.rsplit("/", 1)[-1])
                with stand_in.lock:
                    entry = next(e for e in stand_in.entries.values() if e["id"] == entry_id)
                self._reply(200, entry["data"], "application/octet-stream")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def twirp(self, method: str, request: dict, port: int) -> dict | None:
        key = request["key"].lower()
        if method == "CreateCacheEntry":
            if key in self.entries:
                return None
            entry = {"version": request["version"], "id": len(self.entries) + 1, "committed": False, "data": b""}
            self.entries[key] = entry
            return {"ok": True, "signed_upload_url": f"http://127.0.0.1:{port}/blob/{entry['id']}?sv=2020&sig=x"}
        if method == "FinalizeCacheEntryUpload":
            entry = self.entries[key]
            assert len(entry["data"]) == request["size_bytes"] and entry["version"] == request["version"]
            entry["committed"] = True
            return {"ok": True, "entry_id": str(entry["id"])}
        if method == "GetCacheEntryDownloadURL":
            found = [(k, e) for k, e in self.entries.items() if e["committed"] and e["version"] == request["version"]
                     and (k == key or any(k.startswith(p.lower()) for p in request.get("restore_keys") or []))]
            if not found:
                return {"ok": False}
            matched, entry = max(found, key=lambda item: item[1]["id"])  # the newest
            return {"ok": True, "signed_download_url": f"http://127.0.0.1:{port}/blob/{entry['id']}?sig=r",
                    "matched_key": matched}
        raise AssertionError(method)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    server = StandIn()
    yield server
    server.close()


def test_version_follows_the_runners_variables_as_buildkit_does():
    v1 = {"ACTIONS_CACHE_URL": "http://cache.local/abc/"}
    both = {**v1, "ACTIONS_RESULTS_URL": "https://results.local/", "ACTIONS_RUNTIME_TOKEN": "t"}
    assert gha.endpoint("", "", "", "", v1) == gha.Endpoint(1, "http://cache.local/abc/", "")
    assert gha.endpoint("", "", "", "", {**both, "ACTIONS_CACHE_SERVICE_V2": "True"}).version == 2
    assert gha.endpoint("", "", "", "", {**both, "ACTIONS_CACHE_SERVICE_V2": "True",
                                         "ACTIONS_CACHE_API_FORCE_VERSION": "v1"}).version == 1
    assert gha.endpoint("", "", "", "2", both).url == "https://results.local/"
    assert gha.endpoint("http://given/", "", "tok", "", {}) == gha.Endpoint(1, "http://given/", "tok")
    assert "tok" not in repr(gha.endpoint("http://given/", "", "tok", "", {}))


@pytest.mark.parametrize("environ, words", [
    ({}, "ACTIONS_CACHE_URL is not set"),
    ({"ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": "https://r/"}, "ACTIONS_RUNTIME_TOKEN is not set"),
    ({"ACTIONS_CACHE_URL": "file:///tmp/x"}, "not an http(s) URL"),
])
def test_missing_service_is_a_usage_error_that_says_how_to_get_it(environ, words):
    with pytest.raises(UsageError) as info:
        gha.endpoint("", "", "", "", environ)
    assert words in info.value.render()
    assert ("ghaction-github-runtime" in info.value.render()) == ("not set" in words)  # how to get the variables


def test_v2_block_upload_of_a_big_entry(stand_in, monkeypatch):
    """An entry over the single-request limit goes up as Put Block per chunk, then Put Block List in order; a
    rate-limited (429) or failing (5xx) service request is tried again."""
    monkeypatch.setattr(gha, "SINGLE_PUT_LIMIT", 10)
    cache = gha.ActionsCache(gha.Endpoint(2, stand_in.url, TOKEN))
    chunks = [b"first-", b"second-", b"third"]
    stand_in.refusals = [429, 503]  # rate limited, then a bad moment: the third attempt goes through
    assert cache.save("k", sum(map(len, chunks)), iter(chunks))
    assert not stand_in.refusals
    assert not cache.save("k", 1, iter([b"x"]))  # entries are immutable: the key is taken
    found = cache.find("k")
    assert found is not None
    assert b"".join(cache.download(found)) == b"first-second-third"
    assert [p for m, p, _ in stand_in.log if m == "PUT" and "comp=block&" in p].__len__() == 3


def test_cli_round_trip_through_the_v2_service(stand_in, busybox_base, tmp_path):
    """--cache-to type=gha with the variables a hosted runner sets, then a build with a fresh --cache-dir takes
    every step from the service; the token goes to the service only, never to storage URLs or the output."""
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_base} AS tools\nRUN echo tool > /tool\nFROM {busybox_base}\n"
                      "COPY a.txt /a.txt\nRUN cat /a.txt > /b\nCOPY --from=tools /tool /tool\n",
        "a.txt": "a\n"})
    env = {"SOURCE_DATE_EPOCH": EPOCH, "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": stand_in.url,
           "ACTIONS_RUNTIME_TOKEN": TOKEN}

    def build(name: str, *args: str) -> tuple[dict, str]:
        meta = tmp_path / name / "meta.json"
        result = dockyard("build", "--cache-dir", str(tmp_path / name / "cache"), "--metadata-file", str(meta),
                          "--output", f"type=oci,dest={tmp_path / name / 'image'}", *args, str(context), env=env)
        assert result.returncode == 0, result.stderr
        assert TOKEN not in result.stdout + result.stderr
        return json.loads(meta.read_text()), result.stderr

    first, log = build("one", "--cache-from", "type=gha,scope=web", "--cache-to", "type=gha,scope=web,mode=max")
    assert "has nothing to import yet" in log
    keys = sorted(stand_in.entries)
    assert keys[-1] == "dockyard-index-web-1#1"
    manifest = json.loads(stand_in.entries[keys[-1]]["data"])
    assert manifest["config"]["data"]  # the config travels inline: an import is one download
    # One entry per distinct layer (RUN echo tool and COPY --from=tools /tool make the same layer).
    assert {k for k in keys if k.startswith(gha.BLOB_PREFIX)} == {gha.BLOB_PREFIX + d["digest"]
                                                                   for d in manifest["layers"]}
    second, log = build("two", "--cache-from", "type=gha,scope=web")
    assert [s["cached"] for s in second["steps"] if not s["instruction"].startswith("FROM")] == [True] * 4
    assert second["digest"] == first["digest"]
    # A second export writes the scope's next index entry; the newest is what a reader gets.
    build("three", "--cache-to", "type=gha,scope=web")
    assert "dockyard-index-web-1#2" in stand_in.entries
    # The service evicted one layer: its step runs again instead of failing when the layer is needed.
    evicted = next(s["layer"] for s in first["steps"] if s["instruction"].startswith("RUN cat"))
    del stand_in.entries[gha.BLOB_PREFIX + evicted]
    fourth, _ = build("four", "--cache-from", "type=gha,scope=web")
    cached = {s["instruction"]: s["cached"] for s in fourth["steps"] if not s["instruction"].startswith("FROM")}
    # The newest index (#2, mode=min) has no tools stage; of the rest only the evicted layer's step ran.
    assert cached == {"RUN echo tool > /tool": False, "COPY a.txt /a.txt": True, "RUN cat /a.txt > /b": False,
                      "COPY --from=tools /tool /tool": True}
    assert fourth["digest"] == first["digest"]
    service = [auth for _m, path, auth in stand_in.log if path.startswith("/twirp/")]
    storage = [auth for _m, path, auth in stand_in.log if path.startswith("/blob/")]
    assert service and all(a == f"Bearer {TOKEN}" for a in service)
    assert storage and all(a is None for a in storage)


def test_cache_to_gha_without_a_service_fails_before_building(busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo x > /x\n"})
    no_service = {"ACTIONS_CACHE_URL": "", "ACTIONS_RESULTS_URL": "", "ACTIONS_RUNTIME_TOKEN": ""}
    result = dockyard("build", "--cache-dir", str(tmp_path / "cache"), "--cache-to", "type=gha", str(context),
                      env=no_service)
    assert result.returncode == UsageError.exit_code and "ACTIONS_CACHE_URL is not set" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "RUN echo x" not in result.stderr
    # ignore-error=true: the image is built and the failed export is a warning, as BuildKit does.
    result = dockyard("build", "--cache-dir", str(tmp_path / "cache"), "--cache-to", "type=gha,ignore-error=true",
                      str(context), env=no_service)
    assert result.returncode == 0 and "cannot export the build cache to the GitHub Actions cache" in result.stderr


def test_an_unreachable_service_on_import_is_a_warning(busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_base}\nRUN echo x > /x\n"})
    result = dockyard("build", "--cache-dir", str(tmp_path / "cache"), "--cache-from", "type=gha,url=http://127.0.0.1:9/",
                      str(context), env={"ACTIONS_RUNTIME_TOKEN": ""})
    assert result.returncode == 0, result.stderr
    assert "cannot import the build cache the GitHub Actions cache (scope buildkit)" in result.stderr




def test_a_failed_download_is_a_registry_error_that_does_not_print_the_signed_url():
    cache = gha.ActionsCache(gha.Endpoint(2, "http://127.0.0.1:9/", TOKEN))
    with pytest.raises(RegistryError) as info:
        b"".join(cache.download(gha.Found("dockyard-blob-1-x", "http://127.0.0.1:9/blob/1?sig=SECRET")))
    assert "dockyard-blob-1-x" in info.value.message and "SECRET" not in info.value.render()
