"""Stepped float parameters on the decimal grid their [tune.space] table writes.

Optuna draws a stepped float as low + k * step in binary floating point, so {low = 0.01, high = 0.1, step = 0.01}
gave 0.06999999999999999 for 0.07 (and 0.09999999999999999 for high). `OnGrid` wraps a study's sampler and gives
Optuna, instead, the float nearest the decimal low + k * step (0.07): the storage then records the value as the job
file writes it, and the trial's job, best.toml, the log lines and the analysis of the study read it from there.
Optuna accepts it as a value of the distribution (`FloatDistribution._contains`: within [low, high], and
(value - low) / step within 1e-8 of a whole number), for a new trial, an enqueued one and a resumed study alike.
"""

from __future__ import annotations

from decimal import Decimal

import optuna
from optuna.distributions import FloatDistribution


def _decimal(x) -> Decimal:
    """The decimal a float is written as (its shortest repr: 0.01, not 0.01000000000000000020816...)."""
    return Decimal(repr(float(x)))


def grid_value(low, high, step, value) -> float:
    """The grid point low + k * step (0 <= k <= (high - low) / step, in decimals as written) nearest `value`."""
    lo, hi, st = _decimal(low), _decimal(high), _decimal(step)
    k = min(max(round((_decimal(value) - lo) / st), 0), (hi - lo) // st)
    return float(lo + k * st)


def on_grid(distribution, value):
    """`value` drawn from `distribution`: a stepped float's nearest decimal grid point, any other as it is."""
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        return grid_value(distribution.low, distribution.high, distribution.step, value)
    return value


class OnGrid(optuna.samplers.BaseSampler):
    """`sampler` whose stepped float values are decimal grid points (module docstring); everything else its own."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __str__(self) -> str:
        return str(self.sampler)

    def infer_relative_search_space(self, study, trial):
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        drawn = self.sampler.sample_relative(study, trial, search_space)
        return {name: on_grid(search_space.get(name), v) for name, v in drawn.items()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return on_grid(param_distribution,
                       self.sampler.sample_independent(study, trial, param_name, param_distribution))

    def before_trial(self, study, trial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
