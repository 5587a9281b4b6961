"""License strings as packages record them, turned into SPDX license expressions.

Debian's copyright files use their own short names (`GPL-2+`, `Expat`, `BSD-3-clause`), Python distributions a
License-Expression (PEP 639), a trove classifier or free text, Alpine an expression of SPDX-like ids. What maps
onto the SPDX license list becomes an expression of its ids; anything else is kept, verbatim, as a
`LicenseRef-...` the SPDX document explains in its extracted licensing information, so that no expression the
document carries is invalid and no recorded license is lost.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, NamedTuple

# The SPDX license list ids the packages of common distributions and PyPI use (SPDX license list 3.x). An id
# outside this set is not guessed at: it becomes a LicenseRef.
SPDX_IDS = frozenset("""
0BSD AFL-2.1 AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.0 Apache-1.1 Apache-2.0 APSL-2.0 Artistic-1.0
Artistic-1.0-Perl Artistic-2.0 Beerware BlueOak-1.0.0 BSD-1-Clause BSD-2-Clause BSD-2-Clause-Patent BSD-3-Clause
BSD-3-Clause-Clear BSD-4-Clause BSD-4-Clause-UC BSL-1.0 bzip2-1.0.6 CC-BY-3.0 CC-BY-4.0 CC-BY-SA-3.0 CC-BY-SA-4.0
CC0-1.0 CDDL-1.0 CDDL-1.1 curl ECL-2.0 EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 FSFAP FSFUL FSFULLR FTL GFDL-1.2-only
GFDL-1.2-or-later GFDL-1.3-only GFDL-1.3-or-later GPL-1.0-only GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later
GPL-3.0-only GPL-3.0-or-later HPND IJG ISC LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later
LGPL-3.0-only LGPL-3.0-or-later Libpng libtiff MIT MIT-0 MIT-CMU MPL-1.1 MPL-2.0 MPL-2.0-no-copyleft-exception
NCSA OFL-1.1 OpenSSL PHP-3.01 PostgreSQL PSF-2.0 Python-2.0 Ruby Sleepycat TCL Unicode-DFS-2016 Unicode-3.0
Unlicense UPL-1.0 Vim W3C WTFPL X11 Zlib ZPL-2.1
""".split())
SPDX_EXCEPTIONS = frozenset("""
Autoconf-exception-2.0 Autoconf-exception-3.0 Bison-exception-2.2 Classpath-exception-2.0 GCC-exception-2.0
GCC-exception-3.1 LLVM-exception openvpn-openssl-exception Qt-LGPL-exception-1.1 Font-exception-2.0 Libtool-exception
""".split())
_BY_LOWER = {i.lower(): i for i in SPDX_IDS}
_EXCEPTIONS_BY_LOWER = {e.lower(): e for e in SPDX_EXCEPTIONS}

# Debian's copyright-format short names (and common spellings elsewhere) that differ from SPDX ids. GNU
# licenses without a version suffix are handled by _gnu().
_ALIASES = {
    "expat": "MIT", "mit/x11": "MIT", "x11": "X11", "bsd-2": "BSD-2-Clause", "bsd-3": "BSD-3-Clause",
    "bsd-4": "BSD-4-Clause", "bsd": "BSD-3-Clause", "new bsd": "BSD-3-Clause", "simplified bsd": "BSD-2-Clause",
    "apache": "Apache-2.0", "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "artistic": "Artistic-1.0-Perl", "perl": "Artistic-1.0-Perl",
    "zlib": "Zlib", "psf": "PSF-2.0", "psf-2": "PSF-2.0", "python": "Python-2.0", "public-domain": "",
    "mpl-2": "MPL-2.0", "mozilla public license 2.0": "MPL-2.0", "cc0": "CC0-1.0", "isc license": "ISC",
    "mit license": "MIT", "bsd license": "BSD-3-Clause", "the unlicense": "Unlicense", "openssl": "OpenSSL",
}
# Trove classifiers (License :: ...), by their last part.
_CLASSIFIERS = {
    "MIT License": "MIT", "BSD License": "BSD-3-Clause", "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC", "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only", "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense", "Zope Public License": "ZPL-2.1", "zlib/libpng License": "Zlib",
    "Public Domain": "", "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0", "Universal Permissive License (UPL)":
    "UPL-1.0", "MIT No Attribution License (MIT-0)": "MIT-0", "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
}
_GNU = re.compile(r"^(A|L)?GPL-?(\d(?:\.\d)?)(\+|-only|-or-later)?$", re.IGNORECASE)
_GNU_FULL_VERSIONS = {"1": "1.0", "2": "2.0", "3": "3.0"}
NOASSERTION = "NOASSERTION"


class Licensing(NamedTuple):
    """A package's declared license as an SPDX expression (None: nothing recorded), and the LicenseRef ids it
    uses with the original text of each."""

    expression: str | None
    extracted: dict[str, str]


def license_ref(text: str) -> str:
    """A stable LicenseRef id for text that is no SPDX expression (the same text always gets the same id)."""
    sanitized = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")
    if sanitized == text and 0 < len(text) <= 64:
        return f"LicenseRef-{text}"
    return f"LicenseRef-{sanitized[:40].strip('-') or 'license'}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def declared_licensing(texts: Iterable[str]) -> Licensing:
    """The recorded license strings of a package, as one expression: each one converted (or made a LicenseRef),
    distinct ones joined with AND."""
    parts: list[str] = []
    extracted: dict[str, str] = {}
    for text in texts:
        text = text.strip()
        if not text or text.upper() in ("UNKNOWN", NOASSERTION, "NONE"):
            continue
        expression = to_spdx(text)
        if expression is None:
            expression = license_ref(text)
            extracted[expression] = text
        if expression not in parts:
            parts.append(expression)
    if not parts:
        return Licensing(None, {})
    if len(parts) == 1:
        return Licensing(parts[0], extracted)
    return Licensing(" AND ".join(p if " " not in p else f"({p})" for p in parts), extracted)


def to_spdx(text: str) -> str | None:
    """`text` as a valid SPDX expression of listed ids, or None when some part of it is not one."""
    if text.startswith("License ::"):
        mapped = _CLASSIFIERS.get(text.rsplit("::", 1)[1].strip())
        return mapped or None
    single = _license_id(text)
    if single is not None:
        return single or None
    tokens = re.findall(r"\(|\)|[^\s(),]+", text.replace("|", " OR ").replace("&", " AND "))
    out: list[str] = []
    expect_operand = True
    for index, token in enumerate(tokens):
        upper = token.upper()
        if upper in ("AND", "OR"):
            if expect_operand:
                return None
            out.append(upper)
            expect_operand = True
        elif upper == "WITH":
            if expect_operand or index + 1 >= len(tokens):
                return None
            exception = _EXCEPTIONS_BY_LOWER.get(tokens[index + 1].lower())
            if exception is None:
                return None
            out += ["WITH", exception]
            tokens[index + 1] = ""  # consumed
        elif token == "":
            continue
        elif token in ("(", ")"):
            out.append(token)
        else:
            identifier = _license_id(token)
            if not identifier or not expect_operand:
                return None
            out.append(identifier)
            expect_operand = False
    if expect_operand or out.count("(") != out.count(")") or not out:
        return None
    return " ".join(out).replace("( ", "(").replace(" )", ")")


def _license_id(token: str) -> str | None:
    """One license name as an SPDX id; '' for names known to have none (public domain); None when unknown."""
    lower = token.lower()
    if lower.startswith("licenseref-") and re.fullmatch(r"LicenseRef-[A-Za-z0-9.-]+", token, re.IGNORECASE):
        return "LicenseRef-" + token[len("LicenseRef-"):]
    if lower in _BY_LOWER:
        return _BY_LOWER[lower]
    if lower in _ALIASES:
        return _ALIASES[lower]
    gnu = _GNU.match(token)
    if gnu:
        prefix = {"a": "AGPL", "l": "LGPL"}.get((gnu.group(1) or "").lower(), "GPL")
        version = _GNU_FULL_VERSIONS.get(gnu.group(2), gnu.group(2))
        suffix = "-or-later" if gnu.group(3) in ("+", "-or-later") else "-only"
        candidate = f"{prefix}-{version}{suffix}"
        return candidate if candidate in SPDX_IDS else None
    if lower.endswith("+") and lower[:-1] in _BY_LOWER:  # `MPL-1.1+`: the SPDX "or later" operator
        return _BY_LOWER[lower[:-1]] + "+"
    return None


def dep5_licenses(copyright_text: str) -> tuple[str, ...] | None:
    """The License: short names of a machine-readable (DEP-5) debian/copyright file, in order of first
    appearance; None when the file is not machine-readable (free text names no license reliably).

    Only the field lines that matter are looked at (a field line starts its line; continuation lines start with
    a space or tab): a catalog reads hundreds of these files on every build with --sbom, and parsing every
    paragraph whole cost more than reading the layers."""
    lines = copyright_text.split("\n")
    at = 0
    while at < len(lines) and not lines[at].strip():
        at += 1
    machine_readable = False
    while at < len(lines) and lines[at].strip():  # the header paragraph names the format
        machine_readable = machine_readable or _field_name(lines[at]) == "format"
        at += 1
    if not machine_readable:
        return None
    names: list[str] = []
    for line in lines:
        if line[:1] in ("L", "l") and _field_name(line) == "license":
            short = line.partition(":")[2].strip()
            if short and short not in names:
                names.append(short)
    return tuple(names)


def _field_name(line: str) -> str | None:
    name, colon, _ = line.partition(":")
    return name.strip().lower() if colon and line[:1] not in (" ", "\t", "#") else None
