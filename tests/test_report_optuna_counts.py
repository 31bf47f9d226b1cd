"""A study's trials by state are counted alike by optuna_view.py's printed lines and the report's row and Optuna
section: '8 trials: 1 complete, 7 pruned', not '8 trials, 1 complete' (which left the other seven unsaid)."""

from __future__ import annotations

import os

import pytest

optuna = pytest.importorskip("optuna")


def _study(directory):
    """A tune directory's study.journal of 8 trials: 1 complete, 7 pruned (a study of an aggressive pruner)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    os.makedirs(directory)
    storage = JournalStorage(JournalFileBackend(os.path.join(directory, "study.journal")))
    study = optuna.create_study(study_name="tune_bad", storage=storage, direction="maximize")
    dist = {"flow.dt": optuna.distributions.FloatDistribution(0.1, 10, log=True)}
    for i in range(8):
        trial = study.ask(dist)
        trial.set_user_attr("run_dir", f"trials/{i:04d}")
        if i == 3:
            study.tell(trial, 1.5)
        else:
            trial.report(0.1, 0)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return directory


def test_optuna_view_and_the_report_count_a_studys_trials_by_state_alike(tmp_path, capsys):
    from hpcflow.analysis.script import main
    from hpcflow.report import build_report

    tune = _study(tmp_path / "tune")
    assert main("optuna_view", [str(tune), "--out", str(tmp_path / "F")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "study tune_bad: 8 trials: 1 complete, 7 pruned" in printed, printed
    build_report([str(tune)], tmp_path / "R")
    md = (tmp_path / "R" / "report.md").read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| tune |"))
    assert "8 trials: 1 complete, 7 pruned" in row, row
    assert "study tune_bad: 8 trials: 1 complete, 7 pruned\n" in md  # the Optuna section's printed lines
