"""Batched determinants of small Hermitian matrices (closed forms for 1x1..3x3, faster than LAPACK there), and the
check that arrays passed as metrics are Hermitian and positive definite."""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module, to_host

#: g counts as Hermitian when at each point |g - g^H| <= HERMITIAN_ULPS eps |g|, |.| the largest real or imaginary
#: part of an entry, eps that of g's precision: a metric formed in floating point as sums of products is Hermitian to
#: a few eps of its largest entry (a few hundred with strong cancellation); one that is not differs by its entries
HERMITIAN_ULPS = 4096


def det_hermitian(g):
    """Real determinant of Hermitian matrices g (..., m, m): closed forms for m <= 2, for m = 3 the product of the
    pivots of g = L D L^H (Gaussian elimination, backward stable for positive definite g: relative error ~ eps
    cond(g), where the cofactor expansion lost det's digits to cancellation of its ~|g|^3 terms, as for g_FS of
    a chart with a small dp/dz_j), LAPACK for m > 3."""
    xp = array_module(g)
    m = g.shape[-1]
    if m == 1:
        return g[..., 0, 0].real.copy()
    if m == 2:
        return (g[..., 0, 0].real * g[..., 1, 1].real - (g[..., 0, 1] * g[..., 1, 0]).real)
    if m == 3:
        a, b, c = g[..., 0, 0].real, g[..., 1, 1].real, g[..., 2, 2].real
        x, y, z = g[..., 0, 1], g[..., 0, 2], g[..., 1, 2]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a pivot 0: cofactors below
            d2 = b - (x.real * x.real + x.imag * x.imag) / a  # Schur complement of a: [[d2, t], [t^H, s]]
            t = z - x.conj() * y / a
            s = c - (y.real * y.real + y.imag * y.imag) / a
            d3 = s - (t.real * t.real + t.imag * t.imag) / d2
            det = a * d2 * d3
        if not bool(xp.all(xp.isfinite(det))):
            det = xp.where(xp.isfinite(det), det, _cofactor_det3(a, b, c, x, y, z))
        return det
    return xp.linalg.det(g).real


def _cofactor_det3(a, b, c, x, y, z):
    """det of Hermitian 3x3 [[a, x, y], [., b, z], [., ., c]] by cofactors: where a pivot of the elimination is 0."""
    return (a * b * c + 2.0 * (x * z * y.conj()).real
            - a * (z * z.conj()).real - b * (y * y.conj()).real - c * (x * x.conj()).real)


def is_positive_definite(g):
    """Boolean (...,): Hermitian g is positive definite and finite (leading principal minors > 0, Sylvester)."""
    xp = array_module(g)
    m = g.shape[-1]
    finite = xp.all(xp.isfinite(g.real) & xp.isfinite(g.imag), axis=(-2, -1))
    ok = finite.copy()
    for k in range(1, m + 1):
        ok &= det_hermitian(g[..., :k, :k]) > 0
    return ok


def check_metrics(g, name: str = "g"):
    """g (..., m, m) as an array once every matrix is a metric: finite, Hermitian (to HERMITIAN_ULPS eps) and
    positive definite (`is_positive_definite`); else one ValueError naming `name`, the first point that is not and
    why (TypeError for an array that is not numeric or not of square matrices). O(N m^3), closed forms for m <= 3."""
    xp = array_module(g)
    g = xp.asarray(g)
    if g.dtype.kind not in "iufc" or g.ndim < 2 or g.shape[-1] != g.shape[-2]:
        raise TypeError(f"{name} of dtype {g.dtype} and shape {g.shape} is not an array of metrics; pass Hermitian "
                        "positive definite matrices, shape (N, m, m)")
    m = g.shape[-1]
    flat = g.reshape((-1, m, m)).astype(np.result_type(g.dtype, np.float32), copy=False)
    asym, scale = _asymmetry(flat.reshape(-1, m * m), m)
    ulps = HERMITIAN_ULPS * float(np.finfo(flat.dtype).eps)
    ok = (asym <= ulps * scale) & is_positive_definite(flat)
    if bool(xp.all(ok)):
        return g
    k = int(np.argmin(to_host(ok)))
    if not bool(xp.all(xp.isfinite(flat[k]))):
        why = "holds values that are not finite"
    elif not float(asym[k]) <= ulps * float(scale[k]):
        why = (f"is not Hermitian: |g - g^H| = {float(asym[k]):.3g}, more than {ulps:.2g} times its largest entry "
               f"{float(scale[k]):.3g} (largest real or imaginary parts)")
    else:
        minors = ", ".join(f"{float(det_hermitian(flat[k, :j, :j])):.3g}" for j in range(1, m + 1))
        why = f"is not positive definite (leading principal minors {minors})"
    raise ValueError(f"{name}[{k}] {why}; pass Hermitian positive definite metrics, shape (N, m, m) (g_FS, or a "
                     "perturbation of it that keeps every leading principal minor > 0)")


def _asymmetry(rows, m: int):
    """(|g - g^H|, |g|) per row of flattened m x m matrices, |.| the largest real or imaginary part of an entry (on
    the real and imaginary parts' views: one gather of the pairs a < b)."""
    xp = array_module(rows)
    a, b = np.triu_indices(m, 1)
    up, lo = a * m + b, b * m + a
    re = rows.real
    parts, scale = [xp.abs(re[:, up] - re[:, lo])], xp.max(xp.abs(re), axis=1)
    if xp.iscomplexobj(rows):
        im = rows.imag
        parts += [xp.abs(im[:, up] + im[:, lo]), 2 * xp.abs(im[:, np.arange(m) * (m + 1)])]
        scale = xp.maximum(scale, xp.max(xp.abs(im), axis=1))
    asym = xp.zeros(rows.shape[0], dtype=re.dtype)
    for part in parts:
        if part.shape[1]:  # (no pair a < b for m = 1)
            asym = xp.maximum(asym, xp.max(part, axis=1))
    return asym, scale


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
