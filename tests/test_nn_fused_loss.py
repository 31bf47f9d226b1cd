"""Closed-form backward of the network loss: det gradient vs the NumPy adjugate and finite differences, and
the same value and parameter gradients as autograd through combine/det/loss."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.hermitian import pack, unpack  # noqa: E402
from hpcflow.metric import det_gradient  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn import fused_loss  # noqa: E402
from hpcflow.nn.fused_loss import det_and_grad_packed, fused_metric_loss  # noqa: E402
from hpcflow.nn.loss import metric_loss  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from reference import random_hermitian  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return MetricData.from_pointset(Hypersurface.fermat(3).sample(300, seed=4))


def test_det_and_gradient_match_numpy_adjugate_and_finite_differences():
    g = random_hermitian(np.random.default_rng(0), 40)
    v = pack(g)
    det, grad = det_and_grad_packed(torch.tensor(v))
    np.testing.assert_allclose(det.numpy(), np.linalg.det(g).real, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), det_gradient(g), rtol=1e-12, atol=1e-12 * np.abs(det_gradient(g)).max())
    h = 1e-6
    for k in range(9):
        vp, vm = v.copy(), v.copy()
        vp[:, k] += h
        vm[:, k] -= h
        fd = (np.linalg.det(unpack(vp)).real - np.linalg.det(unpack(vm)).real) / (2 * h)
        np.testing.assert_allclose(grad.numpy()[:, k], fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["multiplicative", "additive"])
@pytest.mark.parametrize("loss", ["sigma", "ultralocal"])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "tables"])
def test_fused_loss_equals_autograd_path(data, kind, loss, detach, compiled, monkeypatch):
    """Both forms of the closed-form backward (compiled per-row passes, torch tables) against autograd."""
    monkeypatch.setattr(fused_loss, "COMPILED", compiled)
    assert fused_loss._compiled_rows(data.x) is compiled  # Numba is a dependency: the compiled form runs
    model = MetricMLP(10, depth=2, width=16, activation="gelu", kind=kind, seed=1,
                      output_scale=0.3 if kind == "multiplicative" else 0.05)
    params = list(model.parameters())
    ref = metric_loss(model(data.x, data.gfs), data.omega2, data.weights, loss=loss, detach_kappa=detach)
    g_ref = torch.autograd.grad(ref, params)
    got = fused_metric_loss(model.raw(data.x), data.gfs, data.omega2, data.weights, kind=kind, loss=loss,
                            detach_kappa=detach)
    g_got = torch.autograd.grad(got, params)
    got_v, ref_v = float(got.detach()), float(ref.detach())
    assert abs(got_v - ref_v) <= 1e-14 * abs(ref_v)
    assert ref_v > 1e-3  # a non-trivial loss
    for a, b in zip(g_got, g_ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12 * float(b.abs().max()))


def test_gradcheck_of_the_ultralocal_loss(data):
    """torch.autograd.gradcheck: analytic backward vs finite differences in the raw outputs y."""
    sub = data[:12]
    y = (0.2 * torch.randn(12, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    y.requires_grad_(True)
    for kind in ("multiplicative", "additive"):
        yy = y if kind == "multiplicative" else (0.05 * y).detach().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda t, k=kind: fused_metric_loss(t, sub.gfs, sub.omega2, sub.weights, kind=k, loss="ultralocal"),
            (yy,), eps=1e-6, atol=1e-7, rtol=1e-6)
