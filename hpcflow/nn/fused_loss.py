"""The σ / ultra-local loss of a network's raw outputs with a closed-form backward (one autograd node).

Same value and gradient as `metric_loss(model.combine(gfs, y), ...)` (hpcflow.nn.loss), but the ~60 small
tensor ops of combine, det and loss are not recorded by autograd: d det/d v is the packed adjugate written
out for m = 3 (hpcflow.metric.det_gradient), and with W = Σ w, φ(r) = |r| or r², r = η/κ - 1,

    dL/dη_j = w_j / (W κ) [φ'(r_j) - Σ_i w_i φ'(r_i) η_i / (κ W)]      (the bracket's 2nd term only if κ is
                                                                       differentiated, detach_kappa=False)
then dL/dv = dL/dη · (d det/d v)/|Ω|² and dL/dy = Mᵀ dL/dv, M = ∂v/∂y (g_FS ⊙ · or the identity).
This halves the time of a small-batch training step on CPU (BENCHMARKS.md).

Data parallel (`comm` of R > 1 ranks, each holding part of one global batch): W, Σ w η and the κ term's
Σ w φ'(r) η are global sums (one Allreduce of 2-3 numbers in forward; for φ = r² the κ term is
2 (Σ w η²/κ - Σ w η), known after forward, else one more Allreduce of one number in backward). The output is
this rank's part Σ_local w φ(r) / W of the global loss and the backward gives d(global loss)/dy of the local
rows, so the parameter gradients summed over ranks are those of the global batch.
"""

from __future__ import annotations

from hpcflow.errors import ConfigError
from hpcflow.nn._torch import require_torch
from hpcflow.nn.features import hadamard_packed
from hpcflow.nn.loss import LOSSES
from hpcflow.nn.replicas import global_sums

torch = require_torch()


def det_and_grad_packed(v):
    """det g and d det/d v for packed 3x3 Hermitian metrics v (N, 9), both in closed form."""
    a, b, c, xr, xi, yr, yi, zr, zi = v.unbind(-1)  # g00, g11, g22, g01, g02, g12
    re_xz, im_xz = xr * zr - xi * zi, xr * zi + xi * zr
    xx, yy, zz = xr * xr + xi * xi, yr * yr + yi * yi, zr * zr + zi * zi
    det = a * b * c + 2.0 * (re_xz * yr + im_xz * yi) - a * zz - b * yy - c * xx
    grad = torch.stack([
        b * c - zz, a * c - yy, a * b - xx,
        2.0 * (zr * yr + zi * yi - c * xr), 2.0 * (zr * yi - zi * yr - c * xi),
        2.0 * (re_xz - b * yr), 2.0 * (im_xz - b * yi),
        2.0 * (xr * yr + xi * yi - a * zr), 2.0 * (xr * yi - xi * yr - a * zi),
    ], dim=-1)
    return det, grad


def _hadamard_transpose(gfs, gv):
    """Mᵀ gv for M = ∂(g_FS ⊙ y)/∂y: diagonal g_a gv_a; each complex pair (G = p + iq) maps
    (gx, gy) -> (p gx + q gy, -q gx + p gy)."""
    out = torch.empty_like(gv)
    out[:, :3] = gfs[:, :3] * gv[:, :3]
    p, q = gfs[:, 3::2], gfs[:, 4::2]
    gx, gy = gv[:, 3::2], gv[:, 4::2]
    out[:, 3::2] = p * gx + q * gy
    out[:, 4::2] = p * gy - q * gx
    return out


class _FusedMetricLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, gfs, omega2, weights, multiplicative: bool, squared: bool, detach_kappa: bool, comm):
        v = gfs + (hadamard_packed(gfs, y) if multiplicative else y)
        det, ddet = det_and_grad_packed(v)
        eta = det / omega2
        weta = weights * eta
        parts = [weights.sum(), weta.sum()] + ([(weta * eta).sum()] if squared and not detach_kappa else [])
        sums = global_sums(torch.stack(parts), comm)
        wsum, kappa = sums[0], sums[1] / sums[0]
        r = eta / kappa - 1.0
        loss = (weights * (r * r if squared else r.abs())).sum() / wsum
        # Σ_i w_i φ'(r_i) η_i over the global batch; for φ = r²: 2 (Σ w η²/κ - Σ w η) from the forward sums
        kterm = 2.0 * (sums[2] / kappa - sums[1]) if len(parts) == 3 else None
        ctx.save_for_backward(gfs, omega2, weights, eta, r, ddet, kappa, wsum)
        ctx.flags = (multiplicative, squared, detach_kappa, comm, kterm)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        gfs, omega2, weights, eta, r, ddet, kappa, wsum = ctx.saved_tensors
        multiplicative, squared, detach_kappa, comm, kterm = ctx.flags
        dphi = 2.0 * r if squared else torch.sign(r)
        if detach_kappa:
            bracket = dphi
        else:
            if kterm is None:
                kterm = global_sums((weights * dphi * eta).sum()[None], comm)[0]
            bracket = dphi - kterm / (kappa * wsum)
        d_eta = weights / (wsum * kappa) * bracket
        gv = (grad_out * d_eta / omega2)[:, None] * ddet
        gy = _hadamard_transpose(gfs, gv) if multiplicative else gv
        return gy, None, None, None, None, None, None, None


def fused_metric_loss(y, gfs, omega2, weights, *, kind: str = "multiplicative", loss: str = "sigma",
                      detach_kappa: bool = False, comm=None):
    """Loss (eq. B.11 or B.14) of raw outputs y (N, 9) of a 3x3 metric model, with the closed-form backward.

    With `comm` (R > 1): y holds this rank's rows of a global batch; κ and W are global (module docstring).
    """
    if loss not in LOSSES:
        raise ConfigError(f"loss = {loss!r} is not one of {LOSSES}; use 'sigma' or 'ultralocal'")
    return _FusedMetricLoss.apply(y, gfs, omega2, weights, kind == "multiplicative", loss == "ultralocal",
                                  bool(detach_kappa), comm)
