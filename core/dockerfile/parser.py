"""Dockerfile text -> typed instructions (`instructions.py`), with docker's (BuildKit's) parsing rules.

The work is done in four passes, each a section below:

1. source: split into lines, read the parser directives at the top (`# escape=`, `# syntax=`, `# check=`);
2. logical lines: which physical lines make up one instruction (continuations, comments and blank lines
   inside them, heredoc bodies after it); the grouping comes from the `dockerfile-parse` library, which
   nothing else may import;
3. instructions: keyword, `--flags` and arguments of each logical line, checked and typed;
4. stages: ARGs before the first FROM are global, each FROM starts a stage.

Every problem a user can cause is raised as `DockerfileError` with the instruction's location and a hint.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser
from typing import Any

from ..errors import ContextError, DockerfileError, SourceLocation
from . import instructions as ins
from .heredoc import heredoc_words, parse_heredoc_word

__all__ = ["load_dockerfile", "parse_dockerfile", "parse_instruction"]


# =============================================================================================================
# Public API
# =============================================================================================================
def load_dockerfile(file: Path, display_path: str) -> ins.Dockerfile:
    """Read and parse the Dockerfile at `file`; `display_path` is how messages name it."""
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        raise ContextError(f"Dockerfile not found: {display_path}", subject=display_path,
                           hint="check the path given with -f/--file, or put a Dockerfile in the build "
                                "context") from None
    except IsADirectoryError:
        raise ContextError(f"{display_path} is a directory, not a Dockerfile", subject=display_path,
                           hint=f"give the file itself, e.g. {display_path.rstrip('/')}/Dockerfile") from None
    except PermissionError:
        raise ContextError(f"cannot read the Dockerfile {display_path}: permission denied",
                           subject=display_path, hint="make the file readable by the user running the build"
                           ) from None
    except OSError as exc:
        raise ContextError(f"cannot read the Dockerfile {display_path}: {exc.strerror or exc}",
                           subject=display_path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DockerfileError("the Dockerfile is not valid UTF-8 text",
                              location=SourceLocation(display_path, line),
                              hint="save the Dockerfile with UTF-8 encoding") from None
    return parse_dockerfile(text, display_path)


def parse_dockerfile(text: str, path: str) -> ins.Dockerfile:
    """Parse Dockerfile `text`; `path` is the file name used in locations and messages."""
    source = _read_source(text, path)
    parsed = [_parse_line(line, SourceLocation(path, line.start_line, line.end_line), source.escape)
              for line in _logical_lines(source, path)]
    return _group_stages(parsed, source, path)


def parse_instruction(text: str, location: SourceLocation, escape: str = "\\") -> ins.Instruction:
    """Parse one instruction whose continuation lines are already joined, e.g. an ONBUILD trigger stored
    in a base image. A trigger with heredocs holds their bodies on the lines after it, as BuildKit stores
    it (`RUN <<EOF\\necho hi\\nEOF`). Section 3 below."""
    if "\n" not in text.strip():
        return _parse_text(text, location, escape, ())
    trigger_lines = text.strip().split("\n")
    source = _Source(tuple(trigger_lines), tuple(line + "\n" for line in trigger_lines), (), 0, escape)
    try:
        lines = _logical_lines(source, location.file)
    except DockerfileError as exc:  # its line numbers count within the trigger: name the trigger instead
        raise DockerfileError(exc.message, hint=exc.hint, location=location) from None
    if len(lines) != 1:
        raise DockerfileError("an ONBUILD trigger must be a single instruction", location=location,
                              hint="give each instruction its own ONBUILD line")
    return _parse_line(lines[0], location, escape)


def _parse_line(line: _LogicalLine, location: SourceLocation, escape: str) -> ins.Instruction:
    return _parse_text(line.text, location, escape, line.heredocs)


def _parse_text(text: str, location: SourceLocation, escape: str,
                heredocs: tuple[ins.Heredoc, ...]) -> ins.Instruction:
    original = text.strip()
    written_keyword, rest = _split_command(original)
    keyword = written_keyword.upper()
    parse = _PARSERS.get(keyword)
    try:
        if parse is None:
            raise _unknown_instruction(written_keyword, escape)
        args, flag_words = _extract_flag_words(rest)
        flags = _parse_flags(keyword, flag_words)
        return parse(_Parts(keyword, location, original, flags, args.strip(), escape, heredocs))
    except _Problem as problem:
        raise DockerfileError(problem.message, hint=problem.hint, location=location) from None


# =============================================================================================================
# 1. Source lines and parser directives
# =============================================================================================================
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
# BuildKit's directive syntax, after the `#`: a name, `=`, a value. Go's \s is ASCII whitespace only.
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[ \t\n\f\r]*=[ \t\n\f\r]*(.+?)[ \t\n\f\r]*")


@dataclass(frozen=True)
class _Source:
    """A Dockerfile's text as lines, with the parser directives at its top and the escape character they set."""

    lines: tuple[str, ...]  # without line terminators
    raw_lines: tuple[str, ...]  # the same with their terminators as written ("\r\n" kept), for heredoc bodies
    directives: tuple[tuple[str, str], ...]
    directive_line_count: int  # directives occupy lines [0, count)
    escape: str


