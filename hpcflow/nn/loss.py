"""Torch σ loss (eq. B.11) and ultra-local loss (eq. B.14) of packed metrics, Monte Carlo weighted.

η = det g / |Ω|², κ = Σ w η / Σ w over the batch, and
  "sigma":      L = Σ w |1 - η/κ| / Σ w   (equals hpcflow.geometry.measures.sigma_measure on the batch),
  "ultralocal": L = Σ w (η/κ - 1)² / Σ w.
κ handling: κ is taken from the current batch and, by default (detach_kappa=False), differentiated: the
gradient flows through κ, so the loss is exactly invariant under g -> c g and the global scale of g is a
null direction of training. With detach_kappa=True (κ a constant within the step, as in
hpcflow.metric.loss_and_grad and the kernel flow) Adam at lr 1e-3..3e-3 ran away in our runs after a few
epochs (σ_val > 1, metrics losing positive definiteness), presumably through that scale direction.
Either way the *value* is the batch σ; validation σ uses all validation points at once.
"""

from __future__ import annotations

import math

from hpcflow.errors import ConfigError
from hpcflow.nn._torch import require_torch
from hpcflow.nn.features import det_packed

torch = require_torch()

LOSSES = ("sigma", "ultralocal")


def eta(v, omega2):
    """η = det g / |Ω|² for packed metrics v (N, m²)."""
    return det_packed(v) / omega2


def check_batch(v, omega2, weights) -> None:
    """TypeError / ValueError naming the argument and the fix unless v (N, m²), omega2 (N,) and weights (N,) are
    torch tensors of one N (what a mismatch ends in otherwise is a bare torch broadcast error, or a loss of the wrong
    rows broadcast together)."""
    for name, t in (("v", v), ("omega2", omega2), ("weights", weights)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"metric_loss: {name} is a {type(t).__module__}.{type(t).__name__}, not a torch.Tensor; "
                            f"pass torch.as_tensor({name})")
    n = v.shape[0] if v.ndim == 2 else None
    if n is None or math.isqrt(v.shape[1]) ** 2 != v.shape[1]:
        raise ValueError(f"metric_loss: v has shape {tuple(v.shape)}; pass packed metrics, shape (N, m²) (the "
                         "network's output model(x, gfs))")
    for name, t in (("omega2", omega2), ("weights", weights)):
        if tuple(t.shape) != (n,):
            raise ValueError(f"metric_loss: {name} has shape {tuple(t.shape)} next to {n} metrics (v of shape "
                             f"{tuple(v.shape)}); pass one value per point, shape ({n},): the same rows of one "
                             "MetricData as the metrics (d.omega2[rows], d.weights[rows])")


def metric_loss(v, omega2, weights, *, loss: str = "sigma", detach_kappa: bool = False):
    """Weighted σ (eq. B.11) or ultra-local (eq. B.14) loss of packed metrics v over a batch (scalar)."""
    if loss not in LOSSES:
        raise ConfigError(f"loss = {loss!r} is not one of {LOSSES}; use 'sigma' or 'ultralocal'")
    check_batch(v, omega2, weights)
    e = eta(v, omega2)
    kappa = torch.sum(weights * e) / torch.sum(weights)
    if detach_kappa:
        kappa = kappa.detach()
    r = e / kappa - 1.0
    pointwise = torch.abs(r) if loss == "sigma" else r * r
    return torch.sum(weights * pointwise) / torch.sum(weights)
