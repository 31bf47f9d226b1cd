"""`hpcflow.submit.check.counted_trials` (read by `hpcflow submit --command tune --wait` before it queues the
trials) closes the SQLite database of the study it counts: no file descriptor of the process points to it after
the call, whether the study is there or not. Garbage collection is held off, so that only a close lets it go."""

from __future__ import annotations

import optuna
import pytest

from hpcflow.submit.check import counted_trials
from hpcflow.tune.storage import close_storage
from test_tune_storage_closed import no_collection, open_files  # tests/ is on sys.path (pytest's default import mode)


@pytest.mark.parametrize("name, count", [("job", 2), ("other", 0)])
def test_counted_trials_leaves_the_database_closed(tmp_path, name, count):
    db = tmp_path / "q.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = optuna.create_study(study_name="job", storage=f"sqlite:///{db}")
    for x in (1.0, 2.0):
        made.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=x))
    close_storage(made)
    del made
    assert open_files(db) == []  # (so the check below sees what the call left)
    with no_collection():
        got = counted_trials(str(tmp_path / f"{name}.toml"), str(tmp_path / "out"), storage=f"sqlite:///{db}")
        held = open_files(db)
    assert got == count
    assert held == []
