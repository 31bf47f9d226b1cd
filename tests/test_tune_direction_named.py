"""A study in the storage that optimizes the other way is refused naming where this job's direction comes from:
[tune].direction where the job sets it, else its objective (values as TOML writes them: `schema.shown`)."""

from __future__ import annotations

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from hpcflow.tune.space import DEFAULT_OBJECTIVE, OBJECTIVES
from test_tune_records import _digests, _job, _tune  # tests/ is on sys.path


def _minimize_study(path) -> None:
    storage = JournalStorage(JournalFileBackend(str(path)))
    optuna.create_study(study_name="emptymin", storage=storage, direction="minimize")


def test_a_direction_that_follows_from_the_objective_is_named_by_it(tmp_path, capsys):
    job, journal = _job(tmp_path), tmp_path / "shared.journal"
    _minimize_study(journal)
    objective = DEFAULT_OBJECTIVE["flow"]
    assert OBJECTIVES[objective][0] == "maximize"
    before = _digests(tmp_path)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s", "--storage", journal, "--study", "emptymin")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert (f"study 'emptymin' in the storage is to minimize, but [tune].objective = '{objective}' is to maximize "
            "(the job sets no [tune].direction)") in io.err, io.err
    assert "or set [tune].direction = 'minimize' to add trials to it" in io.err, io.err
    assert _digests(tmp_path) == before


def test_a_direction_the_job_sets_is_named_as_set(tmp_path, capsys):
    job, journal = _job(tmp_path), tmp_path / "shared.journal"
    _minimize_study(journal)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "s", "--storage", journal, "--study", "emptymin",
                   "--set", "tune.direction=\"maximize\"")
    assert rc == 2 and "is to minimize, but [tune].direction is 'maximize'; pass another --study" in io.err, io.err
