"""The Dockerfile parser: real Dockerfile texts in, typed instructions (or DockerfileErrors) out."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from dockyard.dockerfile import instructions as ins
from dockyard.dockerfile.parser import load_dockerfile, parse_dockerfile, parse_instruction
from dockyard.errors import ContextError, DockerfileError, SourceLocation


def parse(text: str) -> ins.Dockerfile:
    return parse_dockerfile(textwrap.dedent(text).lstrip("\n"), "Dockerfile")


def only(text: str) -> ins.Instruction:
    """The single instruction after `FROM scratch`."""
    df = parse_dockerfile("FROM scratch\n" + text, "Dockerfile")
    (instruction,) = df.stages[0].instructions
    return instruction


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text, "Dockerfile")
    return info.value


# --- the whole file --------------------------------------------------------------------------------------------
def test_multi_stage_dockerfile():
    df = parse("""
        # syntax=docker/dockerfile:1
        ARG GO_VERSION=1.22
        ARG BASE
        FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
        WORKDIR /src
        COPY --link go.mod go.sum ./
        RUN --mount=type=cache,target=/root/.cache \\
            go build -o /out/app .

        FROM ${BASE:-alpine:3.20}
        COPY --from=build /out/app /usr/local/bin/
        ENTRYPOINT ["app"]
        """)
    assert df.path == "Dockerfile"
    assert df.directives == (("syntax", "docker/dockerfile:1"),)
    assert df.escape == "\\"
    assert [a.args for a in df.global_args] == [(ins.ArgDef("GO_VERSION", "1.22"),), (ins.ArgDef("BASE", None),)]
    build, final = df.stages
    assert build.index == 0 and build.name == "build" and build.display_name == "Build"
    assert build.base.image == "golang:${GO_VERSION}"
    assert build.base.platform == "$BUILDPLATFORM"
    assert build.base.flags == (("platform", "$BUILDPLATFORM"),)
    assert [i.keyword for i in build.instructions] == ["WORKDIR", "COPY", "RUN"]
    run = build.instructions[2]
    assert run.location == SourceLocation("Dockerfile", 7, 8)
    assert run.original == "RUN --mount=type=cache,target=/root/.cache     go build -o /out/app ."
    assert run.command.shell_text == "go build -o /out/app ."
    assert final.index == 1 and final.name is None and final.display_name == "stage-1"
    assert final.base.image == "${BASE:-alpine:3.20}"
    assert df.stage_by_name("BUILD") is build


def test_locations_are_one_based_and_cover_continuations():
    df = parse("""
        FROM scratch

        # a comment
        ENV A=1 \\
            B=2
        CMD ["x"]
        """)
    env, cmd = df.stages[0].instructions
    assert df.stages[0].base.location == SourceLocation("Dockerfile", 1, 1)
    assert env.location == SourceLocation("Dockerfile", 4, 5)
    assert cmd.location == SourceLocation("Dockerfile", 6, 6)


def test_keywords_are_case_insensitive_and_leading_whitespace_is_ignored():
    df = parse("from scratch\n   run echo hi\n\tCopy a b\n")
    assert [i.keyword for i in df.stages[0].instructions] == ["RUN", "COPY"]
    assert df.stages[0].instructions[0].original == "run echo hi"


# --- continuation lines and the line structure -----------------------------------------------------------------
def test_continuation_keeps_the_whitespace_of_continued_lines():
    run = only("RUN apt-get update \\\n    && apt-get install -y curl\n")
    assert run.command.shell_text == "apt-get update     && apt-get install -y curl"
    assert run.original == "RUN apt-get update     && apt-get install -y curl"


def test_comment_lines_inside_a_continuation_are_dropped():
    run = only("RUN a \\\n  # not part of the command\n# nor this\n  b\n")
    assert run.command.shell_text == "a   b"
    assert run.location.end_line == 5


def test_blank_lines_inside_a_continuation_are_skipped_like_docker():
    # dockerfile-parse would end the RUN at the blank line and read "&& echo b" as an instruction.
    run = only("RUN echo a \\\n\n   \n    && echo b\n")
    assert run.command.shell_text == "echo a     && echo b"
    assert (run.location.start_line, run.location.end_line) == (2, 5)


def test_trailing_continuation_at_end_of_file_keeps_the_instruction():
    # dockerfile-parse silently drops an instruction still continued at the end of the file.
    run = only("RUN echo a \\")
    assert run.command.shell_text == "echo a"
    assert run.location == SourceLocation("Dockerfile", 2, 2)
    run = only("RUN echo a \\\n# trailing comment\n")
    assert run.command.shell_text == "echo a"
    assert run.location == SourceLocation("Dockerfile", 2, 3)


def test_last_line_without_newline():
    assert only("CMD run").command.shell_text == "run"
    # dockerfile-parse drops an argument-less last line without newline; docker reports it.
    assert "RUN requires a command" in error("FROM scratch\nRUN").message


def test_whitespace_after_the_continuation_character():
    assert only("RUN a \\  \t\n b\n").command.shell_text == "a  b"


def test_escaped_escape_at_end_of_line_is_not_a_continuation():
    # BuildKit: `\\` at the end of a line is an escaped backslash, not a line continuation.
    df = parse("FROM scratch\nRUN echo \\\\\nRUN b\n")
    first, second = df.stages[0].instructions
    assert first.command.shell_text == "echo \\\\"
    assert second.command.shell_text == "b"


def test_a_form_feed_after_the_backslash_does_not_continue():
    # Docker only allows spaces and tabs after the continuation character.
    df = parse_dockerfile("FROM scratch\nRUN a \\\f\nRUN b\n", "Dockerfile")
    assert [i.command.shell_text for i in df.stages[0].instructions] == ["a \\", "b"]


def test_keyword_followed_directly_by_the_continuation():
    # Docker joins `RUN\` + `echo hi` into `RUNecho hi`: an unknown instruction.
    assert 'unknown instruction "RUNecho"' in error("FROM scratch\nRUN\\\necho hi\n").message
    assert only("RUN \\\necho hi\n").command.shell_text == "echo hi"


def test_a_line_of_only_the_escape_character_starts_a_continuation():
    run = only("\\\nRUN x\n")
    assert run.original == "RUN x"
    assert (run.location.start_line, run.location.end_line) == (2, 3)


def test_crlf_line_endings():
    df = parse_dockerfile("FROM scratch\r\nRUN a \\\r\n  b\r\nLABEL k=v\r\n", "Dockerfile")
    run, label = df.stages[0].instructions
    assert run.command.shell_text == "a   b"
    assert label.pairs == (("k", "v"),)


def test_byte_order_mark_is_ignored():
    df = parse_dockerfile("\ufeff# escape=`\nFROM scratch\nRUN a `\n b\n", "Dockerfile")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].command.shell_text == "a  b"


def test_comments_are_not_trailing():
    # `#` only starts a comment at the beginning of a line.
    assert only("RUN echo hi # there\n").command.shell_text == "echo hi # there"


# --- parser directives -----------------------------------------------------------------------------------------
def test_backtick_escape_directive():
    df = parse("""
        # escape=`
        FROM mcr.microsoft.com/windows/servercore
        COPY testfile.txt c:\\
        RUN dir c:\\
        RUN Get-ChildItem `
            -Path c:\\
        """)
    assert df.escape == "`"
    assert df.directives == (("escape", "`"),)
    copy, run1, run2 = df.stages[0].instructions
    assert copy.dest == "c:\\"
    assert run1.command.shell_text == "dir c:\\"
    assert run2.command.shell_text == "Get-ChildItem     -Path c:\\"


