"""Empirical metric-NTK: equals J Jᵀ of an explicit (finite-difference) parameter Jacobian; spectra."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.ntk import empirical_ntk, full_spectrum, pooled_spectrum  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return MetricData.from_pointset(Hypersurface.fermat(3).sample(5, seed=2))


def _fd_jacobian(model, x, gfs, h=1e-6):
    """∂g_I(x_a)/∂θ_p by central differences over every parameter entry: (N, 9, P)."""
    cols = []
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            for k in range(flat.numel()):
                old = flat[k].item()
                flat[k] = old + h
                gp = model(x, gfs)
                flat[k] = old - h
                gm = model(x, gfs)
                flat[k] = old
                cols.append((gp - gm) / (2 * h))
    return torch.stack(cols, dim=-1).numpy()


@pytest.mark.parametrize("kind,act,features", [("multiplicative", "gelu", "reim"), ("additive", "relu", "reim"),
                                               ("multiplicative", "relu", "reim"),
                                               ("multiplicative", "gelu", "reim_abs2")])
def test_empirical_ntk_equals_explicit_jacobian_product(data, kind, act, features):
    model = MetricMLP(data.x.shape[1], depth=2, width=5, activation=act, kind=kind, seed=7, features=features)
    jac = _fd_jacobian(model, data.x, data.gfs)  # (5, 9, P), P = 139 (+ 25 first-layer weights on |z_k|^2)
    assert jac.shape == (5, 9, 139 if features == "reim" else 164)
    expect = np.einsum("aIp,bJp->IJab", jac, jac)
    scale = np.abs(expect).max()
    for method in ("jacobian", "layerwise"):
        theta = empirical_ntk(model, data.x, data.gfs, method=method)
        assert theta.shape == (9, 9, 5, 5)
        np.testing.assert_allclose(theta, expect, rtol=0, atol=1e-7 * scale, err_msg=method)
    # cross blocks: Θ(x1, x2) with different point sets is the corresponding slice
    theta12 = empirical_ntk(model, data.x[:2], data.gfs[:2], data.x[2:], data.gfs[2:], method="jacobian")
    np.testing.assert_allclose(theta12, expect[:, :, :2, 2:], rtol=0, atol=1e-7 * scale)


def test_layerwise_equals_jacobian_on_a_wider_net(data):
    model = MetricMLP(data.x.shape[1], depth=3, width=40, activation="gelu", seed=1)
    a = empirical_ntk(model, data.x, data.gfs, method="jacobian")
    b = empirical_ntk(model, data.x, data.gfs, method="layerwise")
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())


def test_auto_is_layerwise_for_a_metric_mlp_and_jacobian_for_other_models(data):
    """"auto" takes the layer-wise form wherever the model has one (all the job schema's networks)."""
    model = MetricMLP(data.x.shape[1], depth=2, width=6, activation="relu", seed=3)
    auto = empirical_ntk(model, data.x, data.gfs)
    assert np.array_equal(auto, empirical_ntk(model, data.x, data.gfs, method="layerwise"))

    class Plain(torch.nn.Module):  # the same network without ntk_factors
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, gfs):
            return self.inner(x, gfs)

    plain = Plain(model)
    assert np.array_equal(empirical_ntk(plain, data.x, data.gfs),
                          empirical_ntk(plain, data.x, data.gfs, method="jacobian"))


def test_spectra_of_a_known_tensor():
    """Pooled symmetric-part spectrum and full PSD spectrum on a Θ built from a random J (independent)."""
    rng = np.random.default_rng(0)
    jac = rng.standard_normal((4, 3, 7))  # (points, outputs, params)
    theta = np.einsum("aIp,bJp->IJab", jac, jac)
    full = full_spectrum(theta)
    np.testing.assert_allclose(full, np.sort(np.linalg.eigvalsh(jac.reshape(12, 7) @ jac.reshape(12, 7).T)),
                               atol=1e-10)
    assert full.min() > -1e-10  # J Jᵀ is PSD
    pooled = pooled_spectrum(theta)
    assert pooled.shape == (3 * 3 * 4,)
    a01 = theta[0, 1]
    sym = 0.5 * (a01 + a01.T)
    for lam in np.linalg.eigvalsh(sym):
        assert np.min(np.abs(pooled - lam)) < 1e-12
    for lam in np.linalg.eigvalsh(theta[2, 2]):
        assert np.min(np.abs(pooled - lam)) < 1e-12


def test_train_test_spectrum_pools_the_eigenvalues_of_every_block():
    """Blocks B_IJ = S_IJ diag(lam_IJ) S_IJ^-1 with chosen (complex-pair) eigenvalues: the pooled statistic
    returns exactly those eigenvalues; every pooled set's sum is the sum of the blocks' traces."""
    from hpcflow.nn.ntk import train_test_spectrum

    rng = np.random.default_rng(3)
    p, n = 3, 4
    blocks, want, conds = np.zeros((p, p, n, n)), [], []
    for i in range(p):
        for j in range(p):
            a, b = rng.uniform(0.5, 2.0), rng.uniform(0.1, 1.0)
            d = np.zeros((n, n))
            d[:2, :2] = [[a, -b], [b, a]]  # eigenvalues a +- ib
            d[2, 2], d[3, 3] = rng.uniform(1, 3), rng.uniform(-3, -1)
            s = rng.standard_normal((n, n)) + 3 * np.eye(n)
            blocks[i, j] = s @ d @ np.linalg.inv(s)
            conds.append(np.linalg.cond(s))  # eigenvalue error <~ cond(S) eps |B| (Bauer-Fike)
            want += [a + 1j * b, a - 1j * b, d[2, 2], d[3, 3]]
    got = train_test_spectrum(blocks)
    want = np.array(want)[np.lexsort((np.imag(want), np.real(want)))]
    bound = 100 * max(conds) * np.finfo(float).eps * np.abs(blocks).max() * n
    np.testing.assert_allclose(got, want, rtol=0, atol=bound)
    assert abs(got.sum() - np.trace(blocks, axis1=2, axis2=3).sum()) < 1e-10 * np.abs(blocks).sum()


def test_wasserstein_1d_against_its_closed_forms():
    """W1 of a sample and its shift by c is |c|; of two samples of one size, the mean |difference| of their sorted
    values (the quantile functions' L1 distance); of {0} and n points evenly weighted, their mean |x|; against
    scipy.stats on unequal sizes with ties."""
    import numpy as np
    from scipy.stats import wasserstein_distance

    from hpcflow.nn.ntk import wasserstein_1d

    rng = np.random.default_rng(3)
    u = rng.standard_normal(40)
    assert abs(wasserstein_1d(u, u + 0.7) - 0.7) <= 1e-14 and abs(wasserstein_1d(u + 0.7, u) - 0.7) <= 1e-14
    v = rng.exponential(size=40)
    assert abs(wasserstein_1d(u, v) - np.mean(np.abs(np.sort(u) - np.sort(v)))) <= 1e-14
    assert abs(wasserstein_1d([0.0], v) - np.mean(np.abs(v))) <= 1e-14
    a, b = np.round(rng.standard_normal(17), 1), np.round(2 * rng.standard_normal(29) + 1, 1)
    assert abs(wasserstein_1d(a, b) - wasserstein_distance(a, b)) <= 1e-14 * wasserstein_distance(a, b)
