"""Heredoc execution semantics (core/dockerfile/heredoc.py) against BuildKit's documented behaviour: what a
RUN with heredocs executes, and what COPY/ADD <<EOF writes."""

from __future__ import annotations

import pytest

from dockyard.dockerfile import instructions as ins
from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.dockerfile.expand import Expander
from dockyard.dockerfile.heredoc import (RunCommand, ScriptFile, heredoc_content, heredoc_words, parse_heredoc_word,
                                         run_command)
from dockyard.errors import DockerfileError

SH = ("/bin/sh", "-c")
ENV = {"NAME": "world", "EMPTY": ""}


def instruction(text: str) -> ins.Instruction:
    (inst,) = parse_dockerfile("FROM scratch\n" + text, "Dockerfile").stages[0].instructions
    return inst


def expand(text: str) -> str:
    """The step's expansion of one `$V` / `${V...}` reference (what the executor passes)."""
    return Expander().expand_word(text, ENV)


def never_called(text: str) -> str:
    raise AssertionError(f"BuildKit does not expand RUN heredocs, but {text!r} was expanded")


# --- RUN ------------------------------------------------------------------------------------------------------
def test_run_without_heredocs_is_the_plain_command():
    assert run_command(instruction("RUN echo hi\n"), SH, never_called) == RunCommand([*SH, "echo hi"])
    assert run_command(instruction('RUN ["echo", "hi"]\n'), SH, never_called) == RunCommand(["echo", "hi"])


def test_run_heredoc_alone_is_the_shell_script_unexpanded():
    run = instruction("RUN <<EOF\necho $NAME\necho two\nEOF\n")
    # The shell expands $NAME when it runs, from the environment (ARG/ENV), not the builder.
    assert run_command(run, SH, never_called) == RunCommand([*SH, "echo $NAME\necho two\n"])


def test_run_heredoc_uses_the_stage_shell():
    run = instruction("RUN <<EOF\necho hi\nEOF\n")
    assert run_command(run, ("/bin/bash", "-eo", "pipefail", "-c"), never_called).argv == \
        ["/bin/bash", "-eo", "pipefail", "-c", "echo hi\n"]


def test_run_heredoc_with_dash_strips_leading_tabs():
    run = instruction("RUN <<-EOF\n\techo a\n\t\techo b\n  echo c\n\tEOF\n")
    assert run_command(run, SH, never_called).argv == [*SH, "echo a\necho b\n  echo c\n"]


def test_run_quoted_delimiter_changes_nothing_when_the_body_is_the_script():
    run = instruction("RUN <<'EOF'\necho $NAME\nEOF\n")
    assert run_command(run, SH, never_called).argv == [*SH, "echo $NAME\n"]


def test_run_shebang_heredoc_becomes_an_executable_script():
    run = instruction("RUN <<EOF\n#!/usr/bin/env python3\nprint('hi')\nEOF\n")
    command = run_command(run, SH, never_called)
    assert command.argv == [*SH, "/dev/pipes/EOF"]
    assert command.files == (ScriptFile("/dev/pipes/EOF", "#!/usr/bin/env python3\nprint('hi')\n", 0o755),)


def test_run_shebang_script_is_named_after_the_unquoted_delimiter_and_chomped():
    run = instruction('RUN <<-"script"\n\t#!/bin/sh\n\techo hi\nscript\n')
    assert run_command(run, SH, never_called) == RunCommand(
        [*SH, "/dev/pipes/script"], (ScriptFile("/dev/pipes/script", "#!/bin/sh\necho hi\n", 0o755),))


def test_run_shebang_needs_the_first_characters():
    run = instruction("RUN <<EOF\n #!/bin/sh\necho hi\nEOF\n")
    assert run_command(run, SH, never_called) == RunCommand([*SH, " #!/bin/sh\necho hi\n"])


def test_run_heredoc_feeding_a_command_gives_the_shell_a_real_heredoc():
    run = instruction("RUN cat <<EOF > /greeting\nhello $NAME\nEOF\n")
    assert run_command(run, SH, never_called) == RunCommand([*SH, "cat <<EOF > /greeting\nhello $NAME\nEOF"])


def test_run_heredoc_with_an_interpreter_word_after_it():
    run = instruction("RUN <<EOF python3\nprint('hi')\nEOF\n")
    assert run_command(run, SH, never_called).argv == [*SH, "<<EOF python3\nprint('hi')\nEOF"]


def test_run_several_heredocs_are_reconstituted_in_order():
    run = instruction("RUN <<A cat - /dev/stdin <<-'B'\none\nA\n\ttwo $X\n\tB\n")
    # The shell sees its own quoting and <<- again: the bodies are passed unchanged.
    assert run_command(run, SH, never_called).argv == [*SH, "<<A cat - /dev/stdin <<-'B'\none\nA\n\ttwo $X\nB"]