def test_escape_directive_after_check_directive():
    # dockerfile-parse stops looking for `# escape=` after a directive it does not know (check).
    df = parse("# check=skip=JSONArgsRecommended\n# escape=`\nFROM scratch\nRUN a `\n b\n")
    assert df.directives == (("check", "skip=JSONArgsRecommended"), ("escape", "`"))
    assert df.escape == "`"
    assert df.stages[0].instructions[0].command.shell_text == "a  b"


def test_directive_syntax_variants():
    df = parse("#Syntax = docker/dockerfile:1.7  \n  #  ESCAPE=`\n# CHECK=error=true\nFROM scratch\n")
    assert df.directives == (("syntax", "docker/dockerfile:1.7"), ("escape", "`"), ("check", "error=true"))


def test_syntax_and_check_directives_are_accepted_with_any_value():
    df = parse("# syntax=docker/dockerfile:1.7-labs\n# check=skip=JSONArgsRecommended,StageNameCasing;error=true\n"
               "FROM scratch\nCMD app\n")
    assert df.directives == (("syntax", "docker/dockerfile:1.7-labs"),
                             ("check", "skip=JSONArgsRecommended,StageNameCasing;error=true"))
    assert df.stages[0].instructions[0].command.shell_text == "app"


@pytest.mark.parametrize("text", [
    "\n# escape=`\nFROM scratch\nRUN a `\nRUN b\n",  # after a blank line
    "# a comment\n# escape=`\nFROM scratch\nRUN a `\nRUN b\n",  # after an ordinary comment
    "# foo=bar\n# escape=`\nFROM scratch\nRUN a `\nRUN b\n",  # after an unknown directive
    "FROM scratch\n# escape=`\nRUN a `\nRUN b\n",  # after an instruction
])
def test_directives_only_count_at_the_very_top(text):
    df = parse_dockerfile(text, "Dockerfile")
    assert df.escape == "\\"
    assert ("escape", "`") not in df.directives
    assert [i.original for i in df.stages[0].instructions] == ["RUN a `", "RUN b"]


