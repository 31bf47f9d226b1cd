"""Metric packing helpers and pointwise losses: closed forms vs LAPACK, gradients vs finite differences."""

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.geometry.measures import kappa, sigma_measure
from hpcflow.metric import adjugate_hermitian, det_gradient, inverse_hermitian, is_positive_definite, loss_and_grad


def random_pd(n, m, seed=0, shift=0.5):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, m, m)) + 1j * rng.normal(size=(n, m, m))
    return a @ a.conj().transpose(0, 2, 1) + shift * np.eye(m)


@pytest.fixture(scope="module")
def quintic():
    return Hypersurface.fermat(3).sample(200, seed=3)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_inverse_and_adjugate_match_lapack(m):
    g = random_pd(50, m, seed=m)
    np.testing.assert_allclose(inverse_hermitian(g), np.linalg.inv(g), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(adjugate_hermitian(g), np.linalg.inv(g) * np.linalg.det(g)[:, None, None],
                               rtol=1e-10, atol=1e-10)


def test_det_gradient_matches_finite_differences():
    g = random_pd(20, 3, seed=7)
    v = pack(g)
    grad = det_gradient(g)
    h = 1e-6
    for i in range(9):
        e = np.zeros(9)
        e[i] = h
        fd = (det_hermitian(unpack(v + e)) - det_hermitian(unpack(v - e))) / (2 * h)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-7, atol=1e-7 * np.abs(fd).max())


def test_positive_definite_matches_eigenvalues():
    rng = np.random.default_rng(1)
    g = random_pd(400, 3, seed=2, shift=0.0) - rng.uniform(0, 3, size=(400, 1, 1)) * np.eye(3)
    expected = np.linalg.eigvalsh(g).min(axis=1) > 0
    assert 0 < expected.sum() < 400
    np.testing.assert_array_equal(is_positive_definite(g), expected)
    g[0, 1, 2] = np.nan
    assert not is_positive_definite(g)[0]


@pytest.mark.parametrize("loss", ["sigma", "ultralocal"])
@pytest.mark.parametrize("weighted", [True, False])
def test_loss_gradient_matches_finite_differences(quintic, loss, weighted):
    ps = quintic
    rng = np.random.default_rng(5)
    g = ps.g_fs * rng.uniform(0.8, 1.2, size=(len(ps), 1, 1))  # not at the FS metric
    v = pack(g)
    k = float(kappa(det_hermitian(g) / ps.omega2, ps.weights))
    ell, grad = loss_and_grad(v, ps.omega2, ps.weights, k, loss=loss, weighted=weighted)
    r = det_hermitian(g) / ps.omega2 / k - 1.0
    keep = np.abs(r) > 1e-3  # away from the kink of |.| for the sigma loss
    assert keep.sum() > 150
    for i in range(9):
        h = 1e-7 * np.abs(v[:, i]).max()
        e = np.zeros(9)
        e[i] = h
        lp = loss_and_grad(v + e, ps.omega2, ps.weights, k, loss=loss, weighted=weighted)[0]
        lm = loss_and_grad(v - e, ps.omega2, ps.weights, k, loss=loss, weighted=weighted)[0]
        fd = (lp - lm) / (2 * h)
        scale = np.abs(grad[keep]).max()
        np.testing.assert_allclose(grad[keep, i], fd[keep], rtol=1e-5, atol=1e-7 * scale)


def test_weighted_sigma_loss_sums_to_sigma_measure(quintic):
    ps = quintic
    g = ps.g_fs * (1.0 + 0.1 * np.arange(len(ps)) / len(ps))[:, None, None]
    eta = det_hermitian(g) / ps.omega2
    k = float(kappa(eta, ps.weights))
    ell, _ = loss_and_grad(pack(g), ps.omega2, ps.weights, k, loss="sigma")
    assert ell.sum() == pytest.approx(float(sigma_measure(eta, ps.weights)), rel=1e-12)
    ell_u, _ = loss_and_grad(pack(g), ps.omega2, ps.weights, k, loss="ultralocal", weighted=False)
    np.testing.assert_allclose(ell_u, (eta / k - 1.0) ** 2, rtol=1e-12)


def test_unknown_loss_is_rejected(quintic):
    with pytest.raises(ValueError, match="loss"):
        loss_and_grad(pack(quintic.g_fs), quintic.omega2, quintic.weights, 1.0, loss="l2")