def test_run_shebang_with_a_path_as_delimiter_is_refused():
    run = instruction("RUN <<../x\n#!/bin/sh\n../x\n")
    with pytest.raises(DockerfileError) as info:
        run_command(run, SH, never_called)
    assert "../x" in info.value.message and info.value.location == run.location


# --- COPY / ADD -----------------------------------------------------------------------------------------------
def only_heredoc(text: str) -> ins.Heredoc:
    (heredoc,) = instruction(text).heredocs
    return heredoc


def test_copy_heredoc_expands_variables_and_keeps_quotes():
    heredoc = only_heredoc("COPY <<EOF /x\nhello $NAME and ${NAME}!\n\"quoted\" 'single $NAME'\nEOF\n")
    assert heredoc_content(heredoc, expand) == "hello world and world!\n\"quoted\" 'single world'\n"


def test_copy_heredoc_expansion_operators_and_unset_variables():
    heredoc = only_heredoc("COPY <<EOF /x\n${MISSING:-fallback} ${EMPTY:-empty} ${NAME:+set} [$MISSING]\nEOF\n")
    assert heredoc_content(heredoc, expand) == "fallback empty set []\n"


def test_copy_heredoc_backslash_escapes_the_next_character():
    heredoc = only_heredoc("COPY <<EOF /x\ncost \\$5 \\\\ printf 'a\\n'\nEOF\n")
    assert heredoc_content(heredoc, expand) == "cost $5 \\ printf 'an'\n"


def test_copy_heredoc_lone_dollars_stay():
    heredoc = only_heredoc("COPY <<EOF /x\n$ 100$ $(date) $1x\nEOF\n")
    assert heredoc_content(heredoc, expand) == "$ 100$ $(date) x\n"


@pytest.mark.parametrize("delimiter", ["'EOF'", '"EOF"', "E'O'F", '"E"OF'])
def test_copy_quoted_delimiter_writes_the_body_as_is(delimiter):
    heredoc = only_heredoc(f"COPY <<{delimiter} /x\nhello $NAME \\$ \\\\\nEOF\n")
    assert heredoc.name == "EOF" and not heredoc.expand
    assert heredoc_content(heredoc, never_called) == "hello $NAME \\$ \\\\\n"


def test_copy_heredoc_with_dash_strips_tabs_before_expanding():
    heredoc = only_heredoc("COPY <<-EOF /x\n\t\thello $NAME\n\t  indented\nEOF\n")
    assert heredoc_content(heredoc, expand) == "hello world\n  indented\n"


def test_copy_empty_heredoc():
    assert heredoc_content(only_heredoc("COPY <<EOF /x\nEOF\n"), expand) == ""


def test_copy_heredoc_unterminated_brace_is_reported_by_the_expansion():
    heredoc = only_heredoc("COPY <<EOF /x\n${NAME\nEOF\n")
    with pytest.raises(ValueError):
        heredoc_content(heredoc, expand)


# --- the heredoc syntax (BuildKit's TestParseHeredocHelpers / TestHeredocsFromLine) -----------------------------
@pytest.mark.parametrize("word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"',
                                  "<< EOF", "<<- EOF", "3<<EOF"])
def test_heredoc_words(word):
    assert parse_heredoc_word(word).name == "EOF"


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh", "<<'EOF", '<<EOF"'])
def test_not_heredoc_words(word):
    assert parse_heredoc_word(word) is None


def test_heredoc_word_flags():
    assert parse_heredoc_word("<<-EOF") == ins.Heredoc("EOF", "", expand=True, chomp_tabs=True)
    assert parse_heredoc_word("<<'EOF'") == ins.Heredoc("EOF", "", expand=False, chomp_tabs=False)
    assert parse_heredoc_word("<<eo\\'f") == ins.Heredoc("eo'f", "", expand=True)  # an escaped quote quotes nothing
    assert parse_heredoc_word("<<'one two'") == ins.Heredoc("one two", "", expand=False)
    assert parse_heredoc_word("<< -EOF").name == "-EOF"


def test_line_words_for_heredoc_detection():
    assert heredoc_words("RUN <<  EOF  > foo") == ["RUN", "<<  EOF", ">", "foo"]
    assert heredoc_words("RUN echo '<<EOF' \"<<A\" <<B") == ["RUN", "echo", "'<<EOF'", '"<<A"', "<<B"]
    assert heredoc_words("RUN echo ${X:-a b} <<EOF") == ["RUN", "echo", "${X:-a b}", "<<EOF"]
    # An open quote anywhere: BuildKit's lexer fails and finds no heredoc.
    assert heredoc_words("RUN cat <<EOF it's") == []
