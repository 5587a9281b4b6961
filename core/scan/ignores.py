"""The ignore file (`--vuln-ignore-file FILE`): advisories a team has looked at and accepted, each with a reason
and an expiry date. Trivy's `.trivyignore.yaml` shape, which users already write:

    vulnerabilities:
      - id: CVE-2023-5363
        statement: not reachable, we never call EVP_CIPHER_CTX_set_params
        expired_at: 2026-03-01
        purls: ["pkg:deb/debian/openssl"]   # optional: only these packages

and Trivy's plain `.trivyignore` (one id a line, `exp:YYYY-MM-DD` after it, `#` comments above it are its
reason). An entry matches an advisory by its id or any alias; once its date has passed it hides nothing and the
scan reports it as expired."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

from ..errors import UsageError
from .model import ExpiredIgnore, Vulnerability


class IgnoreEntry(NamedTuple):
    advisory: str
    reason: str
    expires: dt.date | None
    purls: tuple[str, ...]  # package URLs without version (a prefix of the installed package's purl)
    file: str
    line: int | None

    def matches(self, vulnerability: Vulnerability) -> bool:
        if self.advisory != vulnerability.advisory and self.advisory not in vulnerability.aliases:
            return False
        return not self.purls or any(_purl_matches(p, vulnerability.purl) for p in self.purls)

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and self.expires < today

    def as_expired(self) -> ExpiredIgnore:
        return ExpiredIgnore(advisory=self.advisory, package=",".join(self.purls) or None,
                             expired=self.expires.isoformat() if self.expires else "", reason=self.reason,
                             file=self.file, line=self.line)


def _purl_matches(wanted: str, purl: str) -> bool:
    """`pkg:deb/debian/openssl` names every version of it; `pkg:deb/debian/openssl@3.0.11-1` that one."""
    base = purl.split("?", 1)[0]
    wanted = wanted.split("?", 1)[0]
    return base == wanted if "@" in wanted else base.split("@", 1)[0] == wanted


def load_ignore_file(path: Path) -> tuple[IgnoreEntry, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the vulnerability ignore file {path}: {exc.strerror}",
                         hint="give an existing file to --vuln-ignore-file") from None
    if path.suffix in (".yaml", ".yml") or text.lstrip().startswith("vulnerabilities:"):
        return _yaml_entries(text, str(path))
    return _text_entries(text, str(path))


def _yaml_entries(text: str, name: str) -> tuple[IgnoreEntry, ...]:
    import yaml

    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise UsageError(f"{where}: the vulnerability ignore file is not valid YAML: "
                         f"{getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return ()
    if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities", []), list):
        raise UsageError(f"{name}: expected a mapping with a `vulnerabilities:` list (Trivy's .trivyignore.yaml)",
                         hint="each entry: id, statement (the reason), expired_at (YYYY-MM-DD), purls (optional)")
    lines: list[int | None] = []
    for key, value in getattr(node, "value", []):
        if getattr(key, "value", None) == "vulnerabilities":
            lines = [item.start_mark.line + 1 for item in getattr(value, "value", [])]
    entries = []
    for position, item in enumerate(data.get("vulnerabilities") or []):
        line = lines[position] if position < len(lines) else None
        where = f"{name}:{line}" if line else name
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"].strip():
            raise UsageError(f"{where}: an ignore entry needs an `id` (the advisory or CVE id)")
        expires = _date(item.get("expired_at"), where)
        purls = item.get("purls") or []
        if not isinstance(purls, list) or not all(isinstance(p, str) for p in purls):
            raise UsageError(f"{where}: `purls` must be a list of package URLs")
        entries.append(IgnoreEntry(item["id"].strip(), str(item.get("statement") or "").strip(), expires,
                                   tuple(purls), name, line))
    return tuple(entries)


def _date(value: object, where: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise UsageError(f"{where}: expiry date {value!r} is not a date", hint="write it as YYYY-MM-DD") from None


def _text_entries(text: str, name: str) -> tuple[IgnoreEntry, ...]:
    entries = []
    comments: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            comments.append(line.lstrip("#").strip())
            continue
        words = line.split("#", 1)
        tokens = words[0].split()
        reason = (words[1].strip() if len(words) > 1 else "") or " ".join(comments)
        expires = None
        ids = []
        for token in tokens:
            if token.startswith("exp:"):
                expires = _date(token[4:], f"{name}:{number}")
            else:
                ids.append(token)
        for advisory in ids:
            entries.append(IgnoreEntry(advisory, reason, expires, (), name, number))
        comments = []
    return tuple(entries)


class Judged(NamedTuple):
    kept: tuple[Vulnerability, ...]
    ignored: tuple[tuple[Vulnerability, str], ...]
    expired: tuple[ExpiredIgnore, ...]


def apply_ignores(vulnerabilities: list[Vulnerability], entries: tuple[IgnoreEntry, ...], *, ignore_unfixed: bool,
                  today: dt.date) -> Judged:
    """Sets aside what the ignore file's live entries name and, with `ignore_unfixed`, what has no fix yet; an
    expired entry hides nothing and is reported (once, whether or not it named anything found)."""
    live = [e for e in entries if not e.expired(today)]
    kept, ignored = [], []
    for vulnerability in vulnerabilities:
        entry = next((e for e in live if e.matches(vulnerability)), None)
        if entry is not None:
            reason = entry.reason or "listed in the ignore file"
            until = f" (until {entry.expires.isoformat()})" if entry.expires else ""
            ignored.append((vulnerability, f"{entry.file}:{entry.line}: {reason}{until}" if entry.line
                            else f"{reason}{until}"))
        elif ignore_unfixed and not vulnerability.fixed:
            ignored.append((vulnerability, "no fixed version yet (--ignore-unfixed)"))
        else:
            kept.append(vulnerability)
    expired = tuple(e.as_expired() for e in entries if e.expired(today))
    return Judged(tuple(kept), tuple(ignored), expired)
