"""Metrics as packed real components, and the pointwise losses of the flow with exact gradients.

A Hermitian m x m metric g is flowed through its m^2 real components v_I (the paper's multi-index I,
`hpcflow.geometry.hermitian.pack`: g00, g11, g22, Re g01, Im g01, Re g02, Im g02, Re g12, Im g12 for m = 3).
With eta = det g / |Omega|^2, r = eta/kappa and scale c = w/W (weighted, W = sum w over all train points) or 1,
the pointwise losses are l = c f(r) with

    sigma loss       f(r) = |1 - r|         (eq. B.11)
    ultra-local loss f(r) = (r - 1)^2       (eq. B.14)

kappa = sum w eta / W depends on every metric, so the functional derivative of L = sum_j l_j is ("exact")

    dL/d eta_i = c_i f'(r_i) / kappa - (w_i / W) / kappa * A,   A = sum_j c_j f'(r_j) r_j

(dr_j/d eta_i = delta_ij / kappa - r_j w_i / (W kappa)); "fixed" drops the A term (kappa held within a step).
A and W are sums over all points of all ranks (`allsum`). With d det g = tr(adj(g) dg), the gradient of det g
w.r.t. the packed components is adj(g) packed with its off-diagonal entries doubled (`det_gradient`).
At eta = kappa the sigma loss uses the subgradient f' = 0.
"""

from __future__ import annotations

import math

from hpcflow.arguments import api_bool
from hpcflow.backend import array_module, to_host
from hpcflow.geometry.hermitian import det_hermitian, is_positive_definite, pack, unpack

__all__ = ["KAPPA_GRADIENTS", "LOSSES", "adjugate_hermitian", "correct_sum", "det_gradient", "inverse_hermitian",
           "is_positive_definite", "loss_and_grad"]

LOSSES = ("sigma", "ultralocal")
#: "exact": kappa(g) differentiated (the functional derivative of the loss); "fixed": kappa held within a step
KAPPA_GRADIENTS = ("exact", "fixed")


def adjugate_hermitian(g):
    """Adjugate adj(g) = det(g) g^-1 of Hermitian (..., m, m), closed form for m <= 3 (LAPACK above)."""
    xp = array_module(g)
    m = g.shape[-1]
    if m == 1:
        return xp.ones_like(g)
    if m == 2:
        adj = xp.empty_like(g)
        adj[..., 0, 0] = g[..., 1, 1]
        adj[..., 1, 1] = g[..., 0, 0]
        adj[..., 0, 1] = -g[..., 0, 1]
        adj[..., 1, 0] = -g[..., 1, 0]
        return adj
    if m == 3:
        adj = xp.empty_like(g)
        for i in range(3):
            for j in range(3):
                # adj[i, j] = cofactor C[j, i] = (-1)^(i+j) minor(j, i)
                r = [k for k in range(3) if k != j]
                c = [k for k in range(3) if k != i]
                minor = g[..., r[0], c[0]] * g[..., r[1], c[1]] - g[..., r[0], c[1]] * g[..., r[1], c[0]]
                adj[..., i, j] = minor if (i + j) % 2 == 0 else -minor
        return adj
    det = xp.linalg.det(g)
    return xp.linalg.inv(g) * det[..., None, None]


def inverse_hermitian(g):
    """Inverse of Hermitian (..., m, m) metrics, closed form adj(g)/det(g) for m <= 3."""
    m = g.shape[-1]
    if m > 3:
        return array_module(g).linalg.inv(g)
    return adjugate_hermitian(g) / det_hermitian(g)[..., None, None]


def det_gradient(g):
    """d det(g) / d v_I for the packed real components v = pack(g) (..., m^2).

    d det = tr(adj(g) dg); for v = g_aa this is adj_aa, for v = Re g_ab (dg = E_ab + E_ba) it is
    adj_ba + adj_ab = 2 Re adj_ab, for v = Im g_ab (dg = i E_ab - i E_ba) it is i adj_ba - i adj_ab = 2 Im adj_ab
    (adj is Hermitian for Hermitian g).
    """
    m = g.shape[-1]
    p = pack(adjugate_hermitian(g))
    p[..., m:] *= 2.0
    return p


def correct_sum(x) -> float:
    """Correctly rounded sum of a 1-D array (math.fsum): independent of order and of how points are split."""
    return math.fsum(to_host(x).tolist())


def loss_and_grad(v, omega2, weights, kappa, *, loss: str = "sigma", weighted: bool = True,
                  kappa_gradient: str = "exact", weight_sum=None, allsum=None):
    """Pointwise loss l(x) and the gradient dL/dv (N, m^2) of the total loss w.r.t. packed components v (N, m^2).

    loss="sigma": |1 - eta/kappa| (eq. B.11); loss="ultralocal": (eta/kappa - 1)^2 (eq. B.14); each times
    w(x)/W when weighted (a bool). kappa_gradient="exact" differentiates kappa = sum w eta / W, "fixed" holds it.
    weight_sum: W over all train points (default: sum of `weights`); allsum: local 1-D array -> global sum over
    all points of all ranks (default: the correctly rounded sum of the local array).
    """
    xp = array_module(v)
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not one of {LOSSES}")
    if kappa_gradient not in KAPPA_GRADIENTS:
        raise ValueError(f"kappa_gradient={kappa_gradient!r} is not one of {KAPPA_GRADIENTS}")
    api_bool("weighted", weighted)
    allsum = correct_sum if allsum is None else allsum
    total_weight = float(allsum(weights)) if weight_sum is None else float(weight_sum)
    g = unpack(v)
    ratio = det_hermitian(g) / omega2 / kappa  # r = eta/kappa
    r = ratio - 1.0
    scale = weights / total_weight if weighted else xp.ones_like(r)
    if loss == "sigma":
        ell, dl_dr = xp.abs(r), xp.sign(r)
    else:
        ell, dl_dr = r * r, 2.0 * r
    dl = scale * dl_dr  # kappa * dL/d eta at fixed kappa
    if kappa_gradient == "exact":
        dl = dl - (weights / total_weight) * float(allsum(dl * ratio))
    coef = dl / (omega2 * kappa)
    return scale * ell, coef[:, None] * det_gradient(g)
