"""A reader of a study (`hpcflow report`, the analysis scripts) never takes the writers' lock of its journal: a lock
left by a killed worker neither holds the report up nor is taken over by it, and a cut-off last line is still said."""

from __future__ import annotations

import os

from analysis_runs import make_study


def _stale_lock(journal) -> tuple:
    """The lock link a worker killed while holding Optuna's lock leaves (it names the journal, which exists)."""
    os.symlink(str(journal), str(journal) + ".lock")
    st = os.lstat(str(journal) + ".lock")
    return st.st_ino, st.st_mtime_ns, os.readlink(str(journal) + ".lock")


def _seen(journal) -> tuple:
    st = os.lstat(str(journal) + ".lock")
    return st.st_ino, st.st_mtime_ns, os.readlink(str(journal) + ".lock")


def _row(study_dir):
    from hpcflow.report.build import collect
    from hpcflow.report.runs_table import row

    report = collect([str(study_dir)])
    return row(report.infos[0])


def test_a_stale_journal_lock_is_left_as_it_is_and_the_study_is_read(tmp_path, capsys):
    """The report waited 30 s on the lock, then took it over ('taking it over' on stderr) in the study directory,
    though it only reads. Now it reads the journal without the lock: the link stays the killed worker's, untouched."""
    study_dir = tmp_path / "tune"
    make_study(study_dir, str(tmp_path / "gone"), [0.4, 2.0])
    journal = study_dir / "study.journal"
    before = _stale_lock(journal)
    status = _row(study_dir)[2]
    assert status.startswith("2 trials: 2 complete; best trial 1"), status
    assert _seen(journal) == before
    err = capsys.readouterr().err
    assert "lock" not in err, err


def test_a_cut_off_last_line_under_a_stale_lock_is_still_said(tmp_path, capsys):
    """A partial last line while the lock link stays: read again for a while (an append in progress would end), then
    the damage is said, naming the held lock; the link is untouched."""
    study_dir = tmp_path / "tune"
    make_study(study_dir, str(tmp_path / "gone"), [0.4, 2.0])
    journal = study_dir / "study.journal"
    with open(journal, "a", encoding="utf-8") as fh:
        fh.write('{"op_code": 5, "worker_id"')
    before = _stale_lock(journal)
    status = _row(study_dir)[2]
    assert status.startswith("unreadable: ") and "is incomplete (a write was cut off" in status, status
    assert f"its lock {journal}.lock was held meanwhile" in status, status
    assert _seen(journal) == before
    assert "taking it over" not in capsys.readouterr().err
