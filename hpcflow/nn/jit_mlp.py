"""The MetricMLP's forward and backward (hpcflow.nn.fast_step) as two loops compiled by Numba, for one thread.

A step of the 3x64 network on a small batch is bound by the ~45 torch operator calls of its forward and backward
(~8 µs each), not by arithmetic; here the whole forward is one call and the whole backward another: the matrix
products through BLAS (np.dot), the bias, activation, |z|² features and their derivatives in loops over the
rows. The formulas are fast_step's (GELU exact: z Φ(z), GELU' = Φ(z) + z φ(z)), so both paths agree to rounding.
Buffers are preallocated for the largest batch seen and used as row slices.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _compiled():
    import math

    import numba

    jit = numba.njit(nogil=True, boundscheck=False, error_model="numpy", cache=True)
    sqrt1_2 = 0.7071067811865476  # 1/sqrt(2)
    inv_sqrt_2pi = 0.3989422804014327  # 1/sqrt(2 pi)

    @jit
    def forward(x, abs2, ws, bs, relu, hs, zs, y):  # pragma: no cover - runs compiled
        """hs[0] = features of x, z_l = h_l W_lᵀ + b_l, h_{l+1} = act(z_l), y = h_L W_outᵀ + b_out (rows of x)."""
        n, nx = x.shape
        h0 = hs[0][:n]
        half = nx // 2
        for i in range(n):
            for k in range(nx):
                h0[i, k] = x[i, k]
            if abs2:
                for k in range(half):
                    h0[i, nx + k] = x[i, k] * x[i, k] + x[i, half + k] * x[i, half + k]
        depth = len(ws) - 1
        for layer in range(depth):
            z = zs[layer][:n]
            h = hs[layer + 1][:n]
            np.dot(hs[layer][:n], ws[layer].T, z)
            b = bs[layer]
            for i in range(n):
                for k in range(z.shape[1]):
                    v = z[i, k] + b[k]
                    z[i, k] = v
                    if relu:
                        h[i, k] = v if v > 0.0 else 0.0
                    else:
                        h[i, k] = 0.5 * v * (1.0 + math.erf(v * sqrt1_2))
        np.dot(hs[depth][:n], ws[depth].T, y)
        b = bs[depth]
        for i in range(n):
            for k in range(y.shape[1]):
                y[i, k] += b[k]

    @jit
    def backward(delta, ws, relu, hs, zs, ds, grad_w, grad_b):  # pragma: no cover - runs compiled
        """dW_l = δ_lᵀ h_l, db_l = Σ_rows δ_l, δ_{l-1} = (δ_l W_l) ⊙ act'(z_{l-1}), from the output down."""
        n = delta.shape[0]
        d = delta
        for layer in range(len(ws) - 1, -1, -1):
            np.dot(d.T, hs[layer][:n], grad_w[layer])
            gb = grad_b[layer]
            for k in range(gb.shape[0]):
                gb[k] = 0.0
            for i in range(n):
                for k in range(gb.shape[0]):
                    gb[k] += d[i, k]
            if layer:
                dh = ds[layer - 1][:n]
                np.dot(d, ws[layer], dh)
                h, z = hs[layer][:n], zs[layer - 1][:n]
                for i in range(n):
                    for k in range(dh.shape[1]):
                        if relu:
                            if h[i, k] <= 0.0:
                                dh[i, k] = 0.0
                        else:
                            v = z[i, k]
                            cdf = 0.5 * (1.0 + math.erf(v * sqrt1_2))
                            dh[i, k] *= cdf + v * math.exp(-0.5 * v * v) * inv_sqrt_2pi
                d = dh

    return forward, backward


class CompiledMLP:
    """Forward/backward of one MetricMLP: weights, biases and gradient buffers as NumPy views of its parameters and
    of the reducer's flat buffer (updated in place), activations in buffers for the largest batch seen."""

    def __init__(self, weights, biases, grad_w, grad_b, *, features: str, relu: bool):
        # tuples, not numba.typed.List: a typed List compiles its methods in every new process (~1.5 s)
        self.ws, self.bs, self.grad_w, self.grad_b = tuple(weights), tuple(biases), tuple(grad_w), tuple(grad_b)
        self.abs2, self.relu = features == "reim_abs2", bool(relu)
        self.widths = [w.shape[1] for w in weights] + [weights[-1].shape[0]]  # h_0 .. h_L, then y
        self.rows = 0

    def _buffers(self, rows: int) -> None:
        if rows <= self.rows:
            return
        self.rows = max(rows, 2 * self.rows)
        hidden = self.widths[1:-1]
        self.hs = tuple(np.empty((self.rows, w)) for w in self.widths[:-1])
        self.zs = tuple(np.empty((self.rows, w)) for w in hidden)  # a MetricMLP has >= 1 hidden layer
        self.ds = tuple(np.empty((self.rows, w)) for w in hidden)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs y (rows, n_out) for features x (C-contiguous float64)."""
        self._buffers(x.shape[0])
        y = np.empty((x.shape[0], self.widths[-1]))
        _compiled()[0](x, self.abs2, self.ws, self.bs, self.relu, self.hs, self.zs, y)
        return y

    def backward(self, delta: np.ndarray) -> None:
        """Parameter gradients of the last forward's rows for dL/dy = delta, written into grad_w / grad_b."""
        _compiled()[1](delta, self.ws, self.relu, self.hs, self.zs, self.ds, self.grad_w, self.grad_b)

    def warm(self) -> None:
        """Load (or compile) both loops on one row of zeros now, before the first epoch's clock starts (the
        gradient buffers are overwritten; every step writes them whole)."""
        n_x = self.widths[0] * 2 // 3 if self.abs2 else self.widths[0]
        self.forward(np.zeros((1, n_x)))
        self.backward(np.zeros((1, self.widths[-1])))
