"""A --set VALUE with a character that shows as nothing (a variation selector, the combining grapheme joiner, a Hangul
filler) is no bare word: `--set geometry.manifold=fermat<U+FE0F>` was taken as a string whose refusal looked like the
valid `fermat`, and `--set x.y=<U+3164>` as a string that shows as nothing. Such a value is refused with the quoting
hint, and a value shown in a message shows each such character as its escape. VALUE is stripped of TOML's whitespace
only (space, tab), as the key is: `x<U+00A0>` was trimmed to `x` without a word."""

from __future__ import annotations

import pathlib

import pytest

from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import parse_override

ROOT = pathlib.Path(__file__).resolve().parent.parent
JOB = str(ROOT / "jobs" / "quickstart.toml")

#: characters a terminal shows as nothing, that str.isprintable() holds printable
INVISIBLE = ["\ufe00", "\ufe0f", "\U000e0100", "\U000e01ef", "\u034f", "\u3164", "\u115f", "\u1160", "\uffa0",
             "\u180b", "\u17b4"]


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


@pytest.mark.parametrize("c", INVISIBLE)
@pytest.mark.parametrize("form", ["fermat{}", "{}", "a{}b"])
def test_an_invisible_character_makes_no_bare_word(c, form):
    value = form.format(c)
    with pytest.raises(ConfigError) as info:
        parse_override(f"geometry.manifold={value}")
    msg = str(info.value)
    assert "quote a string as geometry.manifold=" in msg, msg
    assert c not in msg and _escape(c) in msg, msg


@pytest.mark.parametrize("value", ["x\xa0", "\xa0x", "x\u2003", "x\u3000"])
def test_a_value_keeps_its_other_spaces_and_is_refused_unquoted(value):
    with pytest.raises(ConfigError) as info:
        parse_override(f"kernel.name={value}")
    msg = str(info.value)
    space = next(c for c in value if c != "x")
    assert "quote a string" in msg and _escape(space) in msg and space not in msg, msg


def test_space_and_tab_around_a_value_are_trimmed_and_visible_words_stay_bare():
    assert parse_override("kernel.name= \tdelta \t") == ("kernel", "name", "delta")
    assert parse_override("geometry.manifold=fe\u0308rmat") == ("geometry", "manifold", "fe\u0308rmat")
    assert parse_override("model.features=reim_abs2") == ("model", "features", "reim_abs2")
    assert parse_override("job.description=\u65e5\u672c") == ("job", "description", "\u65e5\u672c")
    assert parse_override('geometry.manifold="fermat\u00a0"') == ("geometry", "manifold", "fermat\u00a0")


@pytest.mark.parametrize("c", ["\ufe0f", "\u3164", "\xa0"])
def test_a_quoted_value_refused_by_the_job_is_shown_escaped(c, capsys):
    from hpcflow.cli import main

    text = f'geometry.manifold="fermat{c}"'
    assert main(["run", JOB, "--out", "unused", "--check", "--set", text]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[geometry].manifold = 'fermat" + _escape(c) + "'" in err, err
    assert err.rstrip().endswith(f'(from --set geometry.manifold="fermat{_escape(c)}")') and c not in err, err


def test_a_tune_refusal_drops_the_escaped_credit_of_a_searched_value():
    from hpcflow.jobs.registry import set_values_named
    from hpcflow.tune.study import refusal

    text = 'geometry.manifold="\u3164"'
    with pytest.raises(ConfigError) as info:
        with set_values_named([text]):
            raise ConfigError("job.toml: [geometry].manifold = '\\u3164' is not one of 'fermat', 'dwork'")
    assert str(info.value).endswith('(from --set geometry.manifold="\\u3164")'), info.value
    assert refusal("job.toml", info.value, [text]) == "[geometry].manifold = '\\u3164' is not one of 'fermat', 'dwork'"
