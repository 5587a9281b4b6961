"""The documentation site for tests: built with mkdocs strictly (mkdocs.yml), its links read back from the HTML,
and served on loopback for a browser."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

REPO = Path(__file__).resolve().parents[2]
# What the site is made of: the config, its hooks, the pages and the README (the front page).
SITE_SOURCES = ("mkdocs.yml", "README.md", "CHANGELOG.md", "docs", "scripts/docsite")


@dataclass(frozen=True)
class BuildResult:
    returncode: int
    output: str


def build_site(site_dir: Path, root: Path = REPO) -> BuildResult:
    """`mkdocs build --strict` of the site under `root` into `site_dir`: every warning (a broken link or anchor,
    a page missing from the nav's files) fails it."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(root / "mkdocs.yml"), "--site-dir", str(site_dir)],
                          cwd=root, capture_output=True, text=True)
    return BuildResult(proc.returncode, proc.stdout + proc.stderr)


def copy_site_sources(dest: Path) -> Path:
    """A copy of what the site is built from, to break on purpose."""
    for name in SITE_SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"] or "")
        for attr in ("href", "src"):
            value = values.get(attr)
            if value is not None and tag in ("a", "link", "script", "img", "iframe"):
                self.links.append(value)


@dataclass(frozen=True)
class Page:
    links: tuple[str, ...]
    ids: frozenset[str]


def read_page(path: Path) -> Page:
    collector = _LinkCollector()
    collector.feed(path.read_text(encoding="utf-8"))
    return Page(tuple(collector.links), frozenset(collector.ids))


def is_external(link: str) -> bool:
    return bool(urlsplit(link).scheme) or link.startswith("//")


def broken_links(site: Path) -> tuple[list[str], list[str], int]:
    """(problems, external links, internal links checked) over every HTML page of a built site: each relative
    href/src names a file of the site, and each #fragment an id on the page it points at."""
    site = site.resolve()
    pages = {path: read_page(path) for path in site.rglob("*.html")}
    problems: list[str] = []
    external: list[str] = []
    checked = 0
    for path, page in pages.items():
        where = path.relative_to(site)
        for link in page.links:
            if is_external(link):
                external.append(link)
                continue
            target, fragment = urldefrag(link)
            # An absolute path is the site's root's (404.html uses them: it is served at any path).
            base = site if target.startswith("/") else path.parent
            target_path = (base / unquote(target).lstrip("/")).resolve() if target else path.resolve()
            checked += 1
            if target_path.is_dir():
                target_path = target_path / "index.html"
            if not target_path.is_file() or site not in target_path.parents:
                problems.append(f"{where}: {link!r}: no such file in the site")
                continue
            if fragment and target_path.suffix == ".html":
                target_page = pages.get(target_path) or read_page(target_path)
                if unquote(fragment) not in target_page.ids:
                    problems.append(f"{where}: {link!r}: no id {fragment!r} on that page")
    return problems, external, checked


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """The built site over HTTP on loopback (the search runs in a web worker, which file:// URLs may not start);
    yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
