"""A study's row in the report is the study its directory holds, once, and its best trial is checked as a run is:
two study directories sharing one journal under --study, a best trial whose data file is missing or damaged."""

from __future__ import annotations

import json
import os
import shutil

from analysis_runs import md_rows, script
from test_tune_records import _job, _journal, _tune


def _read(res) -> str:
    with open(res["md"], encoding="utf-8") as fh:
        return fh.read()


def _rows(md: str) -> dict:
    return md_rows(md.split("## Runs")[1].split("\n## ")[0])


def _shared(tmp_path, capsys):
    """Study directories a (study 'A') and b (study 'B') of one journal outside both, given by --storage."""
    job, journal = _job(tmp_path), tmp_path / "shared.journal"
    for d, name in (("a", "A"), ("b", "B")):
        rc, io = _tune(capsys, job, "--trials", "2", "--out", tmp_path / d, "--study", name, "--storage", journal)
        assert rc == 0, io.err
    assert json.loads((tmp_path / "a" / "study.json").read_text())["study"] == "A"
    return tmp_path / "a", tmp_path / "b"


def test_a_study_directory_of_another_study_is_not_reported_as_the_study_of_study(tmp_path, capsys):
    """Given a and b with --study B, the row of a showed study B (b's best trial, its numbers read from
    b/trials/NNNN) and b's row the same again. Now a, whose study.json names A, is skipped, saying why, and B is
    one row, b's; without --study each directory is its own study."""
    from hpcflow.report.build import build_report

    a, b = _shared(tmp_path, capsys)
    res = build_report([str(a), str(b)], tmp_path / "r", study_name="B")
    md = _read(res)
    rows = _rows(md)
    assert set(rows) == {"b"}, rows
    assert rows["b"][2].startswith("2 trials: 2 complete; best trial "), rows["b"]
    why = dict(res["skipped"])[str(a)]
    assert why.startswith("its study.json names study 'A', not 'B' of --study"), why
    table1 = md_rows(md.split("## Table 1")[1].split("\n## ")[0])
    assert [r for r in table1 if r.startswith("b: B trial ")] and not [r for r in table1 if r.startswith("a:")], table1
    assert "(optuna_history.png)" in md and "(optuna_a_" not in md, md  # B's figures once, not again as a's

    both = _rows(_read(build_report([str(a), str(b)], tmp_path / "r2")))  # each its own study, with its best trial
    for d, name in ((a, "A"), (b, "B")):
        best = _journal(tmp_path / "shared.journal", name).best_trial
        assert both[d.name][2].endswith(f"best trial {best.number} (the numbers of this row): log_gain_test = "
                                        f"{best.value:.4g}"), both


def test_a_study_directory_of_another_study_alone_under_study_is_refused(tmp_path, capsys):
    from hpcflow.errors import UserError
    from hpcflow.report.build import build_report

    a, _b = _shared(tmp_path, capsys)
    try:
        build_report([str(a)], tmp_path / "r", study_name="B")
    except UserError as exc:
        assert exc.exit_status == 2 and "names study 'A', not 'B' of --study" in str(exc), str(exc)
    else:
        raise AssertionError("reported study B as a's")
    assert not os.path.exists(tmp_path / "r")
    res = build_report([str(a)], tmp_path / "r", study_name="A")  # its own study: reported
    assert set(_rows(_read(res))) == {"a"}


def test_the_analysis_scripts_refuse_another_study_directory_under_study(tmp_path, capsys):
    """optuna_view.py a b --study B drew B's figures twice (as a's and b's); now a one-line error naming a."""
    a, b = _shared(tmp_path, capsys)
    for name in ("optuna_view", "table1"):
        proc = script(name, a, b, "--study", "B", "--out", tmp_path / name)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"{name}: error: {a}: its study.json names study 'A', not 'B'"), proc.stderr
        assert not os.path.exists(tmp_path / name)
    proc = script("table1", b, "--study", "B", "--out", tmp_path / "t")
    assert proc.returncode == 0 and "b: B trial " in proc.stdout, proc.stderr
    shutil.rmtree(tmp_path / "t")
