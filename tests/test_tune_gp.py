"""`--sampler gp` learns from the trials a study records as PRUNED: diverged points and points the pruner stopped."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from hpcflow.tune.study import make_sampler

#: x >= EDGE diverges; below it the objective (maximised) grows with x, so the GP is drawn towards the edge
EDGE = 100.0
FEASIBLE = [0.01, 0.03, 0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]


def _objective(kind):
    """Reports log10(x) at steps 0..4 as a worker does; x >= EDGE: diverged (pruned with status "diverged") or
    stopped by the pruner after two steps (kind "pruned"), as Worker.objective records them."""
    def objective(trial):
        x = trial.suggest_float("x", 0.01, 1e4, log=True)
        for step in range(5):
            value = math.log10(x) if x < EDGE else -2.0
            trial.report(value, step)
            if x >= EDGE and step == 1:
                if kind == "diverged":
                    trial.set_user_attr("status", "diverged")
                raise optuna.TrialPruned()
        return math.log10(x)
    return objective


@pytest.mark.parametrize("kind", ["diverged", "pruned"])
def test_gp_does_not_propose_a_pruned_or_diverged_region_again_and_again(kind):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("gp", seed=3))
    for x in [*FEASIBLE, 500.0, 5000.0]:  # ten complete trials (the GP's start) and two beyond the edge
        study.enqueue_trial({"x": x})
    study.optimize(_objective(kind), n_trials=len(FEASIBLE) + 2 + 8)
    proposed = study.trials[len(FEASIBLE) + 2:]
    beyond = [t.params["x"] for t in proposed if t.state == TrialState.PRUNED]
    # plain GPSampler, which fits complete trials only: all 8 proposals at the top of the range, x = 1e4, pruned
    assert len(set(beyond)) == len(beyond) <= len(proposed) // 2, beyond
    if kind == "diverged":  # infeasible observations: the GP models where trials diverge and keeps below it
        assert not beyond, beyond
    assert max(t.value for t in proposed if t.state == TrialState.COMPLETE) > math.log10(FEASIBLE[-1])
