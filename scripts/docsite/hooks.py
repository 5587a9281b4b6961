"""mkdocs hooks of the documentation site (mkdocs.yml): the README as the front page, and the exit-code page
written from core/errors.py, so neither can drift from what it shows.

- The README is the site's home page (index.md): the page GitHub shows first stays the page the site shows
  first. Its links into docs/ are rewritten to the site's pages, and CHANGELOG.md is a page of its own
  (changelog.md); a relative link to anything else in the repository has no page on the site, and fails the build.
- docs/exit-codes.md has the advice, one `## Exit code N {#exit-N}` section per code, written by hand. The table
  at its `<!-- exit-codes -->` marker and each section's title (the code's meaning) and error classes come from
  `dockyard.errors.EXIT_CODES` and the error classes at build time. A code in the table without advice, or an error
  class whose code is not in the table, fails the build; a section for a code the table no longer has is left out.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

from dockyard import errors

log = logging.getLogger("mkdocs.hooks.dockyard")

REPO_ROOT = Path(__file__).resolve().parents[2]
EXIT_CODES_PAGE = "exit-codes.md"
CHANGELOG, CHANGELOG_PAGE = "CHANGELOG.md", "changelog.md"
EXIT_CODES_MARKER = "<!-- exit-codes -->"
ADVICE_HEADING = re.compile(r"^## Exit code (\d+) \{#exit-\1\}\s*$", re.MULTILINE)
# [text](target): the targets of inline links and images. The README uses no reference-style links.
INLINE_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def on_files(files: Files, *, config: Any) -> Files:
    if files.get_file_from_path("index.md") is not None:
        raise PluginError("docs/index.md exists, but the site's front page is README.md: remove docs/index.md "
                          "and put what it says in the README")
    readme = REPO_ROOT / "README.md"
    files.append(File.generated(config, "index.md", content=front_page(readme.read_text(encoding="utf-8"))))
    changelog = REPO_ROOT / CHANGELOG
    files.append(File.generated(config, CHANGELOG_PAGE, content=changelog.read_text(encoding="utf-8")))
    return files


def front_page(readme: str) -> str:
    """The README with its links into docs/ pointing at the site's pages (docs/x.md -> x.md)."""

    def relink(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return match.group(0)
        if target.startswith("docs/"):
            return f"{match.group(1)}{target.removeprefix('docs/')}{match.group(3)}"
        if target == CHANGELOG:
            return f"{match.group(1)}{CHANGELOG_PAGE}{match.group(3)}"
        raise PluginError(f"README.md links to {target!r}, a file the documentation site does not have (only "
                          "docs/ becomes the site): link to a page in docs/ or to an absolute URL")

    return INLINE_LINK.sub(relink, readme)


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri != EXIT_CODES_PAGE:
        return markdown
    return exit_codes_page(markdown)


def error_classes_by_code() -> dict[int, list[type[errors.DockyardError]]]:
    """Every error class of dockyard.errors by exit code: DockyardError's subclasses (the base class itself is
    no kind of failure; exit code 1 is whatever else went wrong)."""
    found: dict[int, list[type[errors.DockyardError]]] = {}
    pending: list[type[errors.DockyardError]] = list(errors.DockyardError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.exit_code, []).append(cls)
        pending.extend(cls.__subclasses__())
    return found


def exit_codes_page(markdown: str) -> str:
    meanings = dict(errors.EXIT_CODES)
    classes = error_classes_by_code()
    unlisted = sorted(code for code in classes if code not in meanings)
    if unlisted:
        names = ", ".join(cls.__name__ for code in unlisted for cls in classes[code])
        raise PluginError(f"core/errors.py: {names} exit with a code EXIT_CODES does not list ({unlisted}): add "
                          "it to EXIT_CODES with its meaning")
    if EXIT_CODES_MARKER not in markdown:
        raise PluginError(f"docs/{EXIT_CODES_PAGE} has no {EXIT_CODES_MARKER} line where the table of exit codes "
                          "goes")

    head, sections = split_advice(markdown)
    missing = [code for code in meanings if code != 0 and code not in sections]
    if missing:
        raise PluginError(f"docs/{EXIT_CODES_PAGE} has no advice for exit code(s) {missing} of core/errors.py's "
                          "EXIT_CODES: add a section `## Exit code N {#exit-N}` saying what to do")
    for code in sorted(set(sections) - set(meanings)):
        # Advice written ahead of the code (or left behind by one removed): shown only while the table has it.
        log.info("docs/%s: exit code %s is not in EXIT_CODES; its section is left out", EXIT_CODES_PAGE, code)

    table = ["| code | meaning | error |", "| --- | --- | --- |"]
    for code, meaning in errors.EXIT_CODES:
        names = ", ".join(f"`{cls.__name__}`" for cls in classes.get(code, []))
        shown = f"[{code}](#exit-{code})" if code in sections else str(code)
        table.append(f"| {shown} | {escape_cell(meaning)} | {names} |")

    body = [head.replace(EXIT_CODES_MARKER, "\n".join(table))]
    for code, _meaning in errors.EXIT_CODES:
        if code not in sections:
            continue
        body.append(f"## {code}: {meanings[code]} {{#exit-{code}}}\n")
        for cls in classes.get(code, []):
            doc = " ".join((cls.__doc__ or "").split())
            body.append(f"`{cls.__name__}`" + (f": {doc}" if doc else "") + "\n")
        body.append(sections[code])
    return "\n".join(body)


def split_advice(markdown: str) -> tuple[str, dict[int, str]]:
    """The page before its first advice section, and each section's text (after its heading) by code."""
    matches = list(ADVICE_HEADING.finditer(markdown))
    if not matches:
        return markdown, {}
    sections: dict[int, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(markdown)
        code = int(match.group(1))
        if code in sections:
            raise PluginError(f"docs/{EXIT_CODES_PAGE} has two sections for exit code {code}")
        sections[code] = markdown[match.end():end].strip() + "\n"
    return markdown[:matches[0].start()], sections


def escape_cell(text: str) -> str:
    return text.replace("|", "\\|")