def test_duplicate_directive():
    err = error("# escape=`\n# escape=\\\nFROM scratch\n")
    assert err.message == "only one escape parser directive can be used"
    assert err.location == SourceLocation("Dockerfile", 2)


def test_invalid_escape_directive():
    err = error("# escape=^\nFROM scratch\n")
    assert "invalid escape character '^'" in err.message
    assert err.location.start_line == 1 and err.hint


# --- flags -----------------------------------------------------------------------------------------------------
def test_flags_keep_order_and_repeats():
    copy = only("COPY --exclude=*.md --from=build --exclude=.git --chmod=0755 --link src/ /app/\n")
    assert copy.flags == (("exclude", "*.md"), ("from", "build"), ("exclude", ".git"), ("chmod", "0755"),
                          ("link", None))
    assert copy.flag("from") == "build"
    assert copy.flag("link") == "true"
    assert copy.flag_values("exclude") == ["*.md", ".git"]
    assert copy.sources == ("src/",) and copy.dest == "/app/"


def test_run_flags():
    run = only("RUN --mount=type=secret,id=tok --mount=type=cache,target=/c --network=none --security=insecure "
               "make\n")
    assert run.flag_values("mount") == ["type=secret,id=tok", "type=cache,target=/c"]
    assert run.flag("network") == "none" and run.flag("security") == "insecure"
    assert run.command.shell_text == "make"


def test_add_flags():
    add = only("ADD --checksum=sha256:abc --keep-git-dir=true --chown=1:2 --parents=false https://x/y.tgz /\n")
    assert add.is_add and add.keyword == "ADD"
    assert add.flags == (("checksum", "sha256:abc"), ("keep-git-dir", "true"), ("chown", "1:2"),
                         ("parents", "false"))


def test_flag_values_lose_quotes_and_backslash_escapes():
    copy = only("COPY --chown=\"app user\":'grp' --from=a\\ b x y\n")
    assert copy.flags == (("chown", "app user:grp"), ("from", "a b"))


def test_double_dash_ends_flags():
    assert only("RUN -- --version\n").command.shell_text == "--version"


def test_flags_only_lead_the_arguments():
    run = only("RUN echo --not-a-flag\n")
    assert run.flags == () and run.command.shell_text == "echo --not-a-flag"


def test_healthcheck_flags():
    hc = only("HEALTHCHECK --interval=5m --timeout=3s --start-period=1s --start-interval=1s --retries=3 "
              "CMD curl -f http://localhost/\n")
    assert [k for k, _ in hc.flags] == ["interval", "timeout", "start-period", "start-interval", "retries"]


def test_unknown_flag_names_the_known_ones():
    err = error("FROM scratch\nCOPY --frm=build a b\n")
    assert err.message == "unknown flag --frm for COPY (known: --from, --chown, --chmod, --link, --exclude, --parents)"
    assert err.hint == "did you mean --from?"
    assert err.location == SourceLocation("Dockerfile", 2, 2)


@pytest.mark.parametrize("line, message", [
    ("FROM --platfrom=linux/arm64 alpine", "unknown flag --platfrom for FROM (known: --platform)"),
    ("RUN --mnt=type=cache make", "unknown flag --mnt for RUN (known: --mount, --network, --security)"),
    ("ADD --from=x a b", "unknown flag --from for ADD (known: --chown, --chmod, --link, --exclude, --checksum, "
                         "--keep-git-dir, --parents, --unpack)"),
    ("HEALTHCHECK --every=5s CMD true", "unknown flag --every for HEALTHCHECK"),
    ("CMD --help", "unknown flag --help for CMD (CMD takes no flags)"),
    ("ENV --x=1 a=b", "unknown flag --x for ENV (ENV takes no flags)"),
    ("MAINTAINER --boo joe@example.com", "unknown flag --boo for MAINTAINER"),
    ("COPY --FROM=x a b", "unknown flag --FROM for COPY"),  # flag names are case-sensitive, as in docker
])
def test_unknown_flags(line, message):
    text = f"FROM scratch\n{line}\n" if not line.startswith("FROM") else line + "\n"
    assert message in error(text).message


def test_unknown_flag_on_a_command_hints_at_the_exec_form():
    err = error("FROM scratch\nENTRYPOINT --verbose\n")
    assert 'ENTRYPOINT ["program", "--verbose"]' in err.hint


@pytest.mark.parametrize("line, message", [
    ("COPY --from a b", "flag --from for COPY needs a value"),
    ("COPY --from=a --from=b x y", "duplicate flag --from for COPY"),
    ("COPY --link=yes a b", "--link takes true or false, not 'yes'"),
    ("COPY --link= a b", "--link takes true or false, not ''"),
])
def test_bad_flag_values(line, message):
    assert message in error(f"FROM scratch\n{line}\n").message


