"""`hpcflow submit --help`: every option says what it does, and --time's help names each form it takes, sbatch's
M:S (minutes:seconds) included."""

import argparse
import re

import pytest

from hpcflow.cli import build_parser


def _submit():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["submit"]


def test_every_submit_option_has_help_text():
    bare = [a.option_strings[-1] for a in _submit()._actions
            if a.option_strings and (not a.help or a.help == argparse.SUPPRESS)]
    assert bare == [], bare


@pytest.mark.parametrize("form, text, minutes", [("M:S", "30:00", 30), ("H:M:S", "1:30:00", 90), ("D-H", "2-0", 2880),
                                                 ("D-H:M", "1-12:30", 2190), ("D-H:M:S", "0-0:45:00", 45)])
def test_time_help_names_each_sbatch_form_it_takes(form, text, minutes):
    """sbatch --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours", "days-hours:minutes",
    "days-hours:minutes:seconds"."""
    action = _submit()._option_string_actions["--time"]
    assert re.search(rf"(?<![\w:-]){re.escape(form)}(?![\w:])", action.help), action.help
    args = build_parser().parse_args(["submit", "job.toml", "--out", "o", "--executor", "local", "--time", text])
    assert args.time == minutes


def test_a_time_of_part_minutes_names_the_m_s_form(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["submit", "job.toml", "--out", "o", "--executor", "local", "--time", "30:30"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "whole minutes" in err and "M:S (30:00)" in err and err.count("\n") == 1, err
