"""Batched roots of q(t) = p(a + t b) for many lines at once (vectorised Aberth-Ehrlich, Newton polish).

The coefficients of q (degree d = n+1) come from evaluating p at the d+1 roots of unity and an inverse
DFT, so arbitrary monomials work. Aberth-Ehrlich iterates all d roots of all lines together (cubic
convergence); lines that do not converge fall back to companion-matrix eigenvalues; every root is then
polished with Newton steps on p itself along the line (not on the DFT coefficients).
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module, to_host

ABERTH_TOL = 1e-14
ABERTH_MAX_ITER = 60
POLISH_STEPS = 1


def line_coefficients(surface, a, b):
    """Coefficients c (L, d+1) of q(t) = sum_m c_m t^m = p(a + t b), lowest order first."""
    xp = array_module(a)
    d = surface.degree
    w = xp.exp(2j * np.pi * xp.arange(d + 1) / (d + 1))
    vals = surface.p(a[:, None, :] + w[None, :, None] * b[:, None, :])  # (L, d+1)
    return xp.fft.fft(vals, axis=1) / (d + 1)  # c_m = (1/(d+1)) sum_k q(w^k) w^{-km}


def _horner(c, t):
    """q(t) and q'(t) for coefficient rows c (L, d+1) at roots t (L, d)."""
    xp = array_module(t)
    d = c.shape[1] - 1
    q = xp.broadcast_to(c[:, d:d + 1], t.shape).astype(np.complex128)
    dq = xp.zeros_like(q)
    for m in range(d - 1, -1, -1):
        dq = dq * t + q
        q = q * t + c[:, m:m + 1]
    return q, dq


def _aberth_step(t, c):
    """One Aberth-Ehrlich correction for all roots t (L, d) of polynomials c (L, d+1); a step that is not finite
    (q overflows at a root far out, dq = 0, two equal roots) is 0, so NumPy's warnings of such steps are silenced."""
    xp = array_module(t)
    d = t.shape[1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q, dq = _horner(c, t)
        ratio = q / dq
        s = xp.zeros_like(t)
        for sh in range(1, d):
            s += 1.0 / (t - xp.roll(t, sh, axis=1))
        step = ratio / (1.0 - ratio * s)
    return xp.where(xp.isfinite(step), step, 0.0)


def aberth(c, *, tol=ABERTH_TOL, max_iter=ABERTH_MAX_ITER, unmasked_iter=8):
    """All roots (L, d) of the polynomials with coefficients c (L, d+1); returns (roots, converged mask).

    The first `unmasked_iter` sweeps update every line (cheaper than masking: almost none converge sooner),
    later sweeps only the lines still moving by more than tol relative.
    """
    xp = array_module(c)
    L, d1 = c.shape
    d = d1 - 1
    lead = c[:, d]
    # Initial guesses on a circle of radius (|c0/cd|)^(1/d), rotated off the real axis.
    with np.errstate(divide="ignore", invalid="ignore"):
        r = xp.abs(c[:, 0] / lead) ** (1.0 / d)
    r = xp.where(xp.isfinite(r) & (r > 0), r, 1.0)
    ang = 2 * np.pi * xp.arange(d) / d + 0.4
    t = r[:, None] * xp.exp(1j * ang)[None, :]
    for _ in range(min(unmasked_iter, max_iter)):
        t -= _aberth_step(t, c)
    active = xp.ones(L, dtype=bool)
    idx = xp.arange(L)
    for _ in range(max_iter - min(unmasked_iter, max_iter)):
        ia = idx[active]
        if ia.size == 0:
            break
        ta = t[ia]
        step = _aberth_step(ta, c[ia])
        t[ia] = ta - step
        done = xp.all(xp.abs(step) <= tol * xp.maximum(1.0, xp.abs(ta)), axis=1)
        active[ia[done]] = False
    return t, ~active


def line_roots(surface, a, b, *, grad_norms: bool = False):
    """Parameters t (L, d) with p(a + t b) = 0 for each line (a[l], b[l]), polished to full precision.
    grad_norms=True: also |grad p| (L, d) there, as the last Newton step evaluated it (just before that step).
    Ill-conditioned polynomials (e.g. Dwork at |psi| ~ 1e300) overflow to inf or nan in the coefficients, the Aberth
    and Newton steps and |grad p|: a step that is not finite is not taken, and a root that is not finite has no finite
    residual, so the caller drops it (`Hypersurface.line_points`); NumPy's warnings of these values are silenced."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _line_roots(surface, a, b, grad_norms)


def _line_roots(surface, a, b, grad_norms: bool):
    xp = array_module(a)
    c = line_coefficients(surface, a, b)
    t, ok = aberth(c)
    if not bool(ok.all()):
        bad = xp.nonzero(~ok)[0]
        t[bad] = xp.asarray(_companion_roots(to_host(c[bad])))
    # Newton polish on p along the line: t <- t - p(z)/(grad p(z) . b).
    for _ in range(POLISH_STEPS):
        z = a[:, None, :] + t[..., None] * b[:, None, :]
        pz, gz = surface.p_and_grad(z)
        dpz = (gz * b[:, None, :]).sum(axis=-1)
        step = pz / dpz
        t = t - xp.where(xp.isfinite(step), step, 0.0)
    if not grad_norms:
        return t
    return t, xp.sqrt(xp.sum(gz.real ** 2 + gz.imag ** 2, axis=-1))


def _companion_roots(c):
    """Fallback: eigenvalues of the companion matrices (slow but robust)."""
    L, d1 = c.shape
    d = d1 - 1
    comp = np.zeros((L, d, d), dtype=np.complex128)
    comp[:, 1:, :-1] = np.eye(d - 1)
    comp[:, :, -1] = -c[:, :d] / c[:, d:d1]
    return np.linalg.eigvals(comp)