# --- exec (JSON) form and shell form ---------------------------------------------------------------------------
@pytest.mark.parametrize("keyword, cls", [("RUN", ins.Run), ("CMD", ins.Cmd), ("ENTRYPOINT", ins.Entrypoint)])
def test_exec_and_shell_form(keyword, cls):
    exec_form = only(f'{keyword} ["/bin/echo", "a b", "\\u00e9"]\n')
    assert isinstance(exec_form, cls)
    assert exec_form.command == ins.Command(exec_form=True, args=("/bin/echo", "a b", "é"))
    shell = only(f"{keyword} echo $HOME && ls\n")
    assert shell.command == ins.Command(exec_form=False, shell_text="echo $HOME && ls")
    assert shell.command.argv(("/bin/sh", "-c")) == ["/bin/sh", "-c", "echo $HOME && ls"]


@pytest.mark.parametrize("text", ["[not json]", "['single', 'quotes']", '["unterminated"', "[NaN]", "[x] y"])
def test_invalid_json_falls_back_to_shell_form(text):
    cmd = only(f"CMD {text}\n")
    assert cmd.command == ins.Command(exec_form=False, shell_text=text)


def test_json_array_of_non_strings_is_an_error():
    err = error('FROM scratch\nCMD ["sleep", 10]\n')
    assert err.message == "when using JSON array syntax, arrays must be comprised of strings only"


def test_text_after_the_json_array_is_ignored_like_docker():
    assert only('CMD ["a"] b\n').command == ins.Command(exec_form=True, args=("a",))


def test_empty_exec_form_clears_cmd_and_entrypoint():
    assert only("CMD []\n").command == ins.Command(exec_form=True, args=())
    assert only("ENTRYPOINT []\n").command == ins.Command(exec_form=True, args=())


def test_json_form_spanning_lines():
    cmd = only('CMD ["a", \\\n     "b"]\n')
    assert cmd.command.args == ("a", "b")


def test_shell():
    shell = only('SHELL ["powershell", "-command"]\n')
    assert shell.args == ("powershell", "-command")


@pytest.mark.parametrize("line, message", [
    ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
    ("SHELL [bash]", "SHELL requires the arguments to be in JSON form"),
    ("SHELL []", "SHELL requires at least one argument"),
    ("SHELL", "SHELL requires the arguments to be in JSON form"),
    ("RUN", "RUN requires a command"),
    ("RUN []", "RUN requires a command"),
    ("RUN --network=none", "RUN requires a command"),
    ("CMD", "CMD requires a command"),
    ("ENTRYPOINT", "ENTRYPOINT requires a command"),
])
def test_missing_commands(line, message):
    err = error(f"FROM scratch\n{line}\n")
    assert err.message == message
    assert err.hint


# --- ENV, LABEL, ARG -------------------------------------------------------------------------------------------
def test_env_pairs_keep_quotes_for_expansion():
    env = only('ENV A=1 B="x y" C=\'$z\' D=a\\ b E= F=${A}\n')
    assert env.pairs == (("A", "1"), ("B", '"x y"'), ("C", "'$z'"), ("D", "a\\ b"), ("E", ""), ("F", "${A}"))
    assert env.legacy_form is False


def test_env_legacy_form():
    env = only("ENV JAVA_OPTS -Xmx1g   -Dx=\"a b\"\n")
    assert env.pairs == (("JAVA_OPTS", '-Xmx1g   -Dx="a b"'),)
    assert env.legacy_form is True


def test_env_spanning_lines():
    env = only("ENV A=1 \\\n    B=2\n")
    assert env.pairs == (("A", "1"), ("B", "2"))


def test_label_pairs_with_quoted_keys():
    label = only('LABEL "com.example.vendor"="ACME Inc" version=1.0 description="a \\"quoted\\" word"\n')
    assert label.pairs == (('"com.example.vendor"', '"ACME Inc"'), ("version", "1.0"),
                           ("description", '"a \\"quoted\\" word"'))


def test_label_legacy_form():
    assert only("LABEL maintainer Jane Doe\n").pairs == (("maintainer", "Jane Doe"),)


