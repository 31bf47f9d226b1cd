"""The fused network loss's per-row passes (hpcflow.nn.fused_loss) as two loops compiled by Numba.

The torch form spends ~20 % of a training step on its (N, 81) outer products and (81, 9) table products, which
stream memory (measured ~0.55 ms per product on 2048 rows, one core). Here each row's metric v = g_FS ⊙ y + g_FS
(or g_FS + y), det v (eq. B.11's det g), its gradient, η = det/|Ω|² and, after the global κ, dL/dy stay in
registers: one pass forward, one backward. Same formulas as `fused_loss.det_and_grad_packed` and the Hadamard
map of `hpcflow.nn.features`, summed in another order, so the two paths agree to rounding (tests). Used for CPU
float64 tensors when Numba imports; otherwise the torch form runs.
"""

from __future__ import annotations

import functools

import numpy as np

from hpcflow.kernels.jit import numba_version


def available() -> bool:
    """Whether the compiled passes can run (Numba imports)."""
    return numba_version() is not None


@functools.lru_cache(maxsize=1)
def _compiled():
    import numba

    jit = numba.njit(nogil=True, boundscheck=False, error_model="numpy", cache=True)

    @jit
    def forward(y, gfs, omega2, weights, multiplicative, ddet, eta):  # pragma: no cover - runs compiled
        """ddet (N, 9) = d det/d v, eta (N,) = det v/|Ω|²; returns (Σ w, Σ w η, Σ w η²) of these rows."""
        sw = swe = swe2 = 0.0
        for n in range(y.shape[0]):
            g = gfs[n]
            u = y[n]
            if multiplicative:  # v = g + g ⊙ y: real diagonal products, complex off-diagonal products
                a = g[0] + g[0] * u[0]
                b = g[1] + g[1] * u[1]
                c = g[2] + g[2] * u[2]
                xr = g[3] + g[3] * u[3] - g[4] * u[4]
                xi = g[4] + g[3] * u[4] + g[4] * u[3]
                yr = g[5] + g[5] * u[5] - g[6] * u[6]
                yi = g[6] + g[5] * u[6] + g[6] * u[5]
                zr = g[7] + g[7] * u[7] - g[8] * u[8]
                zi = g[8] + g[7] * u[8] + g[8] * u[7]
            else:
                a, b, c = g[0] + u[0], g[1] + u[1], g[2] + u[2]
                xr, xi, yr, yi = g[3] + u[3], g[4] + u[4], g[5] + u[5], g[6] + u[6]
                zr, zi = g[7] + u[7], g[8] + u[8]
            re_xz, im_xz = xr * zr - xi * zi, xr * zi + xi * zr
            xx, yy, zz = xr * xr + xi * xi, yr * yr + yi * yi, zr * zr + zi * zi
            det = a * b * c + 2.0 * (re_xz * yr + im_xz * yi) - a * zz - b * yy - c * xx
            d = ddet[n]
            d[0] = b * c - zz
            d[1] = a * c - yy
            d[2] = a * b - xx
            d[3] = 2.0 * (zr * yr + zi * yi - c * xr)
            d[4] = 2.0 * (zr * yi - zi * yr - c * xi)
            d[5] = 2.0 * (re_xz - b * yr)
            d[6] = 2.0 * (im_xz - b * yi)
            d[7] = 2.0 * (xr * yr + xi * yi - a * zr)
            d[8] = 2.0 * (xr * yi - xi * yr - a * zi)
            e = det / omega2[n]
            eta[n] = e
            w = weights[n]
            sw += w
            swe += w * e
            swe2 += w * e * e
        return sw, swe, swe2

    @jit
    def residual(eta, weights, kappa, squared):  # pragma: no cover - runs compiled
        """(Σ w φ(r), Σ w φ'(r) η / scale) of these rows, r = η/κ - 1, φ = r² (scale 2) or |r| (scale 1)."""
        s_phi = s_deta = 0.0
        inv = 1.0 / kappa
        for n in range(eta.shape[0]):
            r = eta[n] * inv - 1.0
            w = weights[n]
            wd = w * r if squared else w * np.sign(r)
            s_phi += wd * r
            s_deta += wd * eta[n]
        return s_phi, s_deta

    @jit
    def backward(eta, gfs, omega2, weights, ddet, multiplicative, squared, kappa, alpha, scale, gy):
        # pragma: no cover - runs compiled
        """gy (N, 9) = dL/dy with dL/dη = (w φ'(r)/scale - alpha w) scale, dL/dv = dL/dη ddet/|Ω|²."""
        inv = 1.0 / kappa
        for n in range(eta.shape[0]):
            r = eta[n] * inv - 1.0
            w = weights[n]
            wd = w * r if squared else w * np.sign(r)
            f = (wd - alpha * w) * scale / omega2[n]
            d = ddet[n]
            out = gy[n]
            if multiplicative:  # Mᵀ u for M = ∂(g ⊙ y)/∂y: u_K g_K on the diagonal, conj(g) u per complex pair
                g = gfs[n]
                for k in range(3):
                    out[k] = f * d[k] * g[k]
                for k in range(3, 9, 2):
                    ur, ui = f * d[k], f * d[k + 1]
                    out[k] = ur * g[k] + ui * g[k + 1]
                    out[k + 1] = ui * g[k] - ur * g[k + 1]
            else:
                for k in range(9):
                    out[k] = f * d[k]

    return forward, residual, backward


def forward(y: np.ndarray, gfs: np.ndarray, omega2: np.ndarray, weights: np.ndarray, multiplicative: bool):
    """(ddet (N, 9), η (N,), [Σ w, Σ w η, Σ w η²]) of raw outputs y; all arrays float64, C-contiguous."""
    n = y.shape[0]
    ddet, eta = np.empty((n, 9)), np.empty(n)
    sums = _compiled()[0](y, gfs, omega2, weights, bool(multiplicative), ddet, eta)
    return ddet, eta, np.asarray(sums)


def residual(eta: np.ndarray, weights: np.ndarray, kappa: float, squared: bool) -> tuple[float, float]:
    """(Σ w φ(r), Σ w φ'(r) η / scale) of these rows for r = η/κ - 1."""
    return _compiled()[1](eta, weights, float(kappa), bool(squared))


def backward(eta, gfs, omega2, weights, ddet, *, multiplicative: bool, squared: bool, kappa: float, alpha: float,
             scale: float) -> np.ndarray:
    """dL/dy (N, 9) of these rows (module docstring of hpcflow.nn.fused_loss for alpha and scale)."""
    gy = np.empty((eta.shape[0], 9))
    _compiled()[2](eta, gfs, omega2, weights, ddet, bool(multiplicative), bool(squared), float(kappa), float(alpha),
                   float(scale), gy)
    return gy


def warm() -> None:
    """Load (or compile) the three loops now, on one row, so that the first training step is not charged ~1 s."""
    one, ones = np.zeros((1, 9)), np.ones((1, 9))
    ddet, eta, _ = forward(one, ones, np.ones(1), np.ones(1), True)
    residual(eta, np.ones(1), 1.0, True)
    backward(eta, ones, np.ones(1), np.ones(1), ddet, multiplicative=True, squared=True, kappa=1.0, alpha=0.0,
             scale=1.0)
