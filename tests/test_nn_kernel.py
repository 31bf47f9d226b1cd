"""The network's frozen empirical NTK as a mixing kernel for kernel_flow (eq. 3.5)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.flow import kernel_flow  # noqa: E402
from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.hermitian import pack  # noqa: E402
from hpcflow.geometry.measures import kappa  # noqa: E402
from hpcflow.metric import loss_and_grad  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.kernel import NetworkNTKKernel  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.ntk import parameter_jacobian  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    X = Hypersurface.fermat(3)
    return X, X.sample(40, seed=3), X.sample(30, seed=4), MetricMLP(10, depth=2, width=12, activation="gelu", seed=5)


def test_block_layout_and_operator_equal_explicit_jacobian_product(setup):
    X, tr, te, model = setup
    k = NetworkNTKKernel(model, X)
    assert k.mixes_components
    jt = {n: j.flatten(2) for n, j in parameter_jacobian(model, *_tensors(te)).items()}
    js = {n: j.flatten(2) for n, j in parameter_jacobian(model, *_tensors(tr)).items()}
    jac_t = torch.cat([jt[n] for n in jt], dim=2).numpy()  # (30, 9, P)
    jac_s = torch.cat([js[n] for n in js], dim=2).numpy()  # (40, 9, P)
    expect = np.einsum("aIp,bJp->aIbJ", jac_t, jac_s)
    block = k.block(te.points, tr.points)
    assert block.shape == (30, 9, 40, 9)
    np.testing.assert_allclose(block, expect, rtol=1e-10, atol=1e-12 * np.abs(expect).max())
    grad = np.random.default_rng(0).standard_normal((40, 9))
    out = k.operator(te.points, tr.points, tile=7)(grad)  # several source and target tiles
    np.testing.assert_allclose(out, np.einsum("aIbJ,bJ->aI", expect, grad), rtol=1e-9,
                               atol=1e-11 * np.abs(out).max())


def _tensors(ps):
    d = MetricData.from_pointset(ps)
    return d.x, d.gfs


def test_ntk_step_descends_the_fixed_kappa_loss(setup):
    """Θ = J Jᵀ is PSD, so one small flow step lowers Σ ℓ at fixed κ by ≈ dt gᵀ Θ g (first order)."""
    X, tr, _, model = setup
    v = pack(tr.g_fs)
    k = float(kappa(tr.eta(), tr.weights))
    ell, grad = loss_and_grad(v, tr.omega2, tr.weights, k, kappa_gradient="fixed")
    u = NetworkNTKKernel(model, X).operator(tr.points, tr.points)(grad)
    dt = 1e-4
    ell2, _ = loss_and_grad(v - dt * u, tr.omega2, tr.weights, k, kappa_gradient="fixed")
    predicted = -dt * np.sum(grad * u)
    assert predicted < 0
    assert abs((ell2.sum() - ell.sum()) - predicted) < 0.05 * abs(predicted)


def test_kernel_flow_runs_with_the_network_kernel(setup):
    X, tr, te, model = setup
    res = kernel_flow(NetworkNTKKernel(model, X), tr, te, dt=1e-3, steps=3)
    assert res.steps_taken == 3 and res.sigma_test.shape == (4,)
    assert np.all(np.isfinite(res.sigma_train)) and res.sigma_train[0] == pytest.approx(tr.sigma())
    assert abs(res.sigma_train[-1] - res.sigma_train[0]) > 1e-8  # the metric moved


def test_kernel_refuses_a_network_that_changed_after_freezing(setup):
    X, tr, _, model = setup
    import copy

    m = copy.deepcopy(model)
    k = NetworkNTKKernel(m, X)
    with torch.no_grad():
        m.layers[0].bias.add_(1.0)
    with pytest.raises(Exception, match="changed"):
        k.block(tr.points[:2], tr.points[:2])
