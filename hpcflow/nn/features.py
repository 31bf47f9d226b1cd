"""Network inputs and Hermitian algebra on packed components (order of hpcflow.geometry.hermitian.pack).

A Hermitian 3x3 metric is handled as its 9 real components v = (g00, g11, g22, Re g01, Im g01, Re g02,
Im g02, Re g12, Im g12), so the whole network, loss and NTK stay real (torch.func needs no complex
autograd). m is inferred from the last axis (m^2 components), any m >= 1 works.
"""

from __future__ import annotations

import numpy as np

from hpcflow.nn._torch import require_torch

torch = require_torch()


def point_features(points) -> np.ndarray:
    """Real network inputs (Re z, Im z) of chart-normalised homogeneous points (N, n+1) -> (N, 2(n+1))."""
    z = np.asarray(points)
    return np.concatenate([z.real, z.imag], axis=-1).astype(np.float64)


def _m(v) -> int:
    m = int(round(v.shape[-1] ** 0.5))
    if m * m != v.shape[-1]:
        raise ValueError(f"last axis has {v.shape[-1]} components, not m^2")
    return m


def _offdiag_pairs(m: int):
    return [(a, b) for a in range(m) for b in range(a + 1, m)]


def hadamard_packed(a, b):
    """Packed components of the element-wise (Hadamard) product A ⊙ B of Hermitian A, B (Hermitian again).

    Diagonal: a_ii b_ii; off-diagonal entries are complex products (x + iy)(u + iw).
    """
    m = _m(a)
    parts = [a[..., :m] * b[..., :m]]
    for k in range(len(_offdiag_pairs(m))):
        x, y = a[..., m + 2 * k], a[..., m + 2 * k + 1]
        u, w = b[..., m + 2 * k], b[..., m + 2 * k + 1]
        parts.append(torch.stack([x * u - y * w, x * w + y * u], dim=-1))
    return torch.cat(parts, dim=-1)


def det_packed(v):
    """Real determinant of the Hermitian matrices given by packed components v (..., m^2), m <= 3."""
    m = _m(v)
    if m == 1:
        return v[..., 0]
    if m == 2:
        return v[..., 0] * v[..., 1] - v[..., 2] ** 2 - v[..., 3] ** 2
    if m == 3:
        a, b, c = v[..., 0], v[..., 1], v[..., 2]
        xr, xi, yr, yi, zr, zi = (v[..., k] for k in range(3, 9))  # x = g01, y = g02, z = g12
        # 2 Re(x z conj(y)), with x z = (xr zr - xi zi) + i (xr zi + xi zr)
        re_xz, im_xz = xr * zr - xi * zi, xr * zi + xi * zr
        return (a * b * c + 2.0 * (re_xz * yr + im_xz * yi)
                - a * (zr ** 2 + zi ** 2) - b * (yr ** 2 + yi ** 2) - c * (xr ** 2 + xi ** 2))
    raise ValueError(f"det_packed supports m <= 3, got m = {m}")


def positive_definite_packed(v):
    """Boolean (N,): the Hermitian matrix of packed components v (N, m²) is positive definite, every pivot of its
    Cholesky factorisation g = L D L^H (L unit lower triangular) > 0, in float64. m <= 3 in closed form: the pivots
    from a few elementwise operations on the packed components, on v's device (d_1 = a, d_2 = b - |x|²/a,
    d_3 = s - |t|²/d_2 with t, s of the Schur complement of a), the elimination `hermitian.det_hermitian` uses;
    larger m by torch.linalg.cholesky_ex. A matrix with a value that is not finite is not positive definite."""
    m = _m(v)
    v = v.to(torch.float64)
    if m > 3:
        g = torch.zeros(v.shape[0], m, m, dtype=torch.complex128, device=v.device)
        idx = torch.arange(m, device=v.device)
        g[:, idx, idx] = v[:, :m].to(torch.complex128)
        a, b = (torch.as_tensor(i, device=v.device) for i in np.triu_indices(m, 1))
        off = torch.complex(v[:, m::2], v[:, m + 1::2])
        g[:, a, b], g[:, b, a] = off, off.conj()
        chol, info = torch.linalg.cholesky_ex(g)
        return (info == 0) & torch.isfinite(torch.view_as_real(chol)).all(dim=(1, 2, 3))
    a = v[:, 0]
    ok = a > 0  # (False for nan)
    if m == 1:
        return ok
    xr, xi = v[:, m], v[:, m + 1]
    d2 = v[:, 1] - (xr * xr + xi * xi) / a
    ok &= d2 > 0
    if m == 3:
        yr, yi, zr, zi = v[:, 5], v[:, 6], v[:, 7], v[:, 8]
        tr = zr - (xr * yr + xi * yi) / a  # t = z - conj(x) y / a
        ti = zi - (xr * yi - xi * yr) / a
        s = v[:, 2] - (yr * yr + yi * yi) / a  # s = c - |y|²/a
        ok &= (s - (tr * tr + ti * ti) / d2) > 0
    return ok & torch.isfinite(v).all(dim=1)
