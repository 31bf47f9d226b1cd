"""What tune says where a study cannot start: two workers creating one SQLite database's tables at once, and a job
of a kind tune does not search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy

from test_tune_records import _job, _tune  # tests/ is on sys.path (pytest's default import mode)


def _race(monkeypatch, times: int) -> None:
    """Have Optuna's creation of its tables lose a race `times` times: another engine creates them between the look
    and the CREATE (the real create_all of both, the second without its look), as a second worker starting at the
    same moment does."""
    create_all, left = sqlalchemy.MetaData.create_all, [times]

    def raced(self, bind=None, tables=None, checkfirst=True):
        if left[0] <= 0:
            return create_all(self, bind, tables=tables, checkfirst=checkfirst)
        left[0] -= 1
        other = sqlalchemy.create_engine(bind.url)
        try:
            create_all(self, other)
        finally:
            other.dispose()
        return create_all(self, bind, tables=tables, checkfirst=False)  # "table ... already exists"

    monkeypatch.setattr(sqlalchemy.MetaData, "create_all", raced)


def test_a_worker_that_loses_the_race_to_create_the_tables_opens_them_and_runs(tmp_path, monkeypatch, capsys):
    _race(monkeypatch, 1)
    db = tmp_path / "q.db"
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "2", "--out", tmp_path / "s", "--storage", f"sqlite:///{db}")
    assert rc == 0, io.err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2


def test_a_lost_race_twice_says_what_happened_and_that_rerunning_continues(tmp_path, monkeypatch, capsys):
    _race(monkeypatch, 2)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", tmp_path / "s", "--storage", url)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert "another worker created the database's tables at the same time" in io.err, io.err
    assert "run this worker again" in io.err and "server answers" not in io.err, io.err
    monkeypatch.undo()
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", tmp_path / "s", "--storage", url)
    assert rc == 0, io.err


@pytest.mark.parametrize("with_tune", [False, True])
def test_a_job_of_a_kind_tune_does_not_search_is_told_so_first(tmp_path, capsys, with_tune):
    """A clustering job: refused for its kind whether or not it has a [tune] table (without one the advice was to
    add [tune.space], which is then refused for the kind)."""
    job = (Path(__file__).parents[1] / "jobs" / "fig2_clustering.toml").read_text()
    if with_tune:
        job += '[tune.space]\n"clustering.n_clusters" = {choices = [8, 10]}\n'
    rc, io = _tune(capsys, _job(tmp_path, job), "--trials", "1", "--out", tmp_path / "s")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert "clustering" in io.err and "flow, nn" in io.err and "add [tune.space]" not in io.err, io.err
    assert not (tmp_path / "s").exists()
