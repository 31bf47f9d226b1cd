"""Monte Carlo measures on X: kappa and the sigma measure (eq. B.11).

eta = det g / |Omega|^2 (ratio of the metric's volume form to the CY volume form, eq. B.11),
kappa = sum_w eta / sum_w (the constant that eta must equal for a Ricci-flat metric),
sigma = sum_w |1 - eta/kappa| / sum_w, all with the Monte Carlo weights w = |Omega|^2 / det g_FS.
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module


def kappa(eta, weights):
    """kappa = sum w eta / sum w."""
    xp = array_module(eta)
    return xp.sum(weights * eta) / xp.sum(weights)


def sigma_measure(eta, weights, kappa_value=None):
    """sigma = sum w |1 - eta/kappa| / sum w (eq. B.11); kappa from the same points unless given."""
    if np.shape(eta) != np.shape(weights):
        raise ValueError(f"eta {np.shape(eta)} and weights {np.shape(weights)}: pass one eta per weight")
    xp = array_module(eta)
    k = kappa(eta, weights) if kappa_value is None else kappa_value
    return xp.sum(weights * xp.abs(1.0 - eta / k)) / xp.sum(weights)