def _read_source(text: str, path: str) -> _Source:
    text = text.removeprefix("\ufeff")
    # Lines end at \n only (str.splitlines would also split at \r, \v, \x1c, ...).
    raw_lines = re.findall(r"[^\n]*\n|[^\n]+\Z", text)
    # Docker strips every trailing \r and \n, so CRLF files parse like LF ones.
    lines = [line.rstrip("\r\n") for line in raw_lines]

    directives: list[tuple[str, str]] = []
    escape = "\\"
    count = 0
    # Directives are only recognized at the very top: the first line that is not one (an instruction, a
    # blank line, an ordinary comment, an unknown directive) ends them, as in docker.
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped.startswith("#"):
            break
        match = _DIRECTIVE.fullmatch(stripped[1:].lstrip())
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        name, value = match.group(1).lower(), match.group(2)
        location = SourceLocation(path, index + 1)
        if any(seen == name for seen, _ in directives):
            raise DockerfileError(f"only one {name} parser directive can be used", location=location,
                                  hint=f"remove the repeated `# {name}=` line")
        if name == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape character {value!r} in the escape directive",
                                      location=location, hint="use `# escape=\\` (the default) or `# escape=``")
            escape = value
        directives.append((name, value))
        count = index + 1
    return _Source(tuple(lines), tuple(raw_lines), tuple(directives), count, escape)


# =============================================================================================================
# 2. Logical lines: continuation lines joined into one
# =============================================================================================================
@dataclass(frozen=True)
class _LogicalLine:
    """One instruction in the source: its line range (heredoc bodies included), its joined text and heredocs."""

    start_line: int  # 1-based, inclusive; the end includes the heredoc bodies
    end_line: int
    text: str  # continuations joined (escape character and line break removed), as docker's Original
    heredocs: tuple[ins.Heredoc, ...] = ()


def _logical_lines(source: _Source, path: str) -> list[_LogicalLine]:
    """The instructions' line ranges and text, heredoc bodies taken out of the grouping.

    The lines after an instruction with heredocs, up to each delimiter, are its heredocs' bodies, not
    instructions (whatever they look like: comments, continuations, keywords). dockerfile-parse knows
    nothing of heredocs, so each time one is found its body lines are hidden from the library (as
    comments) and the file is grouped again; lines before it keep their grouping.
    """
    bodies: dict[int, tuple[tuple[ins.Heredoc, ...], int]] = {}  # first line -> (heredocs, last line)
    hidden: set[int] = set()
    while True:
        groups = [(start, end) for start, end in _group_lines(source, path, hidden)
                  if _join_lines(source, start, end).strip()]  # e.g. a lone escape character: nothing to run
        pending = next(((start, end) for start, end in groups
                        if start not in bodies and _heredoc_markers(_join_lines(source, start, end))), None)
        if pending is None:
            break
        start, end = pending
        heredocs, last = _read_heredocs(source, _heredoc_markers(_join_lines(source, start, end)), start, end,
                                        path)
        bodies[start] = (heredocs, last)
        hidden.update(range(end + 1, last + 1))
    result = []
    for start, end in groups:
        heredocs, last = bodies.get(start, ((), end))
        result.append(_LogicalLine(start + 1, last + 1, _join_lines(source, start, end), heredocs))
    return result


