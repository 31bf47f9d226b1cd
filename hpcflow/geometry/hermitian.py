"""Batched determinants of small Hermitian matrices, closed forms for 1x1..3x3 (faster than LAPACK there)."""

from __future__ import annotations

from hpcflow.backend import array_module


def det_hermitian(g):
    """Real determinant of Hermitian matrices g (..., m, m); closed forms for m <= 3, LAPACK otherwise."""
    xp = array_module(g)
    m = g.shape[-1]
    if m == 1:
        return g[..., 0, 0].real.copy()
    if m == 2:
        return (g[..., 0, 0].real * g[..., 1, 1].real - (g[..., 0, 1] * g[..., 1, 0]).real)
    if m == 3:
        a, b, c = g[..., 0, 0].real, g[..., 1, 1].real, g[..., 2, 2].real
        x, y, z = g[..., 0, 1], g[..., 0, 2], g[..., 1, 2]
        return (a * b * c + 2.0 * (x * z * y.conj()).real
                - a * (z * z.conj()).real - b * (y * y.conj()).real - c * (x * x.conj()).real)
    return xp.linalg.det(g).real