@pytest.mark.parametrize("line, message", [
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV A=1 B", "can't find = in 'B'"),
    ("ENV =1", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("LABEL a=b c", "can't find = in 'c'"),
    ("ARG", "ARG requires at least one argument"),
    ("ARG =x", "ARG names can not be blank"),
])
def test_name_value_errors(line, message):
    assert message in error(f"FROM scratch\n{line}\n").message


def test_arg_forms():
    arg = only('ARG A B=2 C= D="x y"\n')
    assert arg.args == (ins.ArgDef("A", None), ins.ArgDef("B", "2"), ins.ArgDef("C", ""), ins.ArgDef("D", '"x y"'))


def test_args_before_from_are_global_and_after_belong_to_the_stage():
    df = parse("ARG A=1\nARG B\nFROM scratch\nARG A\n")
    assert [a.args[0].name for a in df.global_args] == ["A", "B"]
    (stage_arg,) = df.stages[0].instructions
    assert stage_arg.args == (ins.ArgDef("A", None),)


# --- FROM --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, image, name, platform", [
    ("FROM alpine", "alpine", None, None),
    ("FROM alpine:3.20 AS base", "alpine:3.20", "base", None),
    ("FROM alpine as Base-1_x.y", "alpine", "Base-1_x.y", None),
    ("from --platform=linux/arm64 alpine aS b", "alpine", "b", "linux/arm64"),
    ("FROM scratch", "scratch", None, None),
])
def test_from(line, image, name, platform):
    base = parse(line + "\n").stages[0].base
    assert (base.image, base.stage_name, base.platform) == (image, name, platform)


@pytest.mark.parametrize("line, message", [
    ("FROM", "FROM requires either one or three arguments"),
    ("FROM a AS", "FROM requires either one or three arguments"),
    ("FROM a AS b c", "FROM requires either one or three arguments"),
    ("FROM a b", "FROM requires either one or three arguments"),
    ("FROM a IS b", 'FROM expects AS before the stage name, not "IS"'),
    ("FROM a AS 1st", 'invalid name for build stage: "1st"'),
    ("FROM a AS my/stage", 'invalid name for build stage: "my/stage"'),
    ("FROM a AS -x", 'invalid name for build stage: "-x"'),
])
def test_bad_from(line, message):
    err = error(line + "\n")
    assert message in err.message
    assert err.location == SourceLocation("Dockerfile", 1, 1)


# --- the other instructions ---------------------------------------------------------------------------------------
def test_copy_and_add():
    copy = only("COPY a b c /dest/\n")
    assert (copy.sources, copy.dest, copy.json_form, copy.is_add) == (("a", "b", "c"), "/dest/", False, False)
    copy = only('COPY ["a b", "c", "/my dest/"]\n')
    assert (copy.sources, copy.dest, copy.json_form) == (("a b", "c"), "/my dest/", True)
    add = only("ADD https://example.com/x.tgz /opt/\n")
    assert isinstance(add, ins.Copy) and add.is_add and add.sources == ("https://example.com/x.tgz",)
    # Shell form splits on whitespace only; quotes stay for expansion to deal with.
    assert only('COPY "$SRC" ./\n').sources == ('"$SRC"',)


@pytest.mark.parametrize("line, message", [
    ("COPY", "COPY requires at least two arguments (sources and a destination)"),
    ("COPY only-one", "COPY requires at least two arguments, but only one was provided"),
    ("ADD --chown=1 x", "ADD requires at least two arguments, but only one was provided"),
    ('COPY ["x"]', "COPY requires at least two arguments, but only one was provided"),
])
def test_copy_needs_a_destination(line, message):
    assert message in error(f"FROM scratch\n{line}\n").message


def test_expose_and_volume():
    assert only("EXPOSE 80 443/tcp ${PORT}\n").ports == ("80", "443/tcp", "${PORT}")
    assert only("VOLUME /a /b\n").paths == ("/a", "/b")
    assert only('VOLUME ["/a b", " /c "]\n').paths == ("/a b", "/c")


@pytest.mark.parametrize("line, message", [
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("VOLUME []", "VOLUME requires at least one argument"),
    ('VOLUME ["/a", " "]', "VOLUME specified can not be an empty string"),
])
def test_expose_and_volume_errors(line, message):
    assert error(f"FROM scratch\n{line}\n").message == message


def test_single_argument_instructions_take_the_rest_of_the_line():
    assert only("USER app:staff\n").user == "app:staff"
    assert only("USER my user\n").user == "my user"
    assert only("WORKDIR /path with space/${X}\n").path == "/path with space/${X}"
    assert only("STOPSIGNAL SIGKILL\n").signal == "SIGKILL"
    assert only("MAINTAINER Jane Doe <jane@example.com>\n").name == "Jane Doe <jane@example.com>"


@pytest.mark.parametrize("keyword", ["USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"])
def test_single_argument_instructions_need_it(keyword):
    err = error(f"FROM scratch\n{keyword}\n")
    assert err.message == f"{keyword} requires exactly one argument"


def test_healthcheck():
    assert only("HEALTHCHECK NONE\n").command is None
    assert only("healthcheck none\n").command is None
    hc = only("HEALTHCHECK --interval=5s CMD curl -f http://localhost/ || exit 1\n")
    assert hc.command == ins.Command(exec_form=False, shell_text="curl -f http://localhost/ || exit 1")
    assert hc.flag("interval") == "5s"
    assert only('HEALTHCHECK cmd ["/bin/check", "-q"]\n').command.args == ("/bin/check", "-q")


