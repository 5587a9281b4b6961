"""Docker's shell-word expansion: quotes, escapes and `$VAR` / `${VAR...}` substitution.

This follows BuildKit's shell lexer (frontend/dockerfile/shell/lex.go) rather than a real shell, because the
goal is that a Dockerfile means the same thing here as under `docker build`. Where the lexer differs from
bash we follow the lexer, e.g.:

- an unquoted variable's value is split into words by `expand_words`, a quoted one is not;
- empty words (`''`) are dropped by `expand_words`;
- `${V#pattern}` patterns know `*`, `?` and backslash escapes only: `[...]` is taken literally, as BuildKit
  does (it has no bracket expressions);
- `${V:?msg}` / `${V?msg}` are supported: they fail (ValueError) when V is unset (or empty, with the colon);
- `${V:#p}` and `${V:%p}` are accepted and mean `${V#p}` / `${V%p}`, as in BuildKit.

The executor applies this instruction by instruction with the ARG/ENV values visible at that point; the
parser keeps every value unexpanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# POSIX special parameters: `$@`, `$?`, ... are read as one-character names (and expand to "" here).
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


@dataclass(frozen=True)
class Expansion:
    """The result of expanding one piece of text."""

    value: str  # quotes removed, variables substituted, no word splitting
    words: tuple[str, ...]  # the same, split on unquoted whitespace (also inside unquoted values)
    referenced: frozenset[str]  # every variable name the text looked up, set or not


class Expander:
    """Expands Dockerfile words the way BuildKit does. `escape` is the Dockerfile's escape character."""

    def __init__(self, escape: str = "\\"):
        if escape not in ("\\", "`"):
            raise ValueError(f"invalid escape character {escape!r}: must be \\ or `")
        self.escape = escape

    def expand(self, text: str, env: Mapping[str, str]) -> Expansion:
        """Expand `text` once, giving the joined value, the split words and the names it referenced.
        Raises ValueError on malformed syntax (`${`, `${V:x}`, an unterminated quote, ...)."""
        lexer = _Lexer(text, env, self.escape, strict=True)
        value, words = lexer.run()
        return Expansion(value, tuple(words), frozenset(lexer.referenced))

    def expand_word(self, text: str, env: Mapping[str, str]) -> str:
        """One word: quotes processed and removed, variables expanded, whitespace kept."""
        return self.expand(text, env).value

    def expand_words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Words split on unquoted whitespace (for EXPOSE, and COPY/ADD sources in shell form)."""
        return list(self.expand(text, env).words)

    def referenced(self, text: str) -> set[str]:
        """The variable names `text` reads, whatever their values. Every operand is expanded by the
        lexer, so `${A:-$B}` reads both A and B. Raises ValueError on malformed syntax only."""
        lexer = _Lexer(text, {}, self.escape, strict=False)
        lexer.run()
        return set(lexer.referenced)


class _ExpansionError(Exception):
    """A problem found while lexing; `Expander` callers see it as ValueError with the text attached."""


class _Words:
    """Collects the word-split form alongside the joined value (BuildKit's wordsStruct)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.current = ""
        # True once something (even an empty quoted string) was added to the current word.
        self.in_word = False

    def add_char(self, ch: str) -> None:
        """An unquoted character: whitespace ends the current word."""
        if ch.isspace():
            if self.in_word and self.current:
                self.words.append(self.current)
                self.current = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.current += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.current += text
        self.in_word = True

    def finish(self) -> list[str]:
        # A word made only of empty quotes ('') has no characters and is dropped, as in BuildKit.
        if self.current:
            self.words.append(self.current)
        self.current = ""
        self.in_word = False
        return self.words


class _Lexer:
    """One pass over one text. `strict=False` is for `referenced()`: `${V?}` must not fail just because
    nothing is set while we only collect names."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, strict: bool):
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.strict = strict
        # Inside `${V#...}`, `${V%...}` and `${V/.../...}` the escape character is kept so that the pattern
        # converter can tell an escaped `*` from a wildcard.
        self.raw_escapes = False
        self.referenced: set[str] = set()

    def run(self) -> tuple[str, list[str]]:
        try:
            return self._process_until(None, raw_escapes=False)
        except _ExpansionError as exc:
            raise ValueError(f"cannot expand {self.text!r}: {exc}") from None

    # --- scanning -----------------------------------------------------------------------------------------
    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _next(self) -> str | None:
        ch = self._peek()
        if ch is not None:
            self.pos += 1
        return ch

    def _lookup(self, name: str) -> tuple[str, bool]:
        self.referenced.add(name)
        if name in self.env:
            return self.env[name], True
        return "", False

    # --- the grammar --------------------------------------------------------------------------------------
    def _process_until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to (and consuming) `stop`, or to the end when `stop` is None."""
        saved_raw = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            while (ch := self._peek()) is not None:
                if stop is not None and ch == stop:
                    self._next()
                    return "".join(result), words.finish()
                if ch in "'\"":
                    quoted = self._single_quoted() if ch == "'" else self._double_quoted()
                    result.append(quoted)
                    words.add_raw_string(quoted)
                elif ch == "$":
                    value = self._dollar()
                    result.append(value)
                    words.add_string(value)  # unquoted: its whitespace splits words
                else:
                    self._next()
                    if ch == self.escape:
                        if self.raw_escapes:
                            words.add_raw_char(ch)
                            result.append(ch)
                        ch = self._next()
                        if ch is None:
                            break  # an escape character at the very end is dropped
                        words.add_raw_char(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop is not None:
                raise _ExpansionError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.finish()
        finally:
            self.raw_escapes = saved_raw

    def _single_quoted(self) -> str:
        # Everything up to the next ' is literal; a single quote cannot be escaped inside.
        self._next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise _ExpansionError("unexpected end of statement while looking for matching single-quote")
        content = self.text[self.pos:end]
        self.pos = end + 1
        return content

    def _double_quoted(self) -> str:
        # Literal except `$`, and the escape character before ", $ or itself (otherwise kept as is).
        self._next()
        result: list[str] = []
        while True:
            ch = self._peek()
            if ch is None:
                raise _ExpansionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self._next()
                return "".join(result)
            if ch == "$":
                result.append(self._dollar())
                continue
            self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    result.append(ch)
                following = self._peek()
                if following is None:
                    continue  # reported as the missing closing quote on the next turn
                if following in ('"', "$", self.escape):
                    self._next()
                    ch = following
            result.append(ch)

    def _name(self) -> str:
        """A variable name: letters, digits and _, or all digits (positional), or one special parameter."""
        start = self.pos
        ch = self._peek()
        if ch is None:
            return ""
        if ch.isdecimal():
            while (ch := self._peek()) is not None and ch.isdecimal():
                self._next()
            return self.text[start:self.pos]
        if ch in _SPECIAL_PARAMS:
            self._next()
            return ch
        while (ch := self._peek()) is not None and (ch.isalpha() or ch.isdecimal() or ch == "_"):
            self._next()
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        self._next()  # the $
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"  # a lone $ is literal
            return self._lookup(name)[0]

        self._next()  # the {
        ch = self._peek()
        if ch is None:
            raise _ExpansionError("syntax error: missing '}'")
        if ch in "{}:":
            raise _ExpansionError("syntax error: bad substitution")
        name = self._name()
        op = self._next()
        if op is None:
            raise _ExpansionError("syntax error: missing '}'")
        if op == "}":
            return self._lookup(name)[0]
        if op == "/":
            return self._replace(name)

        null_is_unset = op == ":"
        operator = op
        if null_is_unset:
            op = self._next()
            if op is None:
                raise _ExpansionError("syntax error: missing '}'")
            operator += op
        if op not in "+-?#%":
            raise _ExpansionError(f"unsupported modifier ({operator}) in substitution")
        # BuildKit falls through from `:` to the operator after it, so `${V:#p}` is `${V#p}` (the colon has
        # no meaning for patterns).
        is_pattern = op in "#%"
        word = self._operand("}", raw_escapes=is_pattern)
        value, is_set = self._lookup(name)
        missing = not is_set or (null_is_unset and value == "")

        if op == "-":
            return word if missing else value
        if op == "+":
            return "" if missing else word
        if op == "?":
            if missing and self.strict:
                default = "is not allowed to be unset" if not is_set else "is not allowed to be empty"
                raise _ExpansionError(f"{name}: {word or default}")
            return value
        # `#`/`%` remove the shortest matching prefix/suffix, `##`/`%%` the longest.
        greedy = word.startswith(op)
        if greedy:
            word = word[1:]
        if op == "#":
            return _trim_prefix(word, value, greedy)
        return _trim_suffix(word, value, greedy)

    def _operand(self, stop: str, raw_escapes: bool) -> str:
        try:
            value, _ = self._process_until(stop, raw_escapes)
        except _ExpansionError:
            if self._peek() is None:
                raise _ExpansionError("syntax error: missing '}'" if stop == "}"
                                      else f"syntax error: missing '{stop}' in ${{}}") from None
            raise
        return value

    def _replace(self, name: str) -> str:
        """`${V/pattern/replacement}` (first match) and `${V//pattern/replacement}` (every match)."""
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        pattern = self._operand("/", raw_escapes=True)
        replacement = self._operand("}", raw_escapes=True)
        value, _ = self._lookup(name)
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        # The replacement is literal text (a function, so that re.sub does not read \1 or \g<...> in it).
        return regex.sub(lambda _match: replacement, value, count=0 if replace_all else 1)


# --- shell patterns (${V#p}, ${V%p}, ${V/p/r}) ----------------------------------------------------------------
def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """`*` is any string (shortest unless greedy), `?` any one character, `\\*`, `\\?` and `\\\\` are
    literal, `\\}` and `\\/` stand for } and /. Everything else, including [ and ], is literal."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else None
            if following in ("}", "/"):
                continue  # the escape only protected the delimiter; the character itself comes next
            if following not in ("*", "?", "\\"):
                shown = following if following is not None else "(end of pattern)"
                raise _ExpansionError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy, anchored=True).match(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern while keeping each `\\x` escape pair in order (`a\\*c` -> `c\\*a`)."""
    pieces: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            pieces.append(pattern[i:i + 2])
            i += 2
        else:
            pieces.append(pattern[i])
            i += 1
    return "".join(reversed(pieces))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds leftmost matches only, so the shortest suffix is the shortest prefix of the reversal.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
