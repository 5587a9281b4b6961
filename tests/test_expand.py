"""Docker's shell-word expansion (BuildKit's lexer semantics), as a table."""

from __future__ import annotations

import pytest

from dockyard.dockerfile.expand import Expander, Expansion

ENV = {
    "NAME": "world",
    "EMPTY": "",
    "SPACED": "a b  c",
    "PATH_": "/usr/local/bin/app.tar.gz",
    "STARS": "a*b*c",
    "MIXED": "aXbXc",
    "KOREAN": "한국어",
    "_under": "u",
    "V2": "two",
}

E = Expander()


@pytest.mark.parametrize("text, expected", [
    # plain text, quotes, escapes
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ('he"ll"o', "hello"),
    ("he\\'llo", "he'llo"),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),  # in double quotes a backslash before an ordinary character stays
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),  # a trailing escape is dropped
    ("hello\\\\", "hello\\"),
    ("'hello\\'", "hello\\"),  # nothing escapes inside single quotes
    ('"hel\'lo"', "hel'lo"),
    ('"a\\"b"', 'a"b'),
    ("a  b", "a  b"),  # expand_word keeps whitespace
    ("", ""),
    # $NAME and ${NAME}
    ("$NAME", "world"),
    ("${NAME}", "world"),
    ("hi $NAME!", "hi world!"),
    ("${NAME}s", "worlds"),
    ("$NAMEs", ""),  # the name runs on: NAMEs is unset
    ("$_under", "u"),
    ("$V2", "two"),
    ("$KOREAN", "한국어"),
    ('"$NAME"', "world"),
    ('"${NAME}"', "world"),
    ("'$NAME'", "$NAME"),
    ("\\$NAME", "$NAME"),
    ('"\\$NAME"', "$NAME"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    ("$", "$"),  # a lone dollar is literal
    ("a$", "a$"),
    ("$ a", "$ a"),
    ("$/x", "$/x"),
    ("$1", ""),  # positional and special parameters are never set here
    ("$12x", "x"),
    ("$@", ""),
    ("$$", ""),
    ("${NAME}${NAME}", "worldworld"),
    ("$NAME$NAME", "worldworld"),
    # defaults and alternatives: with the colon an empty value counts as unset
    ("${UNSET:-def}", "def"),
    ("${EMPTY:-def}", "def"),
    ("${NAME:-def}", "world"),
    ("${UNSET-def}", "def"),
    ("${EMPTY-def}", ""),
    ("${NAME-def}", "world"),
    ("${UNSET:+alt}", ""),
    ("${EMPTY:+alt}", ""),
    ("${NAME:+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${NAME+alt}", "alt"),
    ("${UNSET:-}", ""),
    # the operand is itself expanded, quoted and escaped
    ("${UNSET:-$NAME}", "world"),
    ("${UNSET:-${EMPTY:-deep}}", "deep"),
    ("${NAME:+[$NAME]}", "[world]"),
    ('${UNSET:-"a }"}', "a }"),
    ("${UNSET:-a\\}b}", "a}b"),
    ("${UNSET:-'$NAME'}", "$NAME"),
    ("${UNSET:-two words}", "two words"),
    # ${V?} / ${V:?} pass a set value through
    ("${NAME?}", "world"),
    ("${NAME:?must be set}", "world"),
    ("${EMPTY?}", ""),
    # prefix and suffix removal (shortest / longest)
    ("${PATH_#*/}", "usr/local/bin/app.tar.gz"),
    ("${PATH_##*/}", "app.tar.gz"),
    ("${PATH_%.*}", "/usr/local/bin/app.tar"),
    ("${PATH_%%.*}", "/usr/local/bin/app"),
    ("${PATH_%/*}", "/usr/local/bin"),
    ("${PATH_#/usr}", "/local/bin/app.tar.gz"),
    ("${PATH_#nomatch}", "/usr/local/bin/app.tar.gz"),
    ("${PATH_%.t?r.gz}", "/usr/local/bin/app"),
    ("${PATH_#}", "/usr/local/bin/app.tar.gz"),
    ("${UNSET#x}", ""),
    ("${STARS#a\\*}", "b*c"),  # an escaped * is literal
    ("${STARS%\\*c}", "a*b"),
    ("${STARS##*\\*}", "c"),
    ("${NAME#[w]}", "world"),  # no bracket expressions in BuildKit: [w] is literal
    ("${NAME#w*}", "orld"),
    ("${NAME##w*}", ""),
    ("${NAME%*}", "world"),
    ("${NAME%%*}", ""),
    ("${NAME#$NAME}", ""),  # the pattern is expanded first
    ("${PATH_:##*/}", "app.tar.gz"),  # BuildKit reads `:#` as `#` and `:%` as `%`
    ("${PATH_:%.*}", "/usr/local/bin/app.tar"),
    # pattern replacement
    ("${MIXED/X/-}", "a-bXc"),
    ("${MIXED//X/-}", "a-b-c"),
    ("${MIXED//X/}", "abc"),
    ("${MIXED//?/.}", "....."),
    ("${MIXED/X*/-}", "a-"),  # * is greedy here
    ("${PATH_//\\//_}", "_usr_local_bin_app.tar.gz"),  # \/ stands for a / in the pattern
    ("${MIXED//nomatch/-}", "aXbXc"),
    ("${UNSET//a/b}", ""),
    ("${MIXED//X/\\1}", "a\\1b\\1c"),  # the replacement is literal text (escapes kept raw, as BuildKit)
    ("${MIXED//X/$NAME}", "aworldbworldc"),
])
def test_expand_word(text, expected):
    assert E.expand_word(text, ENV) == expected


