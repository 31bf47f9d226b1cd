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


def pack(g):
    """Hermitian (..., m, m) -> m^2 real components (the paper's multi-index I, sec. 3.3).

    Order: the m real diagonal entries g_aa, then for each a < b in row-major order Re g_ab, Im g_ab.
    For m = 3: I = (g00, g11, g22, Re g01, Im g01, Re g02, Im g02, Re g12, Im g12).
    """
    xp = array_module(g)
    m = g.shape[-1]
    iu = [(a, b) for a in range(m) for b in range(a + 1, m)]
    parts = [g[..., a, a].real for a in range(m)]
    for a, b in iu:
        parts += [g[..., a, b].real, g[..., a, b].imag]
    return xp.stack(parts, axis=-1)


def unpack(v, m: int | None = None):
    """Inverse of `pack`: m^2 real components (..., m^2) -> Hermitian (..., m, m) complex128."""
    xp = array_module(v)
    if m is None:
        m = int(round(v.shape[-1] ** 0.5))
    if v.shape[-1] != m * m:
        raise ValueError(f"last axis has {v.shape[-1]} components, expected m^2 = {m * m}")
    g = xp.zeros(v.shape[:-1] + (m, m), dtype=xp.complex128)
    for a in range(m):
        g[..., a, a] = v[..., a]
    k = m
    for a in range(m):
        for b in range(a + 1, m):
            g[..., a, b] = v[..., k] + 1j * v[..., k + 1]
            g[..., b, a] = v[..., k] - 1j * v[..., k + 1]
            k += 2
    return g