def _heredoc_markers(text: str) -> list[ins.Heredoc]:
    """The heredocs an instruction line introduces, bodies still empty (BuildKit's heredocsFromLine).

    Only RUN, COPY and ADD (also as ONBUILD triggers) in shell form take heredocs. Every word of the whole
    line is looked at, split with the backslash as escape whatever the escape directive says, as BuildKit
    does."""
    if "<<" not in text:
        return []
    keyword, rest = _split_command(text)
    if keyword.upper() == "ONBUILD":
        keyword, rest = _split_command(rest)
    if keyword.upper() not in ("RUN", "COPY", "ADD"):
        return []
    args, _ = _extract_flag_words(rest)
    try:
        if _json_array(args.strip()) is not None:
            return []  # exec form: no heredocs
    except _Problem:
        return []  # reported when the instruction is parsed
    return [marker for word in heredoc_words(text) if (marker := parse_heredoc_word(word)) is not None]


def _read_heredocs(source: _Source, markers: list[ins.Heredoc], start: int, end: int,
                   path: str) -> tuple[tuple[ins.Heredoc, ...], int]:
    """Read the bodies of `markers` from the lines after `end`, one after the other: each runs up to the
    line that is exactly its delimiter (after leading tabs, with <<-). Returns the heredocs and the index of
    the last line they use."""
    heredocs = []
    index = end + 1
    for marker in markers:
        body = []
        while True:
            if index >= len(source.lines):
                raise DockerfileError(
                    f"unterminated heredoc: no line {marker.name!r} ends the heredoc <<{marker.name} started on "
                    f"line {start + 1}", location=SourceLocation(path, start + 1, len(source.lines)),
                    hint=f"end the heredoc with a line holding only {marker.name}" +
                         (" (tabs may precede it with <<-)" if marker.chomp_tabs else ""))
            line = source.lines[index]
            index += 1
            if (line.lstrip("\t") if marker.chomp_tabs else line) == marker.name:
                break
            body.append(source.raw_lines[index - 1])
        heredocs.append(dataclasses.replace(marker, content="".join(body)))
    return tuple(heredocs), index - 1


def _group_lines(source: _Source, path: str, hidden: set[int]) -> list[tuple[int, int]]:
    """(first, last) 0-based line index of each instruction, from dockerfile-parse's structure; the
    `hidden` lines (heredoc bodies) belong to no instruction.

    dockerfile-parse differs from docker in a few corners, so it is given a view of the file in which
    those corners are evened out, line for line (the numbering stays the same); the instruction text is
    then joined from the real lines by `_join_lines`.
    """
    view = _grouping_view(source, hidden)
    try:
        structure = DockerfileParser(fileobj=io.BytesIO(view), env_replace=False).structure
    except Exception as exc:  # a third-party library: whatever it raises is reported, never a traceback
        raise DockerfileError(f"could not read the Dockerfile's line structure: {exc}",
                              location=SourceLocation(path, 1)) from None
    view_lines = view.decode("utf-8").split("\n")
    last = len(source.lines) - 1
    groups = []
    for entry in structure:
        start, end = entry["startline"], entry["endline"]
        # Comment entries (the library reports them too) are lines the view turned into "#".
        if view_lines[start].startswith("#"):
            continue
        # An instruction still continued at the end of the file is closed by the view's extra blank line.
        groups.append((start, min(end, last)))
    return groups


# Appended in the view to lines docker does not continue but dockerfile-parse would (see below).
_NOT_CONTINUED = " ."


def _grouping_view(source: _Source, hidden: set[int]) -> bytes:
    escape = source.escape
    # dockerfile-parse continues any line ending in the escape character plus any whitespace.
    library_continues = re.compile(".*" + re.escape(escape) + r"\s*$")
    view = []
    for index, line in enumerate(source.lines):
        if index < source.directive_line_count:
            # We read the directives ourselves; the library only needs the escape character, and it would
            # miss an escape directive that follows one it does not know (`# check=`).
            view.append(f"# escape={escape}" if index == 0 and escape != "\\" else "#")
        elif index in hidden or _is_ignored_line(line):
            # Docker skips blank lines (and comments) inside a continuation; dockerfile-parse ends the
            # instruction at a blank line, so give it a comment instead. Heredoc bodies are not
            # instructions: comments too.
            view.append("#")
        elif library_continues.match(line) and not _trim_continuation(line, escape)[1]:
            # An escaped escape character (`\\`) or a form feed after it: docker does not continue the line.
            view.append(line + _NOT_CONTINUED)
        else:
            view.append(line)
    # A trailing blank line ends an instruction left continued at the end of the file, which
    # dockerfile-parse would otherwise drop silently (as it drops a last line with no newline and no
    # arguments, hence the final newline).
    view.append("")
    return ("\n".join(view) + "\n").encode("utf-8", "replace")


