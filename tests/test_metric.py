"""Metric packing helpers and pointwise losses: closed forms vs LAPACK, gradients vs finite differences."""

import math
import threading

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.geometry.measures import kappa, sigma_measure
from hpcflow.metric import adjugate_hermitian, det_gradient, inverse_hermitian, is_positive_definite, loss_and_grad
from reference import fd_loss_gradient, total_loss


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


@pytest.fixture(scope="module")
def off_fs(quintic):
    """Metrics away from g_FS and away from the kink eta = kappa of the sigma loss."""
    rng = np.random.default_rng(5)
    factor = rng.choice([-1.0, 1.0], size=len(quintic)) * rng.uniform(0.05, 0.3, size=len(quintic))
    eta_fs = np.linalg.det(quintic.g_fs).real / quintic.omega2
    g = quintic.g_fs * ((1.0 + factor) / eta_fs)[:, None, None] ** (1.0 / 3.0)  # eta_j = 1 + factor_j
    return pack(g)


@pytest.mark.parametrize("form", ["exact", "fixed"])
@pytest.mark.parametrize("loss", ["sigma", "ultralocal"])
@pytest.mark.parametrize("weighted", [True, False])
def test_loss_gradient_matches_finite_differences_of_the_total_loss(quintic, off_fs, form, loss, weighted):
    """dL/dv against central differences of L(v) = sum_j l_j, kappa recomputed from v (exact) or held (fixed);
    the tolerance is the Richardson estimate of the O(h^2) truncation error plus the rounding bound."""
    ps, v = quintic, off_fs
    eta = np.linalg.det(unpack(v)).real / ps.omega2
    k = float(kappa(eta, ps.weights))
    r = eta / k - 1.0
    h = 1e-5  # relative step; it moves any r_j by << min |r_j|, so no point crosses the kink
    assert np.abs(r).min() > 1e3 * h
    ell, grad = loss_and_grad(v, ps.omega2, ps.weights, k, loss=loss, weighted=weighted, kappa_gradient=form)
    assert ell.sum() == pytest.approx(total_loss(v, ps.omega2, ps.weights, loss, weighted)[0], rel=1e-12)
    rows = np.arange(0, len(ps), 13)
    fd, tol = fd_loss_gradient(v, ps.omega2, ps.weights, rows, loss=loss, weighted=weighted, h=h,
                               kappa_fixed=None if form == "exact" else k)
    assert np.all(np.abs(grad[rows] - fd) <= tol)
    # the two forms differ by far more than that tolerance: the test tells them apart
    other = loss_and_grad(v, ps.omega2, ps.weights, k, loss=loss, weighted=weighted,
                          kappa_gradient="fixed" if form == "exact" else "exact")[1]
    assert np.abs(other[rows] - fd).max() > 100 * tol.max()


def test_split_points_with_global_sums_give_the_whole_set_gradient(quintic, off_fs):
    """Two halves as two ranks: weight_sum and an allsum over both halves reproduce the whole set's rows."""
    ps, v = quintic, off_fs
    k = float(kappa(np.linalg.det(unpack(v)).real / ps.omega2, ps.weights))
    half = len(ps) // 2 + 7
    parts = [slice(0, half), slice(half, None)]
    slots, barrier = [None, None], threading.Barrier(2)

    def allsum_for(rank):
        def allsum(x):  # both ranks call it in the same order, like MPI_Allreduce
            slots[rank] = np.array(x)
            barrier.wait()
            total = math.fsum(np.concatenate(slots).tolist())
            barrier.wait()
            return total
        return allsum

    for loss in ("sigma", "ultralocal"):
        for weighted in (True, False):
            whole = loss_and_grad(v, ps.omega2, ps.weights, k, loss=loss, weighted=weighted)[1]
            out = [None, None]

            def run(rank, loss=loss, weighted=weighted):
                s = parts[rank]
                out[rank] = loss_and_grad(v[s], ps.omega2[s], ps.weights[s], k, loss=loss, weighted=weighted,
                                          weight_sum=math.fsum(ps.weights.tolist()), allsum=allsum_for(rank))[1]

            threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            # the same elementwise arithmetic and correctly rounded global sums: identical rows
            np.testing.assert_array_equal(np.concatenate(out), whole)
            local = loss_and_grad(v[parts[0]], ps.omega2[parts[0]], ps.weights[parts[0]], k, loss=loss,
                                  weighted=weighted)[1]
            assert np.abs(local - whole[parts[0]]).max() > 1e-6 * np.abs(whole).max()  # sums matter


def test_unknown_kappa_gradient_is_rejected(quintic):
    with pytest.raises(ValueError, match="kappa_gradient"):
        loss_and_grad(pack(quintic.g_fs), quintic.omega2, quintic.weights, 1.0, kappa_gradient="frozen")


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


def test_kappa_and_sigma_of_single_precision_inputs_are_float64():
    """float32 eta and weights are summed in float64: kappa and sigma are float64 and agree with exact (fraction)
    sums of the float32 values given to float64 roundoff, not float32's."""
    from fractions import Fraction

    rng = np.random.default_rng(3)
    eta = rng.uniform(0.5, 2.0, 20001).astype(np.float32)
    w = rng.uniform(0.0, 3.0, 20001).astype(np.float32)
    ew = [Fraction(float(a)) for a in eta], [Fraction(float(b)) for b in w]
    k_exact = sum(a * b for a, b in zip(*ew)) / sum(ew[1])
    k = kappa(eta, w)
    assert np.asarray(k).dtype == np.float64
    assert abs(float(k) - float(k_exact)) <= 1e-13 * float(k_exact)
    s = sigma_measure(eta, w)
    assert np.asarray(s).dtype == np.float64
    # sigma = sum w |1 - eta/kappa| / sum w with the exact kappa: float64 division of each term only
    s_ref = sum(b * abs(1 - a / k_exact) for a, b in zip(*ew)) / sum(ew[1])
    assert abs(float(s) - float(s_ref)) <= 1e-12 * float(s_ref)
