"""The σ / ultra-local loss of a network's raw outputs with a closed-form backward (one autograd node).

Same value and gradient as `metric_loss(model.combine(gfs, y), ...)` (hpcflow.nn.loss), but combine, det
and loss are not recorded by autograd, and take ~25 tensor operations in all: d det/d v (the packed adjugate,
hpcflow.metric.det_gradient) and the Hadamard map g_FS ⊙ y are bilinear, each one outer product and one
(81, 9) matrix product (bilinear_tables), det = v · d det/d v / 3; with W = Σ w, φ(r) = |r| or r², r = η/κ - 1,

    dL/dη_j = w_j / (W κ) [φ'(r_j) - Σ_i w_i φ'(r_i) η_i / (κ W)]      (the bracket's 2nd term only if κ is
                                                                       differentiated, detach_kappa=False)
then dL/dv = dL/dη · (d det/d v)/|Ω|² and dL/dy = Mᵀ dL/dv, M = ∂v/∂y (g_FS ⊙ · or the identity).
hpcflow.nn.fast_step uses the same function without any autograd graph (BENCHMARKS.md). On CPU float64
tensors the per-row part runs as two compiled loops instead (hpcflow.nn.jit_loss, when Numba imports).

Data parallel (`comm` of R > 1 ranks, each holding part of one global batch): W, Σ w η and the κ term's
Σ w φ'(r) η are global sums (one Allreduce of 2-3 numbers in forward; for φ = r² the κ term is
2 (Σ w η²/κ - Σ w η), known after forward, else one more Allreduce of one number in backward). The output is
this rank's part Σ_local w φ(r) / W of the global loss and the backward gives d(global loss)/dy of the local
rows, so the parameter gradients summed over ranks are those of the global batch.
"""

from __future__ import annotations

from hpcflow.errors import ConfigError
from hpcflow.nn import jit_loss
from hpcflow.nn._torch import require_torch
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


#: det g of a packed 3x3 metric as monomials (coefficient, three component indices), indices as in
#: det_packed: 0-2 the diagonal a, b, c; (3, 4) = g01 = x, (5, 6) = g02 = y, (7, 8) = g12 = z (Re, Im)
DET_MONOMIALS = ((1, 0, 1, 2), (2, 3, 7, 5), (-2, 4, 8, 5), (2, 3, 8, 6), (2, 4, 7, 6), (-1, 0, 7, 7),
                 (-1, 0, 8, 8), (-1, 1, 5, 5), (-1, 1, 6, 6), (-1, 2, 3, 3), (-1, 2, 4, 4))
#: (c, I, J, K): (g ⊙ y)_K = Σ c g_I y_J, the real diagonal products and the complex products
#: (p + iq)(s + it) = (ps - qt) + i(pt + qs) of the three off-diagonal pairs
HADAMARD_TERMS = tuple((1, a, a, a) for a in range(3)) + tuple(
    t for r in (3, 5, 7) for t in ((1, r, r, r), (-1, r + 1, r + 1, r), (1, r, r + 1, r + 1), (1, r + 1, r, r + 1)))
_TABLES: dict = {}


def bilinear_tables(dtype=torch.float64, device="cpu"):
    """(T, H, Hᵀ), (81, 9) matrices with, for row index 9I + J,

        d det/d v_K = Σ_IJ T[9I+J, K] v_I v_J,   (g ⊙ y)_K = Σ_IJ H[9I+J, K] g_I y_J,
        (Mᵀ u)_J = Σ_IK Hᵀ[9I+K, J] g_I u_K   for M = ∂(g ⊙ y)/∂y,

    so each map is one outer product and one matrix product. Entries are 0, ±1/2, ±1 (exact in any format).
    """
    key = (dtype, str(device))
    if key not in _TABLES:
        t = torch.zeros(9, 9, 9, dtype=torch.float64)
        for c, *idx in DET_MONOMIALS:  # ∂/∂v_K of c v_p v_q v_r: c times the other two, at each position of K
            for s in range(3):
                i, j = (idx[u] for u in range(3) if u != s)
                t[i, j, idx[s]] += 0.5 * c
                t[j, i, idx[s]] += 0.5 * c
        h = torch.zeros(9, 9, 9, dtype=torch.float64)
        for c, i, j, k in HADAMARD_TERMS:
            h[i, j, k] = c
        _TABLES[key] = tuple(a.reshape(81, 9).to(device=device, dtype=dtype).contiguous()
                             for a in (t, h, h.permute(0, 2, 1)))
    return _TABLES[key]


def _outer(a, b):
    """Row-wise outer products (N, 9), (N, 9) -> (N, 81)."""
    return (a[:, :, None] * b[:, None, :]).view(a.shape[0], -1)