@pytest.mark.parametrize("line, message", [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE now", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK RUN true", 'unknown type "RUN" in HEALTHCHECK (try CMD)'),
])
def test_healthcheck_errors(line, message):
    assert error(f"FROM scratch\n{line}\n").message == message


def test_onbuild():
    onbuild = only("ONBUILD RUN --mount=type=cache,target=/c make \\\n    install\n")
    assert onbuild.trigger == "RUN --mount=type=cache,target=/c make     install"
    assert onbuild.flags == ()
    assert only("onbuild copy . /app\n").trigger == "copy . /app"


@pytest.mark.parametrize("line, message", [
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD RUNN x", 'invalid ONBUILD trigger: unknown instruction "RUNN" (did you mean RUN?)'),
    ("ONBUILD COPY --frm=x a b", "invalid ONBUILD trigger: unknown flag --frm for COPY"),
    ("ONBUILD COPY a", "invalid ONBUILD trigger: COPY requires at least two arguments"),
])
def test_onbuild_errors(line, message):
    err = error(f"FROM scratch\n{line}\n")
    assert message in err.message
    assert err.location.start_line == 2


def test_parse_instruction_for_stored_triggers():
    where = SourceLocation("ONBUILD of base:1", 1)
    copy = parse_instruction("COPY --chown=app . /app", where)
    assert isinstance(copy, ins.Copy) and copy.flag("chown") == "app" and copy.location == where
    with pytest.raises(DockerfileError) as info:
        parse_instruction("BOGUS x", where)
    assert info.value.location == where


# --- errors about the whole file --------------------------------------------------------------------------------
@pytest.mark.parametrize("word, suggestion", [("RUNN", "RUN"), ("CPY", "COPY"), ("FORM", "FROM"),
                                              ("entrypiont", "ENTRYPOINT"), ("WORKDIRR", "WORKDIR")])
def test_unknown_instruction_suggests_the_closest(word, suggestion):
    err = error(f"FROM scratch\n{word} x\n")
    assert err.message == f'unknown instruction "{word}" (did you mean {suggestion}?)'
    assert err.location == SourceLocation("Dockerfile", 2, 2)


def test_unknown_instruction_without_a_close_match_hints_at_a_missing_continuation():
    err = error("FROM scratch\nRUN apt-get update\n    && apt-get install -y curl\n")
    assert err.message == 'unknown instruction "&&"'
    assert "end that line with the escape character (\\)" in err.hint
    assert err.location.start_line == 3


def test_instruction_before_the_first_from():
    err = error("ARG X\nRUN echo hi\nFROM scratch\n")
    assert err.message == "RUN before the first FROM: no build stage in current context"
    assert err.location == SourceLocation("Dockerfile", 2, 2)
    assert "only ARG" in err.hint


def test_no_from():
    err = error("# just args\nARG A=1\nARG B\n")
    assert err.message == "the Dockerfile has no FROM instruction"
    assert err.location.file == "Dockerfile" and err.hint


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "# syntax=docker/dockerfile:1\n", "  \t \n",
                                  "\\\n\n"])
def test_empty_dockerfile(text):
    err = error(text)
    assert "the Dockerfile is empty" in err.message
    assert err.location == SourceLocation("Dockerfile", 1)


def test_duplicate_stage_names_are_reported_at_the_second():
    err = error("FROM a AS build\nRUN x\nFROM b AS Build\n")
    assert err.message == 'duplicate stage name "Build"'
    assert err.location == SourceLocation("Dockerfile", 3, 3)
    assert "Dockerfile:1" in err.hint


# --- heredocs (BuildKit's parser_heredoc_test.go) --------------------------------------------------------------
def heredocs(text: str) -> tuple[ins.Heredoc, ...]:
    return only(text).heredocs


def test_run_heredoc_body_is_taken_out_of_the_instructions():
    df = parse("""
        FROM scratch
        RUN <<EOF
        # internal comment
        echo hello world \\
        RUN echo foo bar # trailing comment

        EOF
        USER app
        """)
    run, user = df.stages[0].instructions
    assert run.original == "RUN <<EOF" and run.command.shell_text == "<<EOF"
    assert run.heredocs == (ins.Heredoc("EOF", "# internal comment\necho hello world \\\nRUN echo foo bar # trailing "
                                               "comment\n\n"),)
    assert run.location == SourceLocation("Dockerfile", 2, 7)
    assert user.location == SourceLocation("Dockerfile", 8, 8)


def test_heredoc_bodies_keep_their_bytes():
    assert heredocs("RUN <<EMPTY\nEMPTY\n") == (ins.Heredoc("EMPTY", ""),)
    assert heredocs("RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n")[0].content == "\tfoo\n\tbar\n"
    assert heredocs("COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n")[0].content == "\"foo\"\n'bar'\n"
    # A line that only looks like the delimiter is content.
    assert heredocs("RUN <<EOF\nEOF \n EOF\nEOFX\nEOF\n")[0].content == "EOF \n EOF\nEOFX\n"


