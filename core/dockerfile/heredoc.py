"""What heredocs (`RUN <<EOF`, `COPY <<EOF /dest`) do when a step runs, as BuildKit does it
(frontend/dockerfile/dockerfile2llb/convert.go: dispatchRun, dispatchCopy; instructions/parse.go).

The parser (parser.py) reads the heredoc bodies into `ins.Heredoc`; the step code asks this module what to
execute (`run_command`) or what bytes to write (`heredoc_content`). Pure functions: no I/O.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DockerfileError
from . import instructions as ins

__all__ = ["RunCommand", "ScriptFile", "chomp_tabs", "heredoc_content", "is_heredoc_word", "parse_heredoc_word",
           "heredoc_words", "run_command", "split_unquoted_words"]

# BuildKit mounts a shebang script read-only at /dev/pipes/NAME and executes it from there.
SCRIPT_DIR = "/dev/pipes"
SCRIPT_MODE = 0o755

# A word that is a heredoc marker: optional fd, <<, optional - (strip tabs), a delimiter without `<`
# (spaces may follow the <<). BuildKit's reHeredoc; the delimiter must also be a single shell word.
HEREDOC_WORD = re.compile(r"(\d*)<<(-?)\s*([^<]*)")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


@dataclass(frozen=True)
class ScriptFile:
    """A file the RUN needs inside its root, bound read-only at `path`."""

    path: str  # absolute path inside the container, as BuildKit uses (e.g. /dev/pipes/EOF)
    content: str
    mode: int  # e.g. 0o755 for an executable shebang script


@dataclass(frozen=True)
class RunCommand:
    """What a RUN executes: its argv, and the script files (from heredocs) it needs inside its root."""

    argv: list[str]
    files: tuple[ScriptFile, ...] = ()


def run_command(run: ins.Run, shell: tuple[str, ...], expand: Callable[[str], str]) -> RunCommand:
    """The argv (and script files) a RUN executes.

    BuildKit never expands RUN heredocs itself, whatever the delimiter's quoting: the shell that runs the
    script does (so ARG/ENV values reach it through the environment). `expand` is therefore not called here;
    it is part of the signature so that the step code treats RUN and COPY heredocs alike.
    """
    command = run.command
    if not run.heredocs:
        return RunCommand(command.argv(shell))
    if command.exec_form:
        raise DockerfileError("RUN in JSON (exec) form cannot use heredocs", location=run.location,
                              hint="write the command in shell form, e.g. RUN <<EOF")
    first = run.heredocs[0]
    if not is_heredoc_word(command.shell_text.strip()):
        # The heredocs feed a command line (`RUN cat <<EOF > /file`, `RUN <<A <<B sh`): give the shell the
        # line followed by every body and its delimiter, a real shell heredoc (quoting and <<- included).
        script = command.shell_text + "".join(f"\n{doc.content}{doc.name}" for doc in run.heredocs)
        return RunCommand([*shell, script])
    body = chomp_tabs(first.content) if first.chomp_tabs else first.content
    if body.startswith("#!"):
        # A script with its own interpreter: written to a file and executed, through the shell.
        path = _script_path(first.name, run)
        return RunCommand([*shell, path], (ScriptFile(path, body, SCRIPT_MODE),))
    # `RUN <<EOF` alone: the body is the shell script itself.
    return RunCommand([*shell, body])


def heredoc_content(heredoc: ins.Heredoc, expand: Callable[[str], str]) -> str:
    """The text COPY/ADD <<NAME writes (as a 0644 file named NAME, before --chmod/--chown).

    `<<-` strips leading tabs first. An unquoted delimiter expands variables the way BuildKit's raw lexer
    does: `$V` and `${V...}` are replaced and the backslash escapes the next character (`\\$V` stays
    literal), while quotes are ordinary text. A quoted delimiter (`<<"EOF"`, `<<'EOF'`) writes the body as is.
    `expand` expands one `$V` / `${V...}` reference with the step's ARG/ENV values.
    """
    text = chomp_tabs(heredoc.content) if heredoc.chomp_tabs else heredoc.content
    return _expand_raw(text, expand) if heredoc.expand else text


def chomp_tabs(text: str) -> str:
    """`<<-`: every line loses its leading tabs (BuildKit's ChompHeredocContent)."""
    return _LEADING_TABS.sub("", text)


def parse_heredoc_word(word: str) -> ins.Heredoc | None:
    """The heredoc a word such as `<<EOF`, `<<-"EOF"` or `3<<'X'` introduces (its content still empty), or
    None when the word is not one (BuildKit's ParseHeredoc). The delimiter must be one shell word; quoting
    any part of it turns expansion off."""
    match = HEREDOC_WORD.fullmatch(word)
    if match is None:
        return None
    names = split_unquoted_words(match.group(3))
    if names is None or len(names) != 1:
        return None
    return ins.Heredoc(name=names[0], content="", expand=not _uses_quotes(match.group(3)),
                       chomp_tabs=match.group(2) == "-")


def is_heredoc_word(word: str) -> bool:
    """Whether `word` as a whole is one heredoc marker (BuildKit's MustParseHeredoc(word) != nil)."""
    return parse_heredoc_word(word) is not None


def heredoc_words(line: str) -> list[str]:
    """The words of an instruction line as BuildKit splits it to look for heredoc markers: quotes and
    escapes kept, `<<` joined to the word after it across spaces (`<< EOF` is one word). A quote or `${`
    left open gives no words at all, so BuildKit finds no heredocs in such a line."""
    words: list[str] = []
    word = ""
    in_word = False
    pos, end = 0, len(line)
    while pos < end:
        ch = line[pos]
        if ch.isspace():
            if in_word:
                words.append(word)
            word, in_word = "", False
            pos += 1
            continue
        in_word = True
        piece_end = _piece_end(line, pos)
        if piece_end < 0:
            return []
        word += line[pos:piece_end]
        pos = piece_end
    if in_word:
        words.append(word)
    return words


def _piece_end(line: str, pos: int) -> int:
    """The end of the lexical piece starting at `pos` (a quoted string, an escape pair, `${...}`, `<<` and
    the spaces after it, or one character); -1 when it is left open."""
    ch = line[pos]
    if ch == "\\":
        return min(pos + 2, len(line))
    if ch == "'":
        close = line.find("'", pos + 1)
        return close + 1 if close >= 0 else -1
    if ch == '"':
        scan = pos + 1
        while scan < len(line) and line[scan] != '"':
            scan += 2 if line[scan] == "\\" else 1
        return scan + 1 if scan < len(line) else -1
    if line.startswith("${", pos):
        return _closing_brace(line, pos + 2)
    if line.startswith("<<", pos):
        scan = pos + 2
        while scan < len(line) and line[scan] in " \t":
            scan += 1
        return scan
    return pos + 1


def split_unquoted_words(text: str) -> list[str] | None:
    """`text` split into shell words with quotes and backslash escapes removed (BuildKit's lexer with no
    variables): `"E O"F` is the one word `E OF`. None when a quote is left open."""
    words: list[str] = []
    word: list[str] = []
    started = False  # "" is a word too
    quote: str | None = None
    chars = iter(text)
    for ch in chars:
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                word.append(ch)
        elif quote == '"':
            if ch == '"':
                quote = None
            elif ch == "\\":
                following = next(chars, "")
                word.append(following if following in ('"', "$", "\\") else ch + following)
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, started = ch, True
        elif ch == "\\":
            word.append(next(chars, ""))
            started = True
        elif ch in " \t\n\r\f\v":
            if word or started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(ch)
    if quote is not None:
        return None
    if word or started:
        words.append("".join(word))
    return words


def _uses_quotes(word: str) -> bool:
    """Whether `word` has a quote that quotes (not one escaped with a backslash)."""
    escaped = False
    for ch in word:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "'\"":
            return True
    return False


def _script_path(name: str, run: ins.Run) -> str:
    path = posixpath.normpath(posixpath.join(SCRIPT_DIR, name))
    if posixpath.dirname(path) != SCRIPT_DIR:
        raise DockerfileError(f"the heredoc delimiter {name!r} cannot name a script file", location=run.location,
                              hint="a RUN heredoc starting with #! is saved under its delimiter's name; use a "
                                   "plain word such as EOF")
    return path


# --- BuildKit's raw expansion (shell.Lex with SkipProcessQuotes) -------------------------------------------
_SPECIAL_PARAMS = "@*#?-$!0"


def _expand_raw(text: str, expand: Callable[[str], str]) -> str:
    out: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        ch = text[pos]
        if ch == "\\":
            # The escape is consumed and the next character kept, whatever it is (a trailing one is dropped).
            out.append(text[pos + 1:pos + 2])
            pos += 2
        elif ch == "$":
            reference_end = _reference_end(text, pos)
            if reference_end < 0:
                reference_end = end  # `${` left open: the expansion reports it
            if reference_end == pos + 1:
                out.append("$")  # a lone $ is literal
            else:
                out.append(expand(text[pos:reference_end]))
            pos = reference_end
        else:
            out.append(ch)
            pos += 1
    return "".join(out)


def _reference_end(text: str, start: int) -> int:
    """The end of the variable reference starting with the `$` at `start`: start + 1 when there is none, -1
    when a `${` is left open."""
    pos = start + 1
    if pos == len(text):
        return pos
    ch = text[pos]
    if ch == "{":
        return _closing_brace(text, pos + 1)
    if ch.isdecimal():
        while pos < len(text) and text[pos].isdecimal():
            pos += 1
        return pos
    if ch in _SPECIAL_PARAMS:
        return pos + 1
    while pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
        pos += 1
    return pos


def _closing_brace(text: str, pos: int) -> int:
    """Just after the `}` closing a `${`, nested references and escapes skipped; -1 when it is missing."""
    depth = 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            pos += 2
            continue
        if text.startswith("${", pos):
            depth += 1
            pos += 2
            continue
        if ch == "}":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return -1