def loss_and_output_gradient(y, gfs, omega2, weights, *, multiplicative: bool = True, squared: bool = True,
                             detach_kappa: bool = False, comm=None):
    """(this rank's part of the loss as a float, dL/dy (N, 9)) of raw outputs y, with the closed-form backward of
    the module docstring: for CPU float64 tensors two compiled per-row passes (hpcflow.nn.jit_loss) when Numba
    imports, else ~25 tensor operations: the Hadamard map, det and its gradient are one outer product and one
    (81, 9) matrix product each (bilinear_tables), and det = v · d det/d v / 3 (Euler: det is homogeneous of
    degree 3); the global scalars are Python floats."""
    if _compiled_rows(y, gfs, omega2, weights):
        return _loss_compiled(y, gfs, omega2, weights, multiplicative=multiplicative, squared=squared,
                              detach_kappa=detach_kappa, comm=comm)
    t_det, had, had_t = bilinear_tables(y.dtype, y.device)
    v = torch.addmm(gfs, _outer(gfs, y), had) if multiplicative else gfs + y
    ddet = torch.mm(_outer(v, v), t_det)
    eta = torch.sum(v * ddet, 1).div_(omega2).mul_(1.0 / 3.0)
    weta = weights * eta
    parts = [weights.sum(), weta.sum()] + ([torch.dot(weta, eta)] if squared and not detach_kappa else [])
    sums = global_sums(torch.stack(parts), comm).tolist()
    wsum, kappa = sums[0], sums[1] / sums[0]
    r = torch.mul(eta, 1.0 / kappa).sub_(1.0)
    if squared:
        wd = weights * r  # w φ'(r) / 2
        # Σ_i w_i φ'(r_i) η_i = 2 (Σ w η²/κ - Σ w η), from the forward sums
        kterm, scale = (2.0 * (sums[2] / kappa - sums[1]) if len(sums) == 3 else 0.0), 2.0
    else:
        wd = weights * torch.sign(r)
        kterm, scale = 0.0, 1.0
        if not detach_kappa:  # Σ w sign(r) η over the global batch: one more Allreduce
            kterm = global_sums(torch.dot(wd, eta)[None], comm).item()
    loss = torch.dot(wd, r).item() / wsum  # Σ w r² or Σ w |r|, over W
    # dL/dη = w/(W κ) (φ'(r) - Σ w φ'(r) η/(κ W)), times d det/d v / |Ω|² for dL/dv
    d_eta = torch.add(wd, weights, alpha=-kterm / (scale * kappa * wsum)).mul_(scale / (wsum * kappa))
    gv = ddet.mul_(d_eta.div_(omega2)[:, None])
    return loss, (torch.mm(_outer(gfs, gv), had_t) if multiplicative else gv)


#: use the compiled passes where they apply (tests set False to compare the two paths)
COMPILED = True


def _compiled_rows(*tensors) -> bool:
    return COMPILED and jit_loss.available() and all(
        t.device.type == "cpu" and t.dtype == torch.float64 for t in tensors)


def _loss_compiled(y, gfs, omega2, weights, *, multiplicative: bool, squared: bool, detach_kappa: bool, comm):
    """loss_and_output_gradient by hpcflow.nn.jit_loss: the same global sums, in the same Allreduces."""
    arrays = [t.detach().contiguous().numpy() for t in (y, gfs, omega2, weights)]
    ddet, eta, sums = jit_loss.forward(*arrays, multiplicative)
    parts = sums if squared and not detach_kappa else sums[:2]
    sums = global_sums(torch.from_numpy(parts), comm).tolist()
    wsum, kappa = sums[0], sums[1] / sums[0]
    s_phi, s_deta = jit_loss.residual(eta, arrays[3], kappa, squared)
    scale = 2.0 if squared else 1.0
    kterm = 0.0
    if not detach_kappa:  # Σ_i w_i φ'(r_i) η_i over the global batch
        kterm = 2.0 * (sums[2] / kappa - sums[1]) if squared else global_sums(
            torch.tensor([s_deta], dtype=torch.float64), comm).item()
    gy = jit_loss.backward(eta, arrays[1], arrays[2], arrays[3], ddet, multiplicative=multiplicative,
                           squared=squared, kappa=kappa, alpha=kterm / (scale * kappa * wsum),
                           scale=scale / (wsum * kappa))
    return s_phi / wsum, torch.from_numpy(gy)


class _FusedMetricLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, gfs, omega2, weights, multiplicative: bool, squared: bool, detach_kappa: bool, comm):
        loss, gy = loss_and_output_gradient(y, gfs, omega2, weights, multiplicative=multiplicative,
                                            squared=squared, detach_kappa=detach_kappa, comm=comm)
        ctx.save_for_backward(gy)
        return y.new_tensor(loss)

    @staticmethod
    def backward(ctx, grad_out):
        (gy,) = ctx.saved_tensors
        return gy * grad_out, None, None, None, None, None, None, None


def fused_metric_loss(y, gfs, omega2, weights, *, kind: str = "multiplicative", loss: str = "sigma",
                      detach_kappa: bool = False, comm=None):
    """Loss (eq. B.11 or B.14) of raw outputs y (N, 9) of a 3x3 metric model, with the closed-form backward.

    With `comm` (R > 1): y holds this rank's rows of a global batch; κ and W are global (module docstring).
    """
    if loss not in LOSSES:
        raise ConfigError(f"loss = {loss!r} is not one of {LOSSES}; use 'sigma' or 'ultralocal'")
    return _FusedMetricLoss.apply(y, gfs, omega2, weights, kind == "multiplicative", loss == "ultralocal",
                                  bool(detach_kappa), comm)