def test_dash_heredoc_ends_at_a_tab_indented_delimiter_and_keeps_the_tabs_for_later():
    assert heredocs("RUN <<-UNINDENT\n\tbaz\n\tquux\n\t\tUNINDENT\n") == (
        ins.Heredoc("UNINDENT", "\tbaz\n\tquux\n", chomp_tabs=True),)
    # Without the dash, a tab-indented delimiter is content.
    assert error("FROM scratch\nRUN <<EOF\n\tEOF\n").message.startswith("unterminated heredoc")


@pytest.mark.parametrize("marker, name, expand", [
    ("<<-'NOEXPAND'", "NOEXPAND", False), ('<<"EOF"', "EOF", False), ("<<eo'f'", "eof", False),
    ("<<eo\\'f", "eo'f", True), ("<<'e'o\\'f", "eo'f", False), ("<<'one two'", "one two", False),
    ("<<$EOF", "$EOF", True), ("<<  EOF", "EOF", True), ("3<<EOF", "EOF", True)])
def test_delimiter_quoting(marker, name, expand):
    (heredoc,) = heredocs(f"RUN {marker}\nbody $X\n{name}\n")
    assert (heredoc.name, heredoc.content, heredoc.expand) == (name, "body $X\n", expand)


def test_several_heredocs_are_read_one_after_the_other():
    x, y = heredocs("COPY <<X <<Y /dest\nY\nX\nX\nY\n")
    assert (x.name, x.content, y.name, y.content) == ("X", "Y\n", "Y", "X\n")
    run = only("RUN <<A cat - <<B\na\nA\nb\nB\n")
    assert [h.name for h in run.heredocs] == ["A", "B"] and run.location.end_line == 6


def test_heredoc_after_flags_and_with_words_after_it():
    run = only("RUN --mount=type=cache,target=/foo <<MOUNT python3\nprint(1)\nMOUNT\n")
    assert run.flags == (("mount", "type=cache,target=/foo"),)
    assert run.command.shell_text == "<<MOUNT python3" and run.heredocs[0].content == "print(1)\n"
    assert heredocs("RUN <<  EOF  > foo\nEOF\n") == (ins.Heredoc("EOF", ""),)


def test_copy_and_add_heredoc_sources_are_inline_files():
    copy = only("COPY --chmod=755 <<one.sh app.py <<-'two.sh' /dest/\necho 1\none.sh\n\techo 2\ntwo.sh\n")
    assert copy.sources == ("app.py",) and copy.dest == "/dest/"
    assert copy.heredocs == (ins.Heredoc("one.sh", "echo 1\n"),
                             ins.Heredoc("two.sh", "\techo 2\n", expand=False, chomp_tabs=True))
    add = only("ADD <<EOF /file\nx\nEOF\n")
    assert add.is_add and add.sources == () and add.heredocs == (ins.Heredoc("EOF", "x\n"),)


def test_heredoc_as_copy_destination_is_an_error():
    err = error("FROM scratch\nCOPY a <<EOF\nx\nEOF\n")
    assert err.message == "COPY cannot accept a heredoc as a destination"
    assert err.location == SourceLocation("Dockerfile", 2, 4)


def test_unterminated_heredoc_names_the_delimiter_and_the_start():
    err = error("FROM scratch\nRUN echo start\nRUN <<EOF\necho hi\nEOS\n")
    assert err.message == "unterminated heredoc: no line 'EOF' ends the heredoc <<EOF started on line 3"
    assert err.location == SourceLocation("Dockerfile", 3, 5)
    assert "EOF" in err.hint
    assert "<<B" in error("FROM scratch\nCOPY <<A <<B /d/\na\nA\nb\n").message


def test_heredoc_instruction_continued_over_lines():
    df = parse("""
        FROM scratch
        RUN <<EOF \\
            # a comment inside the continuation

            python3
        print("hi")
        EOF
        """)
    (run,) = df.stages[0].instructions
    assert run.command.shell_text == "<<EOF     python3"
    assert run.heredocs == (ins.Heredoc("EOF", 'print("hi")\n'),)
    assert run.location == SourceLocation("Dockerfile", 2, 7)


def test_heredocs_with_the_backtick_escape_directive():
    df = parse_dockerfile("# escape=`\nFROM scratch\nRUN <<EOF `\n  sh\necho C:\\dir \\\nEOF\nCOPY <<a\\b /x\nc\nab\n",
                          "Dockerfile")
    run, copy = df.stages[0].instructions
    # The body is raw text: backslashes at line ends do not continue anything.
    assert run.command.shell_text == "<<EOF   sh" and run.heredocs[0].content == "echo C:\\dir \\\n"
    # The marker itself is read with the backslash as escape, whatever the directive says (as BuildKit).
    assert copy.heredocs == (ins.Heredoc("ab", "c\n"),)


