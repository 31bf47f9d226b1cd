"""`hpcflow report` of a study whose study.journal has a cut-off last line: alone, exit 2 with the damage said once
(it was said twice on one line, once for Table 1 and once for the Optuna section); beside a good study, its row says
it and no skip line repeats it."""

from __future__ import annotations

import shutil

from hpcflow.cli import main
from test_tune_records import _job, _tune


def _studies(tmp_path, capsys):
    """A good study directory and a copy whose journal's last line is cut off."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    rc, _ = _tune(capsys, _job(tmp_path), "--trials", "2", "--out", good)
    assert rc == 0
    shutil.copytree(good, bad)
    journal = bad / "study.journal"
    journal.write_bytes(journal.read_bytes()[:-5])
    return good, bad


def _report(capsys, *args):
    capsys.readouterr()
    rc = main(["report", *map(str, args)])
    return rc, capsys.readouterr()


def test_a_lone_damaged_study_says_its_damage_once(tmp_path, capsys):
    _, bad = _studies(tmp_path, capsys)
    rc, io = _report(capsys, bad, "--out", tmp_path / "r")
    assert rc == 2, io
    assert io.err.count("\n") == 1, io.err
    assert "nothing to report" in io.err, io.err
    assert io.err.count("is incomplete") == 1, io.err  # was twice: Table 1's and the Optuna section's
    assert str(bad / "study.journal") in io.err
    assert not (tmp_path / "r" / "report.md").exists()


def test_a_damaged_study_beside_a_good_one_is_said_once_in_its_row(tmp_path, capsys):
    good, bad = _studies(tmp_path, capsys)
    rc, io = _report(capsys, bad, good, "--out", tmp_path / "r")
    assert rc == 0, io
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.count("is incomplete") == 1, md  # the row's "unreadable: ..."; no skip line repeats it
    row = next(line for line in md.splitlines() if line.startswith("| bad |"))
    assert "unreadable:" in row and "is incomplete" in row, row
    assert "is incomplete" not in io.err, io.err