@pytest.mark.parametrize("text, expected", [
    ("a b c", ["a", "b", "c"]),
    ("  a \t b  ", ["a", "b"]),
    ('"a b" c', ["a b", "c"]),
    ("'a b' c", ["a b", "c"]),
    ("a\\ b c", ["a b", "c"]),
    ("$SPACED", ["a", "b", "c"]),  # an unquoted value is split
    ('"$SPACED"', ["a b  c"]),  # a quoted one is not
    ("x$SPACED", ["xa", "b", "c"]),
    ("${UNSET:-d e}", ["d", "e"]),
    ('${UNSET:-"d e"}', ["d", "e"]),  # the operand's quotes are gone by the time the value is split
    ("$EMPTY", []),
    ("$EMPTY a", ["a"]),
    ("'' a", ["a"]),  # empty quoted words are dropped, as in BuildKit
    ("", []),
    ("80/tcp 443", ["80/tcp", "443"]),
    ("${NAME}:${NAME}", ["world:world"]),
])
def test_expand_words(text, expected):
    assert E.expand_words(text, ENV) == expected


@pytest.mark.parametrize("text, message", [
    ("${", "missing '}'"),
    ("${NAME", "missing '}'"),
    ("${NAME:-x", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:x}", "bad substitution"),
    ("${{x}", "bad substitution"),
    ("${NAME:x}", "unsupported modifier (:x)"),
    ("${NAME x}", "unsupported modifier ( )"),
    ("${NAME!}", "unsupported modifier (!)"),
    ("${NAME/x}", "missing '/'"),
    ("${NAME/x/y", "missing '}'"),
    ("'abc", "single-quote"),
    ('"abc', "double-quote"),
    ('"abc\\"', "double-quote"),
    ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${UNSET:?set VERSION with --build-arg}", "UNSET: set VERSION with --build-arg"),
    ("${NAME#\\x}", "invalid escape"),
])
def test_malformed_syntax_raises_value_error(text, message):
    with pytest.raises(ValueError) as info:
        E.expand_word(text, ENV)
    assert message in str(info.value)
    assert repr(text) in str(info.value)  # the message shows what could not be expanded


def test_error_is_a_plain_value_error_not_a_subclass_leak():
    with pytest.raises(ValueError) as info:
        E.expand_words("${", {})
    assert type(info.value) is ValueError


@pytest.mark.parametrize("text, names", [
    ("plain", set()),
    ("$A ${B} $A", {"A", "B"}),
    ("${A:-$B}", {"A", "B"}),  # the operand is expanded whatever A's value, so it reads B too
    ("${A:+${B:-$C}}", {"A", "B", "C"}),
    ("${A#$P}", {"A", "P"}),
    ("${A//$X/$Y}", {"A", "X", "Y"}),
    ("'$A' \\$B", set()),
    ('"$A"', {"A"}),
    ("${A:?}", {"A"}),  # collecting names does not fail on unset variables
    ("${A?message}", {"A"}),
])
def test_referenced(text, names):
    assert E.referenced(text) == names


def test_referenced_still_rejects_malformed_syntax():
    with pytest.raises(ValueError):
        E.referenced("${A")


def test_expand_returns_value_words_and_referenced_in_one_pass():
    result = E.expand('$SPACED "$NAME x" ${UNSET:-y}', ENV)
    assert isinstance(result, Expansion)
    assert result.value == "a b  c world x y"
    assert result.words == ("a", "b", "c", "world x", "y")
    assert result.referenced == {"SPACED", "NAME", "UNSET"}


def test_unknown_variables_expand_to_empty_and_set_empty_differs_from_unset():
    assert E.expand_word("[$X][${X-unset}]", {}) == "[][unset]"
    assert E.expand_word("[$X][${X-unset}]", {"X": ""}) == "[][]"


def test_expansion_does_not_recurse_into_values():
    assert E.expand_word("$A", {"A": "$B", "B": "no"}) == "$B"
    assert E.expand_words("$A", {"A": "'x y'"}) == ["'x", "y'"]


def test_backtick_escape():
    tick = Expander(escape="`")
    assert tick.expand_word("a`$NAME", ENV) == "a$NAME"
    assert tick.expand_word("c:\\windows\\$NAME", ENV) == "c:\\windows\\world"  # backslash is ordinary
    assert tick.expand_word('"a`"b"', ENV) == 'a"b'
    assert tick.expand_words("a` b c", ENV) == ["a b", "c"]
    assert tick.expand_word("x``", ENV) == "x`"


def test_invalid_escape_character():
    with pytest.raises(ValueError):
        Expander(escape="^")
