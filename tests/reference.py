"""Independent reference computations for tests: the total loss written out with LAPACK determinants, and its
gradient by central finite differences with an error bound (Richardson estimate plus rounding)."""

import numpy as np

from hpcflow.geometry.hermitian import unpack
from roundoff import gamma


def total_loss(v, omega2, weights, loss, weighted, kappa_fixed=None):
    """(L, sum |l_j|): L(v) = sum_j c_j f(eta_j / kappa), kappa = sum w eta / sum w from v unless held."""
    eta = np.linalg.det(unpack(v)).real / omega2
    k = np.sum(weights * eta) / np.sum(weights) if kappa_fixed is None else kappa_fixed
    c = weights / np.sum(weights) if weighted else 1.0
    f = np.abs(1.0 - eta / k) if loss == "sigma" else (eta / k - 1.0) ** 2
    return np.sum(c * f), np.sum(np.abs(c * f))


def _central(v, omega2, weights, rows, loss, weighted, kappa_fixed, h):
    fd, bound = np.empty((len(rows), v.shape[1])), np.empty((len(rows), v.shape[1]))
    for a, i in enumerate(rows):
        for c in range(v.shape[1]):
            step = h * max(abs(v[i, c]), 1.0)
            vp, vm = v.copy(), v.copy()
            vp[i, c] += step
            vm[i, c] -= step
            (lp, ap), (lm, am) = (total_loss(x, omega2, weights, loss, weighted, kappa_fixed) for x in (vp, vm))
            fd[a, c] = (lp - lm) / (2 * step)
            bound[a, c] = gamma(len(omega2) + 40) * (ap + am) / (2 * step)  # N terms of ~30 flops, over 2h
    return fd, bound


def fd_loss_gradient(v, omega2, weights, rows, *, loss, weighted, kappa_fixed=None, h=1e-5):
    """(dL/dv[rows] by central differences at step h/2, its error bound): the O(h^2) truncation error estimated
    from the steps h and h/2 (Richardson, 4/3 |D(h) - D(h/2)|), plus both steps' rounding bounds. The caller
    keeps every eta/kappa away from the kink of |1 - eta/kappa| by more than the step moves it."""
    fd1, b1 = _central(v, omega2, weights, rows, loss, weighted, kappa_fixed, h)
    fd2, b2 = _central(v, omega2, weights, rows, loss, weighted, kappa_fixed, h / 2)
    return fd2, (4 / 3) * np.abs(fd1 - fd2) + b1 + 2 * b2 + 1e-9 * np.abs(fd2).max()


def random_hermitian(rng, n):
    """(n, 3, 3) random Hermitian positive-definite matrices (eigenvalues >= 0.5)."""
    a = rng.standard_normal((n, 3, 3)) + 1j * rng.standard_normal((n, 3, 3))
    return a @ a.conj().transpose(0, 2, 1) + 0.5 * np.eye(3)


def load_relu_ntk_fixture(path):
    """A neural-tangents fixture of tests/reference/make_relu_ntk_fixture.py with its lists as arrays: complex
    points, network inputs, and per setting the NTK, NNGP and NNGP diagonal."""
    import json

    data = json.loads(path.read_text())
    data["points"] = np.array(data["points_real"]) + 1j * np.array(data["points_imag"])
    data["inputs"] = np.array(data["inputs"])
    for s in data["settings"]:
        for key in ("ntk", "nngp", "nngp_diagonal"):
            s[key] = np.array(s[key])
    return data
