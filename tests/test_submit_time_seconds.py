"""--time in sbatch's D-HH:MM:SS form: taken with whole minutes; with seconds that are not a whole minute the one line
says so and the minutes that round it up, and names the D-H:M:S form among those taken (it named four forms, not
D-H:M:S, and called 1-02:03:04 no time limit)."""

from __future__ import annotations

import pytest

from hpcflow.cli import build_parser


def _parse(text: str):
    return build_parser().parse_args(["submit", "job.toml", "--out", "o", "--executor", "slurm", "--time", text])


@pytest.mark.parametrize("text, minutes", [("1-02:03:00", 24 * 60 + 2 * 60 + 3), ("0-00:45:00", 45),
                                           ("10-00:00:00", 10 * 24 * 60)])
def test_a_d_hh_mm_ss_time_of_whole_minutes_is_taken(text, minutes):
    assert _parse(text).time == minutes


@pytest.mark.parametrize("text, up", [("1-02:03:04", 24 * 60 + 2 * 60 + 4), ("0-00:00:30", 1), ("2:30", 3)])
def test_a_time_with_seconds_says_the_minutes_that_round_it_up(capsys, text, up):
    with pytest.raises(SystemExit) as stop:
        _parse(text)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert f"{up} rounds it up" in err and "D-H:M:S (1-12:30:00)" in err, err


def test_a_time_that_is_no_form_names_the_d_h_m_s_form(capsys):
    with pytest.raises(SystemExit) as stop:
        _parse("1-2-3")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "D-H:M:S (1-12:30:00)" in err, err
    assert "rounds it up" not in err
