"""The objective of a trial from its sigma history (names in `hpcflow.tune.space.OBJECTIVES`).

The same function gives the value reported at every step (pruning compares like with like) and the final one.
"""

from __future__ import annotations

import math

from hpcflow.errors import UserError


#: an nn job's objectives are its flow counterparts on the validation points (its held-out set)
NN_ALIASES = {"log_gain_val": "log_gain_test", "log_gain_val_best": "log_gain_test_best", "sigma_val": "sigma_test"}


def value(name: str, sigma_train, sigma_test) -> float:
    """Objective `name` of histories whose entry 0 is the FS sigma (the untrained network's, for nn jobs, whose
    sigma_test is sigma_val) and whose last entry is the current step or epoch."""
    name = NN_ALIASES.get(name, name)
    if name == "log_gain_train":
        return _log_ratio(sigma_train[0], sigma_train[-1])
    if name == "log_gain_test":
        return _log_ratio(sigma_test[0], sigma_test[-1])
    if name == "log_gain_test_best":
        return _log_ratio(sigma_test[0], min((s for s in sigma_test if not math.isnan(s)), default=math.nan))
    if name == "sigma_test":
        return float(sigma_test[-1])
    raise ValueError(f"unknown objective {name!r}")


def positive_definite_only(sigma_val, not_pd) -> list:
    """An nn trial's sigma_val history with NaN at every epoch whose validation metric is not known to be positive
    definite (count of `history/val_not_positive_definite` other than 0: σ uses the signed det g there and can look
    better than a healthy network's; -1: not counted), so no objective is taken from such an epoch."""
    return [float(s) if n == 0 else math.nan for s, n in zip(sigma_val, not_pd)]


def infeasible(attrs: dict) -> str | None:
    """Why a trial (its user attributes) ran to no value of its parameters: "diverged" (its flow or training did),
    "not positive definite" (an nn trial whose last epoch's validation metric is not positive definite at some
    points), or None."""
    if attrs.get("status") == "diverged":
        return "diverged"
    if (attrs.get("val_not_positive_definite_final") or 0) > 0:
        return "not positive definite"
    return None


class NoValue(UserError):
    """A finished trial whose summary gives its objective no value (`from_summary` NaN): the trial fails, naming why
    (`no_value`), without a retry (its parameters would give none again)."""


#: the summary keys a flow objective is taken from (`from_summary`)
FLOW_KEYS = {"log_gain_train": "gain_train", "log_gain_test": "gain_test", "log_gain_test_best": "gain_test_best",
             "sigma_test": "sigma_test_final"}
#: the summary keys an nn objective is taken from: sigma_val at epoch 0, then at the end or at its best epoch
NN_KEYS = {"log_gain_val": ("sigma_val_initial", "sigma_val_final"), "sigma_val": ("sigma_val_final",),
           "log_gain_val_best": ("sigma_val_initial", "sigma_val_best")}


def no_value(name: str, summary: dict) -> str:
    """Why objective `name` has no value in a finished trial's summary (`from_summary` gives NaN): one line."""
    if name in FLOW_KEYS and summary.get("n_test") == 0 and name != "log_gain_train":
        return f"objective {name!r} needs test points, but the trial ran without ([geometry].n_test = 0)"
    keys = NN_KEYS[name] if name in NN_KEYS else (FLOW_KEYS[name],)
    shown = ", ".join(f"{k} = {summary.get(k)!r}" for k in keys)
    return f"objective {name!r} has no value: its summary.json gives {shown} (a finite positive number needed)"


def from_summary(name: str, summary: dict) -> float:
    """Objective `name` at the end of a finished trial, from its summary (gains = sigma(0) / sigma(step)); NaN where
    the summary gives none (`no_value` says why)."""
    if name in NN_ALIASES:  # an nn summary: sigma_val at epoch 0, at the end and at its best epoch
        initial, final, best = (summary.get(k) for k in ("sigma_val_initial", "sigma_val_final", "sigma_val_best"))
        if name == "sigma_val":
            return _finite_positive(final)
        return _log_ratio(_finite_positive(initial), _finite_positive(best if name == "log_gain_val_best" else final))
    x = summary.get(FLOW_KEYS[name])
    if x is None or not x > 0:
        return float("nan")
    return float(x) if name == "sigma_test" else math.log(x)


def _finite_positive(x) -> float:
    """x as a float if it is a finite positive number, else NaN (the trial then fails)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) and x > 0 else float("nan")


def _log_ratio(initial: float, current: float) -> float:
    """log(initial / current); NaN when either is not a finite positive number (the trial then fails)."""
    if not (initial > 0 and current > 0 and math.isfinite(initial) and math.isfinite(current)):
        return float("nan")
    return math.log(initial / current)


class Tracker:
    """Keeps the sigma histories of a running trial from kernel_flow's per-step callback dicts."""

    def __init__(self, name: str):
        self.name = name
        self.train: list[float] = []
        self.test: list[float] = []

    def step(self, info: dict, sigma0: tuple[float, float]) -> float:
        """Record one step and return the objective at it."""
        if not self.train:
            self.train.append(float(sigma0[0]))
            self.test.append(float(sigma0[1]))
        self.train.append(float(info["sigma_train"]))
        self.test.append(float(info["sigma_test"]))
        return value(self.name, self.train, self.test)
