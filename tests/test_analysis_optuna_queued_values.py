"""A study holding a trial queued with `enqueue_trial` whose value lies outside its parameter's range, or off its
stepped grid: every view is drawn (the importances' in-memory study used the trials' own distributions, which do not
hold those values: a ValueError traceback from `hpcflow report` and analysis/optuna_view.py), and
analysis/optuna_view.py writes them."""

from __future__ import annotations

import warnings

import optuna
import pytest

from analysis_runs import script

pytest.importorskip("matplotlib")


def _study(storage=None):
    """Four trials in flow.dt [0.5, 2] (log) and kernel.width 0..1 step 0.25; the last queued at flow.dt 3.0 (out of
    range) and kernel.width 0.3 (off the grid)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="queued", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"flow.dt": 3.0, "kernel.width": 0.3})
    values = iter([0.1, 0.3, 0.2, 0.4])
    for _ in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's warning that the queued values lie outside the space
            trial = study.ask()
            dt = trial.suggest_float("flow.dt", 0.5, 2.0, log=True)
            width = trial.suggest_float("kernel.width", 0.0, 1.0, step=0.25)
        study.tell(trial, dt * 0.1 + width + next(values))
    queued = [t for t in study.trials if t.params["flow.dt"] == 3.0]
    assert len(queued) == 1 and queued[0].params["kernel.width"] == 0.3  # the premise: outside the distributions
    assert not queued[0].distributions["flow.dt"]._contains(3.0)
    return study


@pytest.mark.parametrize("view", ["history", "importances", "slice"])
def test_every_view_of_a_study_with_a_queued_value_outside_its_space_is_drawn(view, tmp_path):
    from hpcflow.analysis.figure import png_bytes
    from hpcflow.analysis.optuna_view import plot

    fig = plot(_study(), view)
    assert png_bytes(fig, tmp_path / f"{view}.png").startswith(b"\x89PNG")


def test_optuna_view_script_writes_the_views_of_such_a_study(tmp_path):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = tmp_path / "study.journal"
    _study(JournalStorage(JournalFileBackend(str(journal))))
    proc = script("optuna_view", journal, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "out").glob("*.png")} >= {"optuna_importances.png", "optuna_slice.png"}
