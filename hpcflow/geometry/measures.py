"""Monte Carlo measures on X: kappa and the sigma measure (eq. B.11).

eta = det g / |Omega|^2 (ratio of the metric's volume form to the CY volume form, eq. B.11),
kappa = sum_w eta / sum_w (the constant that eta must equal for a Ricci-flat metric),
sigma = sum_w |1 - eta/kappa| / sum_w, all with the Monte Carlo weights w = |Omega|^2 / det g_FS.
Both refuse what is not such a ratio or weight (`check_measure_arguments`), so they never return a silently wrong
or NaN value; the flow sums its own eta and does not call them.
"""

from __future__ import annotations

import numpy as np

from hpcflow.arguments import api_number
from hpcflow.backend import array_module, to_host


#: what to pass instead of a bad eta or weight
FIXES = {"eta": "eta = det g / |Omega|^2 of metrics g (PointSet.eta(g))",
         "weights": "the Monte Carlo weights |Omega|^2 / det g_FS (PointSet.weights)"}


def check_measure_arguments(eta, weights):
    """(eta, weights) as arrays once they are the same shape, real and finite, eta > 0 (a ratio of volume forms:
    det g > 0 for a metric) and weights >= 0 with a positive sum; else one ValueError naming the argument and the
    first bad entry (TypeError for what is not numeric). Both are float64 (integers, float16 and float32 converted)."""
    xp = array_module(eta)
    eta, weights = xp.asarray(eta), xp.asarray(weights)
    if eta.shape != weights.shape:
        raise ValueError(f"eta {eta.shape} and weights {weights.shape}: pass one eta per weight")
    for name, a in (("eta", eta), ("weights", weights)):
        if a.dtype.kind == "c":
            raise ValueError(f"{name} is complex ({a.dtype}); pass real values: eta = det g / |Omega|^2 and the "
                             "weights |Omega|^2 / det g_FS are real for Hermitian metrics (.real of a determinant)")
        if a.dtype.kind not in "iuf":
            raise TypeError(f"{name} has dtype {a.dtype}; pass real numbers")
    for name, a, bad, what in (("eta", eta, ~(eta > 0), "a finite number > 0 (det g > 0 for a metric)"),
                               ("weights", weights, ~(weights >= 0), "a finite number >= 0")):
        bad = bad | ~xp.isfinite(a)
        if bool(xp.any(bad)):
            k = np.unravel_index(int(np.argmax(to_host(bad))), a.shape)
            raise ValueError(f"{name}[{', '.join(map(str, k))}] = {float(a[k])} is not {what}; pass {FIXES[name]}")
    if not bool(xp.sum(weights) > 0):
        raise ValueError(f"weights sum to 0 ({weights.size} points): sigma and kappa are weighted means; pass at "
                         "least one weight > 0")
    # float64 sums whatever the inputs' precision (float32 eta and weights give float64 kappa and sigma)
    return tuple(a.astype(np.result_type(a.dtype, np.float64), copy=False) for a in (eta, weights))


def kappa(eta, weights):
    """kappa = sum w eta / sum w."""
    return _kappa(*check_measure_arguments(eta, weights))


def sigma_measure(eta, weights, kappa_value=None):
    """sigma = sum w |1 - eta/kappa| / sum w (eq. B.11); kappa from the same points unless given (a number > 0)."""
    eta, weights = check_measure_arguments(eta, weights)
    xp = array_module(eta)
    if kappa_value is None:
        k = _kappa(eta, weights)
    else:
        k = api_number("kappa_value", kappa_value.item() if np.ndim(kappa_value) == 0 and hasattr(kappa_value, "item")
                       else kappa_value, "None or a number > 0 (kappa of eq. B.11)", lo=0.0, lo_open=True)
    return xp.sum(weights * xp.abs(1.0 - eta / k)) / xp.sum(weights)


def _kappa(eta, weights):
    xp = array_module(eta)
    return xp.sum(weights * eta) / xp.sum(weights)
