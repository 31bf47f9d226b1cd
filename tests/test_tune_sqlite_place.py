"""An SQLite study kept inside its study directory: recorded relative to it, so that a moved or copied directory is
reported, viewed and continued with its own database, and never writes into another directory's database."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest

from hpcflow.analysis.script import main as script_main
from hpcflow.cli import main
from test_tune_records import _job, _tune  # tests/ is on sys.path (pytest's default import mode)


def _trials(db) -> int:
    """The trials an Optuna SQLite database holds, read with sqlite3 itself."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _study(tmp_path, capsys, name="sq", trials=2):
    job, out = _job(tmp_path), tmp_path / name
    rc, io = _tune(capsys, job, "--trials", trials, "--out", out, "--storage", f"sqlite:///{out / 'study.db'}")
    assert rc == 0, io.err
    return job, out


def _reported(capsys, study, where) -> str:
    capsys.readouterr()
    assert main(["report", str(study), "--out", str(where)]) == 0, capsys.readouterr().err
    return (where / "report.md").read_text()


def _old_record(out):
    """study.json as tune wrote it before an SQLite file inside DIR was recorded relative to DIR: by its absolute
    path."""
    record = json.loads((out / "study.json").read_text())
    record["storage"] = f"sqlite:///{out / 'study.db'}"
    (out / "study.json").write_text(json.dumps(record))


def test_an_sqlite_file_inside_dir_is_recorded_relative_and_a_moved_dir_is_reported_viewed_and_continued(
        tmp_path, capsys):
    job, out = _study(tmp_path, capsys)
    assert json.loads((out / "study.json").read_text())["storage"] == "sqlite:///study.db"
    moved = tmp_path / "sq_moved"
    out.rename(moved)
    assert "sq_moved: tiny trial" in _reported(capsys, moved, tmp_path / "rep")
    assert script_main("optuna_view", [str(moved), "--out", str(tmp_path / "view")]) == 0
    assert (tmp_path / "view" / "optuna_history.png").is_file()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", moved, "--storage", f"sqlite:///{moved / 'study.db'}")
    assert rc == 0, io.err
    assert _trials(moved / "study.db") == 3 and (moved / "trials" / "0002").is_dir()


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_an_absolute_record_of_the_directory_s_own_sqlite_file_is_read_as_the_directory_s_own(tmp_path, capsys, how):
    """A study.json of the older form (the absolute path of DIR/study.db): after a move, or in a copy whose original
    is still there, the report, optuna_view.py and tune read the directory's own database, and tune refuses the
    original's (it would record the copy's trials there), advising the copy's."""
    job, out = _study(tmp_path, capsys)
    _old_record(out)
    other = tmp_path / f"sq_{how}"
    (shutil.copytree if how == "copied" else shutil.move)(out, other)
    if how == "copied":  # the original moves on: a trial only it holds
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", f"sqlite:///{out / 'study.db'}")
        assert rc == 0 and _trials(out / "study.db") == 3, io.err
        original = _sha(out / "study.db")
    assert "trial 2" not in _reported(capsys, other, tmp_path / "rep")
    capsys.readouterr()
    assert script_main("optuna_view", [str(other), "--out", str(tmp_path / "view")]) == 0
    assert "2 trials" in capsys.readouterr().out
    if how == "copied":
        rc, io = _tune(capsys, job, "--trials", "1", "--out", other, "--storage", f"sqlite:///{out / 'study.db'}")
        assert rc == 2 and io.err.count("\n") == 1, io.err
        assert f"pass --storage sqlite:///{other / 'study.db'} to add trials" in io.err
        assert _sha(out / "study.db") == original and not (other / "trials" / "0002").exists()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", other, "--storage", f"sqlite:///{other / 'study.db'}")
    assert rc == 0, io.err
    assert _trials(other / "study.db") == 3 and (other / "trials" / "0002").is_dir()
    assert json.loads((other / "study.json").read_text())["storage"] == "sqlite:///study.db"
    if how == "copied":
        assert _sha(out / "study.db") == original


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_storage_file_inside_another_study_directory_is_refused(tmp_path, capsys, kind):
    job, out = _study(tmp_path, capsys) if kind == "sqlite" else (_job(tmp_path), tmp_path / "sq")
    if kind == "journal":
        assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    given = f"sqlite:///{out / 'study.db'}" if kind == "sqlite" else str(out / "study.journal")
    held = out / ("study.db" if kind == "sqlite" else "study.journal")
    before = _sha(held)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "new", "--storage", given)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"lies inside study directory {out}" in io.err
    assert _sha(held) == before and not (tmp_path / "new").exists()


def test_optuna_view_reads_an_sqlite_file_given_by_its_path(tmp_path, capsys):
    _, out = _study(tmp_path, capsys)
    capsys.readouterr()
    assert script_main("optuna_view", [str(out / "study.db"), "--out", str(tmp_path / "view")]) == 0
    assert "2 trials: 2 complete" in capsys.readouterr().out and (tmp_path / "view" / "optuna_slice.png").is_file()


def test_the_report_refuses_a_storage_given_in_place_of_a_directory_saying_what_it_and_optuna_view_take(
        tmp_path, capsys):
    _, out = _study(tmp_path, capsys)
    for given in (f"sqlite:///{out / 'study.db'}", str(out / "study.db")):
        capsys.readouterr()
        assert main(["report", given, "--out", str(tmp_path / "rep")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "hpcflow report reads run and tune directories" in err, err
        assert f"analysis/optuna_view.py {given}" in err and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("damage", ["journal", "database"])
def test_an_unreadable_study_is_advised_what_the_command_that_reads_it_takes(tmp_path, capsys, damage):
    """A study directory whose storage cannot be read: the report's line advises a tune directory (what it takes),
    not a journal file or a storage URL, which only optuna_view.py takes and still advises."""
    if damage == "journal":
        job, out = _job(tmp_path), tmp_path / "sq"
        assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
        data = (out / "study.journal").read_bytes()
        (out / "study.journal").write_bytes(data[:-40])  # the last operation cut off
    else:
        _, out = _study(tmp_path, capsys)
        (out / "study.db").unlink()
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "give hpcflow report a tune directory whose storage" in err, err
    assert "a journal file or a storage URL" not in err, err
    assert script_main("optuna_view", [str(out), "--out", str(tmp_path / "view")]) == 2
    assert "a journal file or a storage URL (sqlite:///...)" in capsys.readouterr().err


def test_a_study_recorded_without_its_password_is_advised_what_each_command_takes(tmp_path, capsys):
    """study.json names a database URL without its password: optuna_view.py takes the URL with it; the report takes
    directories only, so it advises optuna_view.py rather than passing the URL to itself."""
    out = tmp_path / "pg"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"study": "tiny", "storage": "postgresql://u:***@db.example/optuna"}))
    capsys.readouterr()
    assert script_main("optuna_view", [str(out), "--out", str(tmp_path / "view")]) == 2
    assert "pass that URL with its password" in capsys.readouterr().err
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "draw the study with analysis/optuna_view.py and that URL with its password" in err, err
    assert "; pass that URL" not in err, err


def test_the_report_s_study_flag_refusal_names_the_study_inputs_the_report_takes(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "empty"), "--study", "x", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "applies only to study inputs (a tune directory)" in err and "storage URL" not in err, err
