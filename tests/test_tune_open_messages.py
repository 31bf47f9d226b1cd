"""What tune says where a study cannot start: two workers creating one SQLite database's tables at once, a job
of a kind tune does not search, and a directory that holds another job's study."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy

from test_tune_records import JOB, _digests, _job, _tune  # tests/ is on sys.path (pytest's default import mode)


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


@pytest.mark.parametrize("sqlite", [False, True])
def test_a_directory_of_another_jobs_study_is_said_to_be_one_not_pointed_to_its_study(tmp_path, capsys, sqlite):
    """--out holding study 'safe' of safe.toml, given grid.toml (another [flow].steps): its --study would be
    refused as another job's, so the refusal says whose study it holds and to choose another --out; a job file
    that computes the same trials under another name is still pointed to --study, which then adds its trial."""
    safe, out = _job(tmp_path, name="safe.toml"), tmp_path / "ck"
    grid = _job(tmp_path, JOB.replace("steps = 3", "steps = 4"), name="grid.toml")
    same = _job(tmp_path, name="copy.toml")
    storage = ["--storage", f"sqlite:///{tmp_path / 'q.db'}"] if sqlite else []
    assert _tune(capsys, safe, "--trials", "1", "--out", out, *storage)[0] == 0
    before = _digests(out)
    rc, io = _tune(capsys, grid, "--trials", "1", "--out", out, *storage)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert (f"--out {out} holds the trials of study 'safe' of another job, {safe} (this job has [flow].steps = 4, "
            "not 3); choose another --out") in io.err and "--study" not in io.err
    rc, io = _tune(capsys, grid, "--trials", "1", "--out", out, "--study", "safe", *storage)
    assert rc == 2 and "this job has [flow].steps = 4, not 3" in io.err  # what --study would have met
    assert _digests(out) == before
    rc, io = _tune(capsys, same, "--trials", "1", "--out", out, *storage)
    assert rc == 2 and "pass --study safe to add trials to it" in io.err, io.err
    assert _tune(capsys, same, "--trials", "1", "--out", out, "--study", "safe", *storage)[0] == 0


def test_a_study_made_with_set_values_is_named_with_them(tmp_path, capsys):
    """The study in --out was made from this very file with --set flow.steps=4: the refusal names the file with that
    --set (it named the file alone, as though the file differed)."""
    job, out = _job(tmp_path, name="safe.toml"), tmp_path / "ck"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--set", "flow.steps=4")[0] == 0
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--study", "other")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert (f"of another job, {job} with --set flow.steps=4 (this job has [flow].steps = 3, not 4)") in io.err, io.err
