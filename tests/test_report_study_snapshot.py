"""A study still running is read once per report: its row in the runs table and its Optuna section show one
snapshot of it (they showed 4 trials and 8 where trials were added between the two reads), and a database storage's
connections are not left open by the readers."""

from __future__ import annotations

import os
import re

import pytest

from analysis_runs import make_study, run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _add_trials(directory, n):
    """n more complete trials in the study of directory/study.journal, as a study still running adds them."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(os.path.join(directory, "study.journal")))
    study = optuna.load_study(study_name="table1_delta", storage=storage)
    for _ in range(n):
        trial = study.ask({"flow.dt": optuna.distributions.FloatDistribution(0.1, 10, log=True)})
        trial.set_user_attr("run_dir", "trials/none")
        study.tell(trial, 0.0)


def test_the_runs_row_and_the_optuna_section_of_a_running_study_show_one_snapshot(runs, tmp_path, monkeypatch):
    import optuna

    from hpcflow.report import detect
    from hpcflow.report.build import build_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tune = tmp_path / "tune"
    make_study(tune, runs["flow"], [0.1, 0.5, 0.3, 0.2])
    original = detect._study_summary

    def read_then_grow(path, study_name):  # the study goes on between the row's read and the section's
        out = original(path, study_name)
        _add_trials(tune, 4)
        return out

    monkeypatch.setattr(detect, "_study_summary", read_then_grow)
    res = build_report([str(tune)], str(tmp_path / "R"))
    md = open(res["md"], encoding="utf-8").read()
    counts = re.findall(r"(\d+) trials: ", md)
    assert counts and set(counts) == {"4"}, counts  # the row's and the section's, as first read
    assert "8 trials" not in md
    # read again by the next report: the trials added since
    monkeypatch.setattr(detect, "_study_summary", original)
    md = open(build_report([str(tune)], str(tmp_path / "R2"))["md"], encoding="utf-8").read()
    assert set(re.findall(r"(\d+) trials: ", md)) == {"8"}


def test_a_database_study_read_leaves_no_connection_open(runs, tmp_path):
    import gc

    import optuna

    from hpcflow.analysis.study import load_study, overview

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = tmp_path / "study.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}", direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    from hpcflow.tune.storage import close_storage

    close_storage(study)
    del study
    gc.collect()
    before = set(os.listdir("/proc/self/fd"))
    loaded, _ = load_study(f"sqlite:///{db}")
    assert len(loaded.trials) == 3 and overview(f"sqlite:///{db}")["trials"] == 3
    opened = [os.readlink(f"/proc/self/fd/{fd}") for fd in set(os.listdir("/proc/self/fd")) - before
              if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [p for p in opened if p.startswith(str(db))], opened
