"""MetricMLP: packing of the network output into a Hermitian metric, model kinds, torch losses vs NumPy σ."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack  # noqa: E402
from hpcflow.geometry.measures import sigma_measure  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.features import det_packed, hadamard_packed  # noqa: E402
from hpcflow.nn.loss import metric_loss  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def points():
    return Hypersurface.fermat(3).sample(400, seed=11)


def _random_hermitian(rng, n, m=3):
    a = rng.standard_normal((n, m, m)) + 1j * rng.standard_normal((n, m, m))
    return a @ a.conj().transpose(0, 2, 1) + np.eye(m)


def test_hadamard_and_det_packed_match_complex_matrices():
    rng = np.random.default_rng(0)
    a, b = _random_hermitian(rng, 50), _random_hermitian(rng, 50)
    had = hadamard_packed(torch.tensor(pack(a)), torch.tensor(pack(b))).numpy()
    np.testing.assert_allclose(unpack(had), a * b, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(det_packed(torch.tensor(pack(a))).numpy(), np.linalg.det(a).real, rtol=1e-11)


@pytest.mark.parametrize("kind", ["multiplicative", "additive"])
def test_model_output_round_trips_to_the_hermitian_metric(points, kind):
    """The packed output unpacks to g_FS ⊙ (1 + H) resp. g_FS + H with H = unpack(NN(x)), and packs back."""
    data = MetricData.from_pointset(points[:64])
    model = MetricMLP(data.x.shape[1], depth=2, width=16, activation="gelu", kind=kind, seed=3)
    with torch.no_grad():
        v = model(data.x, data.gfs).numpy()
        h = unpack(model.raw(data.x).numpy())
    g = unpack(v)
    np.testing.assert_allclose(g, g.conj().transpose(0, 2, 1), atol=0)  # Hermitian by construction
    expect = points.g_fs[:64] + (points.g_fs[:64] * h if kind == "multiplicative" else h)
    np.testing.assert_allclose(g, expect, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(pack(g), v, rtol=0, atol=0)


def test_zero_network_reproduces_fubini_study(points):
    data = MetricData.from_pointset(points)
    model = MetricMLP(data.x.shape[1], depth=1, width=4, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        g = unpack(model(data.x, data.gfs).numpy())
    np.testing.assert_allclose(g, points.g_fs, rtol=1e-14, atol=0)


@pytest.mark.parametrize("detach", [True, False])
def test_torch_sigma_equals_numpy_sigma_measure(points, detach):
    """Torch σ loss value == hpcflow.geometry sigma measure (eq. B.11) on the same non-trivial metrics."""
    rng = np.random.default_rng(5)
    g = points.g_fs * (1.0 + 0.3 * rng.standard_normal((len(points), 1, 1)))  # perturbed metrics
    expect = points.sigma(g)
    data = MetricData.from_pointset(points)
    got = metric_loss(torch.tensor(pack(g)), data.omega2, data.weights, detach_kappa=detach)
    assert abs(float(got) - expect) < 1e-13
    assert abs(expect - points.sigma()) > 0.01  # the perturbation changed σ: not a trivial comparison
    eta = det_hermitian(g) / points.omega2
    ul = metric_loss(torch.tensor(pack(g)), data.omega2, data.weights, loss="ultralocal")
    kap = np.sum(points.weights * eta) / np.sum(points.weights)
    assert abs(float(ul) - np.sum(points.weights * (eta / kap - 1) ** 2) / np.sum(points.weights)) < 1e-13
    assert abs(sigma_measure(eta, points.weights) - expect) < 1e-15


def test_sigma_loss_gradient_matches_finite_differences(points):
    """d σ / d v from autograd (κ through the batch) vs central differences of the NumPy σ measure."""
    sub = points[:20]
    data = MetricData.from_pointset(sub)
    rng = np.random.default_rng(1)
    v0 = pack(sub.g_fs) * (1 + 0.2 * rng.standard_normal((20, 9)))
    v = torch.tensor(v0, requires_grad=True)
    metric_loss(v, data.omega2, data.weights, detach_kappa=False).backward()
    h = 1e-6
    for a, k in [(0, 0), (3, 4), (7, 8), (12, 2), (19, 5)]:
        vp, vm = v0.copy(), v0.copy()
        vp[a, k] += h
        vm[a, k] -= h
        fd = (sub.sigma(unpack(vp)) - sub.sigma(unpack(vm))) / (2 * h)
        assert abs(v.grad[a, k].item() - fd) < 1e-6 * max(1.0, abs(fd))


def test_fixed_kappa_gradient_matches_metric_module(points):
    """With κ detached, autograd of the torch σ / ultra-local loss == hpcflow.metric.loss_and_grad (eqs. B.11, B.14)."""
    from hpcflow.geometry.measures import kappa
    from hpcflow.metric import loss_and_grad

    rng = np.random.default_rng(3)
    g = points.g_fs * (1.0 + 0.2 * rng.standard_normal((len(points), 1, 1)))
    data = MetricData.from_pointset(points)
    k = float(kappa(det_hermitian(g) / points.omega2, points.weights))
    for name in ("sigma", "ultralocal"):
        v = torch.tensor(pack(g), requires_grad=True)
        metric_loss(v, data.omega2, data.weights, loss=name, detach_kappa=True).backward()
        ell, grad = loss_and_grad(pack(g), points.omega2, points.weights, k, loss=name, kappa_gradient="fixed")
        np.testing.assert_allclose(v.grad.numpy(), grad, rtol=1e-10, atol=1e-14 * np.abs(grad).max())


def test_reim_abs2_features_are_the_squared_moduli(points):
    """features = "reim_abs2": first-layer inputs are (Re z, Im z, |z_k|^2); with the Re/Im weights zeroed the
    network sees only |z_k|^2, so its output is unchanged by z_k -> e^{iφ_k} z_k."""
    from hpcflow.nn.model import embed

    data = MetricData.from_pointset(points[:50])
    e = embed("reim_abs2", data.x).numpy()
    np.testing.assert_allclose(e[:, 10:], np.abs(points.points[:50]) ** 2, rtol=1e-14)
    np.testing.assert_array_equal(e[:, :10], data.x.numpy())
    model = MetricMLP(10, depth=2, width=16, activation="gelu", seed=1, features="reim_abs2")
    assert model.layers[0].weight.shape == (16, 15)
    rng = np.random.default_rng(2)
    z = points.points[:50] * np.exp(2j * np.pi * rng.random((50, 5)))
    x_rot = torch.tensor(np.concatenate([z.real, z.imag], axis=1))
    with torch.no_grad():
        model.layers[0].weight[:, :10] = 0.0
        y, y_rot = model.raw(data.x), model.raw(x_rot)
        assert torch.allclose(y, y_rot, rtol=1e-12, atol=1e-14)
        model.layers[0].weight[:, 3] = 1.0  # Re z_3 now enters: the phase rotation changes the output
        assert not torch.allclose(model.raw(data.x), model.raw(x_rot), rtol=1e-6, atol=1e-8)
    with pytest.raises(Exception, match="features"):
        MetricMLP(10, features="abs")


def test_he_init_variance_and_seeding():
    """init = "he": hidden weights have variance 2/fan_in (PyTorch's default: 1/(3 fan_in)), zero biases,
    the same seed gives the same network, and the global torch RNG is left as it was."""
    state = torch.random.get_rng_state()
    he = MetricMLP(10, depth=2, width=400, seed=5, init="he")
    assert torch.equal(torch.random.get_rng_state(), state)
    default = MetricMLP(10, depth=2, width=400, seed=5)
    for layer, fan_in in zip(he.layers[:-1], (10, 400)):
        var = float(layer.weight.detach().var())
        assert abs(var / (2.0 / fan_in) - 1) < 0.1, (fan_in, var)  # 4000+ samples: ~2 % standard error
        assert torch.count_nonzero(layer.bias) == 0
    var_default = float(default.layers[1].weight.detach().var())
    assert abs(var_default / (1.0 / (3 * 400)) - 1) < 0.1
    again = MetricMLP(10, depth=2, width=400, seed=5, init="he")
    assert all(torch.equal(a, b) for a, b in zip(he.parameters(), again.parameters()))
    with pytest.raises(Exception, match="init"):
        MetricMLP(10, init="xavier")


def test_fermat_eta_fs_is_a_function_of_the_moduli(points):
    """The fact behind features = "reim_abs2": on the Fermat quintic η_FS = det g_FS/|Ω|² equals
    25 Σ|z_k|^8 / (Σ|z_k|^2)^4 (|∇p|² = 25 Σ|z_k|^8 over the FS normalisation), with no phase dependence."""
    a = np.abs(points.points) ** 2
    np.testing.assert_allclose(points.eta(), 25.0 * (a ** 4).sum(1) / a.sum(1) ** 4, rtol=1e-12)


@pytest.mark.parametrize("init", ["torch", "he"])
def test_a_float32_network_is_the_float64_network_of_its_seed_rounded(init):
    """dtype = "float32" starts from the float64 network of the same seed, rounded (torch draws other numbers when it
    initialises in float32, so a precision comparison compared two different networks)."""
    a = MetricMLP(10, depth=2, width=8, seed=5, init=init, output_scale=0.3, dtype="float64")
    b = MetricMLP(10, depth=2, width=8, seed=5, init=init, output_scale=0.3, dtype="float32")
    for (name, p64), (_, p32) in zip(a.named_parameters(), b.named_parameters()):
        assert p32.dtype == torch.float32
        torch.testing.assert_close(p32, p64.to(torch.float32), rtol=0, atol=0, msg=name)
