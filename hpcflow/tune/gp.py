"""`--sampler gp`: Optuna's GPSampler, shown the trials a study records as PRUNED.

GPSampler fits COMPLETE trials only. A trial stopped by the pruner or one whose flow diverged is PRUNED (never the
best, and TPE ranks pruned trials below the complete ones), so the GP never saw them and proposed the same pruned
or diverged point again and again. Here the GP sees, as completed observations:

- a trial stopped by the pruner, with its last reported value (the convention of Optuna's `consider_pruned_trials`,
  as in CmaEsSampler; our objectives improve with the steps, so the value is a pessimistic one);
- a diverged trial (user attribute status = "diverged"), or an nn trial whose network's metric is not positive
  definite at some validation points after its last epoch (`objective.infeasible`), as infeasible: constraint `diverged` = 1 (Optuna's
  `Trial.set_constraint` convention: > 0 infeasible), every other observation 0, and the worst value observed. The
  GP then models where trials diverge and weighs its expected improvement by the chance of not diverging.

The storage is not changed: the trials stay PRUNED for the study, its best trial, TPE and the analysis scripts.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpcflow.tune.objective import infeasible

#: the constraint a diverged trial violates (system attribute "constraints:diverged" of the GP's observations)
DIVERGED = "constraints:diverged"


def last_value(t) -> float | None:
    """The value a pruned trial reported at its last step, or None (none reported, or not finite)."""
    if not t.intermediate_values:
        return None
    value = t.intermediate_values[max(t.intermediate_values)]
    return float(value) if value is not None and math.isfinite(value) else None


def _as_complete(t, value: float, constraint: float | None) -> FrozenTrial:
    attrs = dict(t.system_attrs) if constraint is None else {**t.system_attrs, DIVERGED: constraint}
    return FrozenTrial(number=t.number, state=TrialState.COMPLETE, value=value, datetime_start=t.datetime_start,
                       datetime_complete=t.datetime_complete, params=t.params, distributions=t.distributions,
                       user_attrs=t.user_attrs, system_attrs=attrs, intermediate_values=t.intermediate_values,
                       trial_id=t._trial_id)


def observed(trials, search_space: dict, maximize: bool) -> list:
    """`trials` with each PRUNED one drawn from `search_space` as a COMPLETE observation (module docstring); the
    others, and pruned trials of another space or without a value, as they are."""
    def fits(t):
        return t.state == TrialState.PRUNED and all(t.distributions.get(n) == d for n, d in search_space.items())

    diverged = {t.number for t in trials if fits(t) and infeasible(t.user_attrs)}
    stopped = {t.number: v for t in trials if fits(t) and t.number not in diverged and (v := last_value(t)) is not None}
    values = [t.value for t in trials if t.state == TrialState.COMPLETE] + list(stopped.values())
    worst = (min(values) if maximize else max(values)) if values else 0.0
    mark = 0.0 if diverged else None
    out = []
    for t in trials:
        if t.number in diverged:
            out.append(_as_complete(t, worst, 1.0))
        elif t.number in stopped:
            out.append(_as_complete(t, stopped[t.number], mark))
        elif t.state == TrialState.COMPLETE and mark is not None:
            out.append(_as_complete(t, t.value, mark))
        else:
            out.append(t)
    return out


class _Observations:
    """Study `study` as GPSampler reads it while it samples: its trials as `observed` gives them."""

    def __init__(self, study, search_space: dict):
        self._study, self._search_space = study, search_space

    def __getattr__(self, name):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list:
        trials = self._study._get_trials(deepcopy=deepcopy, states=None, use_cache=use_cache)
        maximize = self._study.direction == optuna.study.StudyDirection.MAXIMIZE
        out = observed(trials, self._search_space, maximize)
        return out if states is None else [t for t in out if t.state in states]


class GPSampler(optuna.samplers.GPSampler):
    """Optuna's GPSampler that also learns from pruned and diverged trials (module docstring)."""

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(_Observations(study, search_space), trial, search_space)
