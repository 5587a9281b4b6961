"""An advisory's severity: from its CVSS vectors (v3 first, then v4, then v2; the base score computed by the
`cvss` library, RedHat's maintained implementation of all three), else from the distribution's own rating (Debian's
urgency, Ubuntu's priority) or the database's (GitHub's advisories)."""

from __future__ import annotations

from typing import Any, NamedTuple

from .model import VulnSeverity


class Rated(NamedTuple):
    severity: VulnSeverity
    score: float | None = None
    vector: str | None = None


UNRATED = Rated(VulnSeverity.UNKNOWN)

_ORDER = ("CVSS_V3", "CVSS_V4", "CVSS_V2")
_WORDS = {"critical": VulnSeverity.CRITICAL, "high": VulnSeverity.HIGH, "important": VulnSeverity.HIGH,
          "medium": VulnSeverity.MEDIUM, "moderate": VulnSeverity.MEDIUM, "low": VulnSeverity.LOW,
          "negligible": VulnSeverity.LOW, "unimportant": VulnSeverity.LOW}


def score_rating(score: float, version: str = "CVSS_V3") -> VulnSeverity:
    """The qualitative rating of a base score (v3/v4: the specifications' table; v2 has no "critical")."""
    if score >= 9.0 and version != "CVSS_V2":
        return VulnSeverity.CRITICAL
    if score >= 7.0:
        return VulnSeverity.HIGH
    if score >= 4.0:
        return VulnSeverity.MEDIUM
    if score > 0.0:
        return VulnSeverity.LOW
    return VulnSeverity.UNKNOWN


def vector_rating(kind: str, vector: str) -> Rated | None:
    """The rating of one CVSS vector; None when it does not parse."""
    import cvss

    try:
        if kind == "CVSS_V3":
            score = float(cvss.CVSS3(vector).base_score)
        elif kind == "CVSS_V4":
            score = float(cvss.CVSS4(vector).base_score)
        elif kind == "CVSS_V2":
            score = float(cvss.CVSS2(vector).base_score)
        else:
            return None
    except (cvss.CVSSError, ValueError, KeyError, TypeError):
        return None
    return Rated(score_rating(score, kind), score, vector)


def word_rating(word: object) -> VulnSeverity | None:
    if not isinstance(word, str):
        return None
    # Debian marks a guessed urgency with asterisks ("low**").
    return _WORDS.get(word.strip().strip("*").lower())


def rate(record: dict[str, Any], affected: dict[str, Any]) -> Rated:
    """The severity of `record` for one of its `affected` entries (an entry's own severity wins)."""
    entries = [s for s in (affected.get("severity") or record.get("severity") or []) if isinstance(s, dict)]
    for kind in _ORDER:
        for entry in entries:
            if entry.get("type") == kind and isinstance(entry.get("score"), str):
                found = vector_rating(kind, entry["score"])
                if found is not None:
                    return found
    for entry in entries:  # Ubuntu's records: {"type": "Ubuntu", "score": "medium"}
        found_word = word_rating(entry.get("score"))
        if found_word is not None:
            return Rated(found_word)
    for holder in (affected.get("ecosystem_specific"), affected.get("database_specific"),
                   record.get("database_specific")):
        if isinstance(holder, dict):
            for field in ("urgency", "severity", "priority"):
                found_word = word_rating(holder.get(field))
                if found_word is not None:
                    return Rated(found_word)
    return UNRATED
