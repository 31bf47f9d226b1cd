"""The analysis scripts' --out: an earlier call's outputs (recorded in FIGDIR/.hpcflow_NAME.json) are refused
without --force, replaced with it (those the new call does not draw removed), and a file of the user's under an
output's name is never replaced."""

from __future__ import annotations

import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _files(out) -> dict:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _one_line_exit_2(capsys, status, named) -> None:
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and str(named) in err, err


def test_an_earlier_output_is_refused_without_force_and_replaced_with_it(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    assert main("table1", [runs["flow"], "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    _one_line_exit_2(capsys, main("table1", [runs["flow"], runs["flow_gauss"], "--out", str(out)]), out / "table1.md")
    assert _files(out) == before
    assert main("table1", [runs["flow"], runs["flow_gauss"], "--out", str(out), "--force"]) == 0
    assert (out / "table1.md").read_bytes() != before["table1.md"] and (out / "notes.txt").read_text() == "mine"


def test_force_removes_the_earlier_calls_figures_the_new_one_does_not_draw(runs, tmp_path):
    """sigma_history.py of one run writes per_rank.png, of two runs per_rank_NAME.png each: under --force the one of
    the earlier call does not stay beside them."""
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    assert main("sigma_history", [runs["flow"], "--out", str(out)]) == 0
    first = set(_files(out))
    assert "per_rank.png" in first
    assert main("sigma_history", [runs["flow"], runs["flow_gauss"], "--out", str(out), "--force"]) == 0
    names = set(_files(out))
    assert "per_rank.png" not in names and {"per_rank_flow.png", "per_rank_flow_gauss.png"} <= names, names


def test_force_refuses_a_file_of_the_users_under_an_outputs_name(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main

    out = tmp_path / "f"
    out.mkdir()
    (out / "table1.md").write_text("my table")
    _one_line_exit_2(capsys, main("table1", [runs["flow"], "--out", str(out), "--force"]), out / "table1.md")
    assert _files(out) == {"table1.md": b"my table"}
