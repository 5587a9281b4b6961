"""The documentation site (mkdocs.yml): it builds with `--strict`, every link in it resolves, the README is its
front page, its navigation covers what users look for, and the exit-code page is written from core/errors.py.

External links are listed, not fetched: tests reach no network beyond loopback. tests/e2e/test_docsite_browser.py
opens the built site in Chromium."""

from __future__ import annotations

import importlib.util
import re
from html import unescape

import pytest
from mkdocs.exceptions import PluginError

from dockyard import errors
from tests.support.docsite import REPO, broken_links, build_site, copy_site_sources

# The topics the site must cover, as the navigation names them (mkdocs.yml).
NAV_TOPICS = ("Install", "Migrating from kaniko", "GitHub Actions", "GitLab CI/CD", "Jenkins", "Caching",
              "Multi-platform images", "Signatures and verification", "SBOM and provenance attestations",
              "Scanning", "Dockerfile support", "Troubleshooting by exit code")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    result = build_site(site_dir)
    assert result.returncode == 0, result.output
    return site_dir


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_every_link_of_the_built_site_resolves(site):
    problems, external, checked = broken_links(site)
    assert problems == []
    # Every page links to its neighbours, the theme's assets and the navigation: hundreds of links, all checked.
    assert checked > 500
    assert all(link.startswith(("https://", "http://", "mailto:")) for link in external), external


def test_the_readme_is_the_front_page_with_its_links_pointing_at_the_sites_pages(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    first_paragraph = (REPO / "README.md").read_text(encoding="utf-8").split("\n\n")[1]
    assert "builds container images from Dockerfiles" in first_paragraph
    assert "builds container images from Dockerfiles" in text_of(index)
    # README.md links to docs/migrating-from-kaniko.md#other-cpus; on the site that is the page beside it.
    assert 'href="migrating-from-kaniko.html#other-cpus"' in index
    assert "docs/" not in re.findall(r'href="([^"]*)"', index)


def test_the_navigation_covers_each_topic(site):
    nav = text_of((site / "index.html").read_text(encoding="utf-8").split('role="navigation"')[1])
    for topic in NAV_TOPICS:
        assert topic in nav


def test_the_exit_code_page_lists_every_code_of_errors_py_with_its_meaning_and_advice(site):
    page = (site / "exit-codes.html").read_text(encoding="utf-8")
    text = text_of(page)
    for code, meaning in errors.EXIT_CODES:
        assert " ".join(meaning.split()) in text
        if code:
            assert f'id="exit-{code}"' in page
    for cls in (errors.StepFailed, errors.SigningError, errors.LayerError, errors.Interrupted):
        assert f"<code>{cls.__name__}</code>" in page
    # Advice for a code the table does not have is left out (here: ahead of the code it is written for).
    listed = {code for code, _ in errors.EXIT_CODES}
    source_codes = {int(c) for c in re.findall(r"^## Exit code (\d+) ", (REPO / "docs/exit-codes.md").read_text(
        encoding="utf-8"), re.MULTILINE)}
    for code in source_codes - listed:
        assert f'id="exit-{code}"' not in page


def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    root = copy_site_sources(tmp_path / "src")
    caching = root / "docs/caching.md"
    caching.write_text(caching.read_text(encoding="utf-8") + "\nSee [nothing](no-such-page.md).\n", encoding="utf-8")
    result = build_site(tmp_path / "site", root)
    assert result.returncode != 0
    assert "no-such-page.md" in result.output

    caching.write_text(caching.read_text(encoding="utf-8").replace("no-such-page.md", "cache.md#no-such-heading"),
                       encoding="utf-8")
    result = build_site(tmp_path / "site", root)
    assert result.returncode != 0
    assert "no-such-heading" in result.output


def test_a_readme_link_outside_docs_fails_the_build(tmp_path):
    root = copy_site_sources(tmp_path / "src")
    readme = root / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\n[the corpus](tests/compat/README.md)\n",
                      encoding="utf-8")
    result = build_site(tmp_path / "site", root)
    assert result.returncode != 0
    assert "README.md links to 'tests/compat/README.md'" in result.output


def test_an_exit_code_without_advice_fails_the_build(tmp_path):
    root = copy_site_sources(tmp_path / "src")
    page = root / "docs/exit-codes.md"
    source = page.read_text(encoding="utf-8")
    page.write_text(re.sub(r"## Exit code 5 \{#exit-5\}\n.*?(?=\n## )", "", source, flags=re.DOTALL),
                    encoding="utf-8")
    result = build_site(tmp_path / "site", root)
    assert result.returncode != 0
    assert "no advice for exit code(s) [5]" in result.output


def load_hooks():
    spec = importlib.util.spec_from_file_location("docsite_hooks", REPO / "scripts/docsite/hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_error_class_whose_code_the_table_lacks_fails_the_page(monkeypatch):
    hooks = load_hooks()
    without_signing = [(code, meaning) for code, meaning in errors.EXIT_CODES if code != errors.SigningError.exit_code]
    monkeypatch.setattr(errors, "EXIT_CODES", without_signing)
    with pytest.raises(PluginError, match="SigningError"):
        hooks.exit_codes_page((REPO / "docs/exit-codes.md").read_text(encoding="utf-8"))


def test_the_table_and_titles_follow_exit_codes(monkeypatch):
    hooks = load_hooks()
    changed = [(code, f"meaning number {code}") for code, _ in errors.EXIT_CODES]
    monkeypatch.setattr(errors, "EXIT_CODES", changed)
    source = (REPO / "docs/exit-codes.md").read_text(encoding="utf-8") + "\n## Exit code 99 {#exit-99}\n\nStale.\n"
    page = hooks.exit_codes_page(source)
    for code, meaning in changed:
        assert f"| {meaning} |" in page
        if code:
            assert f"## {code}: {meaning} {{#exit-{code}}}" in page
    assert "exit-99" not in page and "Stale." not in page