def test_crlf_heredoc_bodies_keep_their_line_endings():
    (heredoc,) = heredocs("RUN <<EOF\r\necho hi\r\nEOF\r\n")
    assert heredoc.content == "echo hi\r\n"


def test_onbuild_trigger_carries_its_heredocs():
    onbuild = only("ONBUILD RUN <<EOF\necho on\nEOF\n")
    assert onbuild.trigger == "RUN <<EOF\necho on\nEOF"
    assert onbuild.location == SourceLocation("Dockerfile", 2, 4)
    run = parse_instruction(onbuild.trigger, SourceLocation("base-image", 1))
    assert isinstance(run, ins.Run) and run.heredocs == (ins.Heredoc("EOF", "echo on\n"),)
    assert run.original == "RUN <<EOF"


def test_stored_trigger_errors_name_the_trigger():
    where = SourceLocation("ONBUILD trigger", 1)
    with pytest.raises(DockerfileError) as info:
        parse_instruction("RUN <<EOF\necho", where)
    assert info.value.location == where and "unterminated heredoc" in info.value.message
    with pytest.raises(DockerfileError) as info:
        parse_instruction("RUN <<EOF\nEOF\nRUN x", where)
    assert "single instruction" in info.value.message


@pytest.mark.parametrize("text", [
    "RUN echo '<<EOF'\n", 'RUN echo "<<EOF"\n', 'RUN ["cat", "<<EOF"]\n', "RUN echo $((1<<2)) <<< x\n",
    "RUN cat <<EOF it's\n",  # an open quote: BuildKit's lexer finds no words, hence no heredocs
    "CMD cat <<EOF\n", "ENTRYPOINT <<EOF\n", "LABEL a=<<EOF\n"])
def test_not_heredocs(text):
    assert only(text).original == text.strip()


def test_heredoc_lines_of_other_instructions_are_instructions():
    err = error("FROM scratch\nCMD cat <<EOF\nhello\nEOF\n")
    assert err.message.startswith('unknown instruction "hello"')


def test_error_messages_render_with_location_and_hint():
    rendered = error("FROM scratch\nCOPY --frm=x a b\n").render()
    assert rendered.splitlines()[0].startswith("Dockerfile:2: unknown flag --frm for COPY")
    assert rendered.splitlines()[-1] == "hint: did you mean --from?"


def test_garbage_never_raises_anything_but_dockerfile_error():
    alphabet = ["FROM", "RUN", "COPY", "ENV", "ONBUILD", "HEALTHCHECK", "ARG", "SHELL", " ", " ", "\n", "\\",
                "`", "#", "--", "=", '"', "'", "[", "]", "{", "}", "$", "x", "AS", "<<", "\t", "\r", ",", "\u00e9"]
    rng = random.Random(1234)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            parse_dockerfile(text, "Dockerfile")
        except DockerfileError as exc:
            assert exc.location is not None and exc.message
        # any other exception type fails the test


# --- loading from disk -------------------------------------------------------------------------------------------
def test_load_dockerfile(tmp_path: Path):
    file = tmp_path / "Dockerfile"
    file.write_bytes(b"FROM scratch\r\nLABEL k=v\r\n")
    df = load_dockerfile(file, "ctx/Dockerfile")
    assert df.path == "ctx/Dockerfile"
    assert df.stages[0].instructions[0].location == SourceLocation("ctx/Dockerfile", 2, 2)


def test_load_missing_dockerfile(tmp_path: Path):
    with pytest.raises(ContextError) as info:
        load_dockerfile(tmp_path / "nope", "nope/Dockerfile")
    assert "nope/Dockerfile" in info.value.render() and info.value.hint


def test_load_directory(tmp_path: Path):
    with pytest.raises(ContextError) as info:
        load_dockerfile(tmp_path, "ctx")
    assert "is a directory" in info.value.message and "ctx/Dockerfile" in info.value.hint


def test_load_non_utf8(tmp_path: Path):
    file = tmp_path / "Dockerfile"
    file.write_bytes(b"FROM scratch\nLABEL a=\xff\n")
    with pytest.raises(DockerfileError) as info:
        load_dockerfile(file, "Dockerfile")
    assert "UTF-8" in info.value.message and info.value.location == SourceLocation("Dockerfile", 2)


def test_nothing_else_imports_dockerfile_parse():
    core = Path(__file__).resolve().parents[1] / "core"
    users = [p.relative_to(core).as_posix() for p in core.rglob("*.py") if "dockerfile_parse" in p.read_text()]
    assert users == ["dockerfile/parser.py"]