def _is_ignored_line(line: str) -> bool:
    """Blank lines and comments, which docker skips everywhere (also inside continuations)."""
    stripped = line.lstrip()
    return not stripped or stripped.startswith("#")


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """(line without its continuation marker, whether it continues). Docker: the escape character plus
    spaces/tabs at the end continues the line, unless it is itself escaped (`\\\\` at the end)."""
    stripped = line.rstrip(" \t")
    if not stripped.endswith(escape):
        return line, False
    before = stripped[:-1]
    if before.endswith(escape):
        return line, False
    return before, True


def _join_lines(source: _Source, start: int, end: int) -> str:
    escape = source.escape
    text, _ = _trim_continuation(source.lines[start].lstrip(), escape)
    for line in source.lines[start + 1:end + 1]:
        if _is_ignored_line(line):
            continue
        # Continuation lines keep their leading whitespace, as in docker.
        text += _trim_continuation(line, escape)[0]
    return text


# =============================================================================================================
# 3. Instructions
# =============================================================================================================
class _Problem(Exception):
    """A user error in one instruction; becomes a DockerfileError with the instruction's location."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class _Parts:
    """One instruction cut into its pieces."""

    keyword: str  # upper-case
    location: SourceLocation
    original: str
    flags: tuple[tuple[str, str | None], ...]
    args: str  # the text after the keyword and its flags, stripped
    escape: str
    heredocs: tuple[ins.Heredoc, ...]  # read from the lines after the instruction


# Docker's whitespace between words (reWhitespace in BuildKit's parser).
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


def _split_command(text: str) -> tuple[str, str]:
    """(first word, the rest) of a stripped line."""
    parts = _WHITESPACE.split(text.strip(), maxsplit=1)
    return parts[0], (parts[1] if len(parts) == 2 else "")


def _unknown_instruction(written: str, escape: str) -> _Problem:
    import difflib  # only for a misspelt instruction's hint

    close = difflib.get_close_matches(written.upper(), ins.KEYWORDS, n=1, cutoff=0.6)
    if close:
        return _Problem(f'unknown instruction "{written}" (did you mean {close[0]}?)')
    return _Problem(f'unknown instruction "{written}"',
                    hint="instructions are " + ", ".join(ins.KEYWORDS) + "; if this line belongs to the "
                         f"previous instruction, end that line with the escape character ({escape})")


# --- flags ---------------------------------------------------------------------------------------------------
_BOOL, _VALUE, _REPEATED = "bool", "value", "repeated"
# The flags BuildKit accepts, per instruction, in the order its documentation lists them.
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _VALUE},
    "RUN": {"mount": _REPEATED, "network": _VALUE, "security": _VALUE},
    "COPY": {"from": _VALUE, "chown": _VALUE, "chmod": _VALUE, "link": _BOOL, "exclude": _REPEATED,
             "parents": _BOOL},
    "ADD": {"chown": _VALUE, "chmod": _VALUE, "link": _BOOL, "exclude": _REPEATED, "checksum": _VALUE,
            "keep-git-dir": _BOOL, "parents": _BOOL, "unpack": _BOOL},
    "HEALTHCHECK": {"interval": _VALUE, "timeout": _VALUE, "start-period": _VALUE, "start-interval": _VALUE,
                    "retries": _VALUE},
}
_COMMAND_KEYWORDS = ("RUN", "CMD", "ENTRYPOINT")


def _extract_flag_words(text: str) -> tuple[str, list[str]]:
    """Split the leading `--flag[=value]` words off `text` (BuildKit's extractBuilderFlags): quotes in a
    flag word are removed and a backslash escapes the next character; `--` alone ends the flags."""
    words: list[str] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if not text.startswith("--", pos):
            return text[pos:], words
        word, quoted = [], False
        quote: str | None = None
        while pos < end:
            ch = text[pos]
            if quote is None:
                if ch.isspace():
                    break
                if ch in "'\"":
                    quote, quoted = ch, True
                    pos += 1
                    continue
            elif ch == quote:
                quote = None
                pos += 1
                continue
            if ch == "\\":
                pos += 1
                if pos == end:
                    break  # a backslash at the very end is dropped
                ch = text[pos]
            word.append(ch)
            pos += 1
        flag = "".join(word)
        if flag == "--":
            return text[pos:], words
        if flag or quoted:
            words.append(flag)


def _parse_flags(keyword: str, words: list[str]) -> tuple[tuple[str, str | None], ...]:
    known = _FLAGS.get(keyword, {})
    flags: list[tuple[str, str | None]] = []
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = known.get(name)
        if kind is None:
            raise _unknown_flag(keyword, name, known)
        if kind != _REPEATED and any(seen == name for seen, _ in flags):
            raise _Problem(f"duplicate flag --{name} for {keyword}", hint=f"give --{name} only once")
        if kind == _BOOL:
            if not has_value:
                flags.append((name, None))
            elif value.lower() in ("true", "false"):
                flags.append((name, value.lower()))
            else:
                raise _Problem(f"--{name} takes true or false, not {value!r}", hint=f"write --{name} alone")
        else:
            if not has_value:
                raise _Problem(f"flag --{name} for {keyword} needs a value", hint=f"write --{name}=VALUE")
            flags.append((name, value))
    return tuple(flags)


def _unknown_flag(keyword: str, name: str, known: dict[str, str]) -> _Problem:
    if known:
        message = f"unknown flag --{name} for {keyword} (known: {', '.join('--' + k for k in known)})"
    else:
        message = f"unknown flag --{name} for {keyword} ({keyword} takes no flags)"
    import difflib  # only for an unknown flag's hint

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean --{close[0]}?"
    elif keyword in _COMMAND_KEYWORDS:
        hint = (f"words starting with -- right after {keyword} are read as {keyword}'s own flags; to pass "
                f'--{name} to the program, use the exec form: {keyword} ["program", "--{name}"]')
    else:
        hint = None
    return _Problem(message, hint)


# --- argument forms ------------------------------------------------------------------------------------------
def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity, which Python's json would accept


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _json_array(args: str) -> list[str] | None:
    """The exec (JSON) form's arguments, or None when `args` is not JSON (then docker uses the shell
    form). Like docker (Go's json.Decoder), only the leading JSON value is read. A JSON array holding
    anything but strings is an error, not a fallback."""
    if not args.startswith("["):
        return None
    try:
        value, _ = _JSON.raw_decode(args)
    except ValueError:
        return None
    if not all(isinstance(item, str) for item in value):
        raise _Problem("when using JSON array syntax, arrays must be comprised of strings only",
                       hint='quote every element, e.g. ["sleep", "10"]')
    strings: list[str] = value
    return strings


def _command(args: str) -> ins.Command:
    exec_args = _json_array(args)
    if exec_args is not None:
        return ins.Command(exec_form=True, args=tuple(exec_args))
    return ins.Command(exec_form=False, shell_text=args)


def _whitespace_words(args: str) -> list[str]:
    return _WHITESPACE.split(args) if args else []


def _split_words(text: str, escape: str) -> list[str]:
    """Words split on unquoted whitespace, quotes and escapes kept for expansion (BuildKit's parseWords)."""
    words: list[str] = []
    word = ""
    quoted = False  # an empty quoted word ("") still counts as a word
    quote: str | None = None
    pos, end = 0, len(text)
    while pos < end:
        ch = text[pos]
        if quote is None:
            if ch.isspace():
                if word or quoted:
                    words.append(word)
                word, quoted = "", False
                pos += 1
                continue
            if ch in "'\"":
                quote, quoted = ch, True
        elif ch == quote:
            quote = None
        # The escape character keeps the next character in the word (both stay, for expansion to read),
        # except inside single quotes; a trailing one is dropped.
        if ch == escape and quote != "'":
            if pos + 1 == end:
                break
            word += ch
            pos += 1
            ch = text[pos]
        word += ch
        pos += 1
    if word or quoted:
        words.append(word)
    return words


def _name_value_pairs(parts: _Parts) -> tuple[list[tuple[str, str]], bool]:
    """ENV/LABEL pairs and whether the legacy `KEY value with spaces` form was used."""
    keyword = parts.keyword
    example = f"{keyword} name=value" + (" other=value" if keyword == "LABEL" else "")
    words = _split_words(parts.args, parts.escape)
    if not words:
        raise _Problem(f"{keyword} requires at least one argument", hint=f"e.g. {example}")
    if "=" not in words[0]:
        key_and_value = _WHITESPACE.split(parts.args, maxsplit=1)
        if len(key_and_value) < 2:
            raise _Problem(f"{keyword} must have two arguments", hint=f"e.g. {example}")
        return [(key_and_value[0], key_and_value[1])], True
    pairs = []
    for word in words:
        key, has_value, value = word.partition("=")
        if not has_value:
            raise _Problem(f"syntax error - can't find = in {word!r}. Must be of the form: name=value",
                           hint="quote values that contain spaces, e.g. name=\"two words\"")
        if not key:
            raise _Problem(f"{keyword} names can not be blank", hint=f"e.g. {example}")
        pairs.append((key, value))
    return pairs, False


def _require(condition: bool, message: str, hint: str | None = None) -> None:
    if not condition:
        raise _Problem(message, hint)


def _base(parts: _Parts) -> dict[str, Any]:
    return {"keyword": parts.keyword, "location": parts.location, "original": parts.original,
            "flags": parts.flags}


# --- one parser per instruction ------------------------------------------------------------------------------
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")


def _parse_from(parts: _Parts) -> ins.From:
    usage = "FROM [--platform=PLATFORM] IMAGE [AS NAME]"
    words = _whitespace_words(parts.args)
    stage_name = None
    if len(words) == 3 and words[1].lower() == "as":
        stage_name = words[2]
        _require(_STAGE_NAME.fullmatch(stage_name.lower()) is not None,
                 f'invalid name for build stage: "{stage_name}", name can\'t start with a number or contain '
                 "symbols", hint="stage names are letters, digits, -, _ and ., starting with a letter")
    elif len(words) == 3:
        raise _Problem(f'FROM expects AS before the stage name, not "{words[1]}"', hint=usage)
    else:
        _require(len(words) == 1, "FROM requires either one or three arguments", hint=usage)
    return ins.From(**_base(parts), image=words[0], stage_name=stage_name, platform=_flag(parts, "platform"))


def _flag(parts: _Parts, name: str) -> str | None:
    for key, value in parts.flags:
        if key == name:
            return value
    return None


def _parse_run(parts: _Parts) -> ins.Run:
    command = _command(parts.args)
    _require(bool(command.args if command.exec_form else command.shell_text),
             "RUN requires a command", hint='e.g. RUN make install, or RUN ["make", "install"]')
    return ins.Run(**_base(parts), command=command, heredocs=parts.heredocs)


def _parse_cmd(parts: _Parts) -> ins.Cmd:
    _require(bool(parts.args), "CMD requires a command",
             hint='e.g. CMD ["app", "--serve"] or CMD app --serve; CMD [] clears the command')
    return ins.Cmd(**_base(parts), command=_command(parts.args))


def _parse_entrypoint(parts: _Parts) -> ins.Entrypoint:
    _require(bool(parts.args), "ENTRYPOINT requires a command",
             hint='e.g. ENTRYPOINT ["app"]; ENTRYPOINT [] clears it')
    return ins.Entrypoint(**_base(parts), command=_command(parts.args))


def _parse_shell(parts: _Parts) -> ins.Shell:
    shell = _json_array(parts.args)
    _require(shell is not None, "SHELL requires the arguments to be in JSON form",
             hint='e.g. SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    _require(bool(shell), "SHELL requires at least one argument", hint='e.g. SHELL ["/bin/bash", "-c"]')
    return ins.Shell(**_base(parts), args=tuple(shell or ()))


def _parse_healthcheck(parts: _Parts) -> ins.Healthcheck:
    usage = "HEALTHCHECK [--interval=30s ...] CMD command, or HEALTHCHECK NONE"
    _require(bool(parts.args), "HEALTHCHECK requires at least one argument", hint=usage)
    kind, rest = _split_command(parts.args)
    if kind.upper() == "NONE":
        _require(not rest, "HEALTHCHECK NONE takes no arguments", hint=usage)
        return ins.Healthcheck(**_base(parts), command=None)
    _require(kind.upper() == "CMD", f'unknown type "{kind}" in HEALTHCHECK (try CMD)', hint=usage)
    command = _command(rest)
    _require(bool(command.args if command.exec_form else command.shell_text),
             "missing command after HEALTHCHECK CMD", hint='e.g. HEALTHCHECK CMD ["curl", "-f", "localhost"]')
    return ins.Healthcheck(**_base(parts), command=command)


def _parse_env(parts: _Parts) -> ins.Env:
    pairs, legacy = _name_value_pairs(parts)
    return ins.Env(**_base(parts), pairs=tuple(pairs), legacy_form=legacy)


def _parse_label(parts: _Parts) -> ins.Label:
    pairs, legacy = _name_value_pairs(parts)
    return ins.Label(**_base(parts), pairs=tuple(pairs), legacy_form=legacy)


def _parse_arg(parts: _Parts) -> ins.Arg:
    words = _split_words(parts.args, parts.escape)
    _require(bool(words), "ARG requires at least one argument", hint="e.g. ARG VERSION or ARG VERSION=1.0")
    definitions = []
    for word in words:
        name, has_default, default = word.partition("=")
        _require(bool(name), "ARG names can not be blank", hint="e.g. ARG VERSION=1.0")
        definitions.append(ins.ArgDef(name, default if has_default else None))
    return ins.Arg(**_base(parts), args=tuple(definitions))


def _parse_copy(parts: _Parts) -> ins.Copy:
    keyword = parts.keyword
    exec_args = _json_array(parts.args)
    words = exec_args if exec_args is not None else _whitespace_words(parts.args)
    hint = f"{keyword} [--flags] SOURCE... DEST, e.g. {keyword} app.py /app/"
    _require(bool(words), f"{keyword} requires at least two arguments (sources and a destination)", hint)
    _require(len(words) >= 2, f"{keyword} requires at least two arguments, but only one was provided: the "
                              "destination could not be determined", hint)
    _require(parse_heredoc_word(words[-1]) is None, f"{keyword} cannot accept a heredoc as a destination",
             hint=f"put the destination last, e.g. {keyword} <<EOF /etc/app.conf")
    paths, heredocs = _split_sources(words[:-1], parts.heredocs)
    return ins.Copy(**_base(parts), sources=tuple(paths), dest=words[-1], json_form=exec_args is not None,
                    heredocs=tuple(heredocs))


def _split_sources(words: list[str], bodies: tuple[ins.Heredoc, ...]) -> tuple[list[str], list[ins.Heredoc]]:
    """COPY/ADD sources: (paths, inline files). A source word that is a heredoc marker gets the body read
    for that delimiter (the last one, should a delimiter repeat), as BuildKit's parseSourcesAndDest."""
    body_by_name = {heredoc.name: heredoc.content for heredoc in bodies}
    paths, heredocs = [], []
    for word in words:
        marker = parse_heredoc_word(word)
        if marker is None:
            paths.append(word)
        else:
            heredocs.append(dataclasses.replace(marker, content=body_by_name.get(marker.name, "")))
    return paths, heredocs


def _parse_expose(parts: _Parts) -> ins.Expose:
    ports = _whitespace_words(parts.args)
    _require(bool(ports), "EXPOSE requires at least one argument", hint="e.g. EXPOSE 8080 or EXPOSE 53/udp")
    return ins.Expose(**_base(parts), ports=tuple(ports))


def _parse_volume(parts: _Parts) -> ins.Volume:
    exec_args = _json_array(parts.args)
    paths = [p.strip() for p in exec_args] if exec_args is not None else _whitespace_words(parts.args)
    _require(bool(paths), "VOLUME requires at least one argument", hint='e.g. VOLUME /data or VOLUME ["/data"]')
    _require(all(paths), "VOLUME specified can not be an empty string", hint='e.g. VOLUME ["/data"]')
    return ins.Volume(**_base(parts), paths=tuple(paths))


def _single_argument(parts: _Parts, example: str) -> str:
    # Docker takes the whole rest of the line as the one argument (`USER a b` is the user "a b").
    _require(bool(parts.args), f"{parts.keyword} requires exactly one argument", hint=f"e.g. {example}")
    return parts.args


def _parse_user(parts: _Parts) -> ins.User:
    return ins.User(**_base(parts), user=_single_argument(parts, "USER app or USER 1000:1000"))


def _parse_workdir(parts: _Parts) -> ins.Workdir:
    return ins.Workdir(**_base(parts), path=_single_argument(parts, "WORKDIR /app"))


def _parse_stopsignal(parts: _Parts) -> ins.Stopsignal:
    return ins.Stopsignal(**_base(parts), signal=_single_argument(parts, "STOPSIGNAL SIGTERM"))


def _parse_maintainer(parts: _Parts) -> ins.Maintainer:
    return ins.Maintainer(**_base(parts), name=_single_argument(parts, "MAINTAINER Jane <jane@example.com>"))


def _parse_onbuild(parts: _Parts) -> ins.Onbuild:
    _require(bool(parts.args), "ONBUILD requires at least one argument", hint="e.g. ONBUILD COPY . /app")
    trigger_keyword = _split_command(parts.args)[0].upper()
    _require(trigger_keyword != "ONBUILD", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    _require(trigger_keyword not in ("FROM", "MAINTAINER"),
             f"{trigger_keyword} isn't allowed as an ONBUILD trigger")
    trigger = re.sub(r"(?i)^\s*ONBUILD\s*", "", parts.original)
    # Stored with its heredocs' bodies and delimiters on the following lines, as BuildKit stores it.
    trigger += "".join(f"\n{heredoc.content}{heredoc.name}" for heredoc in parts.heredocs)
    # Check the trigger now: it would only fail in some later build that uses this image as its base.
    try:
        parse_instruction(trigger, parts.location, parts.escape)
    except DockerfileError as exc:
        raise _Problem(f"invalid ONBUILD trigger: {exc.message}", exc.hint) from None
    return ins.Onbuild(**_base(parts), trigger=trigger)


_PARSERS: dict[str, Callable[[_Parts], ins.Instruction]] = {
    "FROM": _parse_from, "RUN": _parse_run, "CMD": _parse_cmd, "LABEL": _parse_label,
    "MAINTAINER": _parse_maintainer, "EXPOSE": _parse_expose, "ENV": _parse_env, "ADD": _parse_copy,
    "COPY": _parse_copy, "ENTRYPOINT": _parse_entrypoint, "VOLUME": _parse_volume, "USER": _parse_user,
    "WORKDIR": _parse_workdir, "ARG": _parse_arg, "ONBUILD": _parse_onbuild, "STOPSIGNAL": _parse_stopsignal,
    "HEALTHCHECK": _parse_healthcheck, "SHELL": _parse_shell,
}
assert set(_PARSERS) == set(ins.KEYWORDS)


# =============================================================================================================
# 4. Stages
# =============================================================================================================
def _group_stages(parsed: list[ins.Instruction], source: _Source, path: str) -> ins.Dockerfile:
    if not parsed:
        raise DockerfileError("the Dockerfile is empty (file with no instructions)",
                              location=SourceLocation(path, 1), hint="start it with FROM, e.g. FROM alpine:3.20")
    global_args: list[ins.Arg] = []
    stages: list[tuple[ins.From, list[ins.Instruction]]] = []
    for instruction in parsed:
        if isinstance(instruction, ins.From):
            _check_stage_name_unique(instruction, [base for base, _ in stages])
            stages.append((instruction, []))
        elif stages:
            stages[-1][1].append(instruction)
        elif isinstance(instruction, ins.Arg):
            global_args.append(instruction)
        else:
            raise DockerfileError(f"{instruction.keyword} before the first FROM: no build stage in current "
                                  "context", location=instruction.location,
                                  hint="only ARG may come before the first FROM; start a stage with FROM IMAGE")
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction", location=SourceLocation(path, 1),
                              hint="a build stage starts with FROM, e.g. FROM alpine:3.20")
    return ins.Dockerfile(
        path=path,
        global_args=tuple(global_args),
        stages=tuple(ins.Stage(index, base, tuple(body)) for index, (base, body) in enumerate(stages)),
        directives=source.directives,
        escape=source.escape,
    )


def _check_stage_name_unique(base: ins.From, earlier: list[ins.From]) -> None:
    if base.stage_name is None:
        return
    for other in earlier:
        if other.stage_name is not None and other.stage_name.lower() == base.stage_name.lower():
            raise DockerfileError(f'duplicate stage name "{base.stage_name}"', location=base.location,
                                  rule="DuplicateStageName",
                                  hint=f"{other.location} already names a stage {other.stage_name!r}; stage "
                                       "names must be unique (ignoring case)")
