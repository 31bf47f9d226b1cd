"""Stepped float parameters take the decimal grid points as the job file writes them (0.07, not
0.06999999999999999): in the storage, the trial's job.toml, best.toml and what `hpcflow tune` prints."""

from __future__ import annotations

import logging
import re
import warnings

import optuna
import pytest
from optuna.distributions import FloatDistribution

from hpcflow.cli import main
from hpcflow.tune.study import make_sampler
from test_tune_records import _journal
from test_tune_space import BASE  # tests/ is on sys.path (pytest's default import mode)

#: {low = 0.01, high = 0.1, step = 0.01} as written; binary low + k * step gives 0.060000000000000005,
#: 0.06999999999999999 and 0.09999999999999999 for three of them
HUNDREDTHS = ["0.01", "0.02", "0.03", "0.04", "0.05", "0.06", "0.07", "0.08", "0.09", "0.1"]
#: {low = 0.7, high = 0.9, step = 0.1}: 0.7999999999999999 and 0.8999999999999999 in binary
TENTHS = ["0.7", "0.8", "0.9"]


def _objective(trial):
    x = trial.suggest_float("x", 0.01, 0.1, step=0.01)
    y = trial.suggest_float("y", 0.7, 0.9, step=0.1)
    return (x - 0.07) ** 2 + (y - 0.8) ** 2


def _study(sampler):
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna.create_study(sampler=sampler)


@pytest.mark.parametrize("name, trials", [("random", 60), ("tpe", 60), ("gp", 20)])
def test_every_stepped_float_a_study_records_is_the_decimal_grid_point(name, trials):
    study = _study(make_sampler(name, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(_objective, n_trials=trials)
    xs = {repr(t.params["x"]) for t in study.trials}
    ys = {repr(t.params["y"]) for t in study.trials}
    assert xs <= set(HUNDREDTHS) and ys <= set(TENTHS), (xs, ys)
    assert len(xs) >= 5 and len(ys) >= 2  # the samplers did visit the points whose binary sums are off
    assert {k: repr(v) for k, v in study.best_params.items()} == {"x": "0.07", "y": "0.8"}


def test_optuna_accepts_the_decimal_points_in_a_study_and_when_enqueued():
    """Optuna's distribution check (FloatDistribution._contains) takes each decimal point: an enqueued one is run
    as it is (a value outside the distribution would be drawn anew, with a warning), also in a loaded study."""
    storage = optuna.storages.InMemoryStorage()
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(study_name="s", storage=storage, sampler=make_sampler("random", seed=0))
    for x, y in zip(HUNDREDTHS, TENTHS * 4):
        study.enqueue_trial({"x": float(x), "y": float(y)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study.optimize(_objective, n_trials=len(HUNDREDTHS))
        again = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler("tpe", seed=0))
        again.optimize(_objective, n_trials=10)
    assert [repr(t.params["x"]) for t in study.trials[:len(HUNDREDTHS)]] == HUNDREDTHS
    assert {repr(t.params["x"]) for t in again.trials} <= set(HUNDREDTHS)
    for grid, (low, high, step) in ((HUNDREDTHS, (0.01, 0.1, 0.01)), (TENTHS, (0.7, 0.9, 0.1))):
        d = FloatDistribution(low, high, step=step)
        assert all(d._contains(d.to_internal_repr(float(v))) for v in grid)


def test_grid_values_of_other_ranges():
    from hpcflow.tune.grid import grid_value

    cases = [((0.0, 1.0, 0.1), ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]),
             ((-1.5, 1.5, 0.25), ["-1.5", "-1.25", "-1.0", "-0.75", "-0.5", "-0.25", "0.0", "0.25", "0.5", "0.75",
                                  "1.0", "1.25", "1.5"]),
             ((0.001, 0.005, 0.001), ["0.001", "0.002", "0.003", "0.004", "0.005"]),
             ((1.1, 1.7, 0.3), ["1.1", "1.4", "1.7"])]
    for (low, high, step), want in cases:
        d = FloatDistribution(low, high, step=step)
        for k, text in enumerate(want):
            for drawn in (k * step + low, low + k * step * (1 + 1e-12), low + k * step * (1 - 1e-12)):
                got = grid_value(low, high, step, drawn)
                assert repr(got) == text and d._contains(d.to_internal_repr(got)), (low, step, k, drawn, got)
    assert grid_value(0.7, 0.9, 0.1, 0.95) == 0.9 and grid_value(0.7, 0.9, 0.1, 0.6) == 0.7  # kept in the range


JOB = BASE + """[tune]
sampler = "random"
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.7, high = 0.9, step = 0.1}
"""


def test_trial_jobs_best_toml_and_the_printed_best_hold_the_decimal_values(tmp_path, capsys):
    job, out = tmp_path / "tiny.toml", tmp_path / "s"
    job.write_text(JOB)
    assert main(["tune", str(job), "--trials", "6", "--out", str(out)]) == 0
    assert main(["tune", str(job), "--trials", "2", "--out", str(out)]) == 0  # the resumed study adds its trials
    printed = capsys.readouterr().out
    study = _journal(out / "study.journal")
    assert len(study.trials) == 8
    for t in study.trials:
        written = re.search(r"^dt = (\S+)$", (out / "trials" / f"{t.number:04d}" / "job.toml").read_text(), re.M)[1]
        assert written in TENTHS and repr(t.params["flow.dt"]) == written, (t.number, written, t.params)
    best = re.search(r"^dt = (\S+)$", (out / "best.toml").read_text(), re.M)[1]
    assert best in TENTHS and f", params flow.dt = {best}; wrote " in printed
