"""The training step without autograd (hpcflow.nn.fast_step, hpcflow.nn.fused_loss.bilinear_tables): the det,
its gradient and the Hadamard map against NumPy's complex matrices; the parameter gradients against autograd
through model.forward and metric_loss for every activation, feature, model kind, loss and κ handling; Adam's
kernels bit for bit against Optimizer.step; the Trainer picks the step where it applies and falls back."""

import copy
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.hermitian import pack, unpack  # noqa: E402
from hpcflow.metric import det_gradient  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn import fast_step  # noqa: E402
from hpcflow.nn.fast_step import AdamStep, ManualGradient, SgdStep, optimizer_step  # noqa: E402
from hpcflow.nn import fused_loss  # noqa: E402
from hpcflow.nn.fused_loss import bilinear_tables, loss_and_output_gradient  # noqa: E402
from hpcflow.nn.loss import metric_loss  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from reference import random_hermitian  # noqa: E402
from hpcflow.nn.replicas import GradientReducer  # noqa: E402
from hpcflow.nn.train import TrainConfig, Trainer, make_optimizer  # noqa: E402

torch.set_num_threads(1)

#: Relative accuracy asked of a gradient tensor, max-norm over the tensor: both sides sum ~300 points of
#: products of O(10) rounded factors in different orders (and det by a different formula), so each differs from
#: the exact gradient by a few hundred ulps of the largest terms; cancellation in r = η/κ - 1 (|r| ≳ 1e-2 here)
#: costs two more digits. 1e-12 leaves a margin of ~10x over the largest error seen (~1e-13).
GRAD_RTOL = 1e-12


@pytest.fixture(scope="module")
def data():
    return MetricData.from_pointset(Hypersurface.fermat(3).sample(300, seed=4))


def _outer(a, b):
    return (a[:, :, None] * b[:, None, :]).reshape(len(a), 81)


def test_tables_give_det_its_gradient_and_the_hadamard_map_of_complex_matrices():
    rng = np.random.default_rng(1)
    g, h = random_hermitian(rng, 30), random_hermitian(rng, 30)
    t_det, had, had_t = (t.numpy() for t in bilinear_tables())
    v, w = pack(g), pack(h)
    ddet = _outer(v, v) @ t_det
    np.testing.assert_allclose(ddet, det_gradient(g), rtol=0, atol=1e-13 * np.abs(det_gradient(g)).max())
    # Euler's theorem for the cubic det: v · ∇det = 3 det
    np.testing.assert_allclose(np.sum(v * ddet, 1) / 3, np.linalg.det(g).real, rtol=1e-12)
    np.testing.assert_allclose(_outer(v, w) @ had, pack(g * h), rtol=0, atol=1e-14 * np.abs(pack(g * h)).max())
    # Mᵀ u for M = ∂(g ⊙ y)/∂y: <Mᵀ u, y> = <u, g ⊙ y> for every y (the map is linear in y)
    u = rng.standard_normal((30, 9))
    mt_u = _outer(v, u) @ had_t
    for k in range(9):
        e = np.zeros((30, 9))
        e[:, k] = 1.0
        np.testing.assert_allclose(mt_u[:, k], np.sum(u * pack(g * unpack(e)), 1), rtol=1e-13, atol=1e-13)


def _autograd_reference(model, d, loss, detach):
    params = list(model.parameters())
    ref = metric_loss(model(d.x, d.gfs), d.omega2, d.weights, loss=loss, detach_kappa=detach)
    return float(ref.detach()), torch.autograd.grad(ref, params)


CASES = list(itertools.product(("relu", "gelu"), ("reim", "reim_abs2"), ("multiplicative", "additive"),
                               ("sigma", "ultralocal"), (False, True)))


@pytest.mark.parametrize("act,features,kind,loss,detach", CASES)
@pytest.mark.parametrize("path", ["compiled", "numpy", "torch"])
def test_manual_gradient_equals_autograd(data, act, features, kind, loss, detach, path, monkeypatch):
    """Every case by each of the step's three forms (ManualGradient.path)."""
    monkeypatch.setattr(ManualGradient, "path", lambda self, rows: path)
    model = MetricMLP(10, depth=2, width=16, activation=act, kind=kind, seed=1, features=features, init="he",
                      output_scale=0.3 if kind == "multiplicative" else 0.05)
    ref_loss, ref_grads = _autograd_reference(model, data, loss, detach)
    reducer = GradientReducer(model)
    step = ManualGradient.build(model, reducer.params, reducer.views, loss=loss, detach_kappa=detach)
    assert step is not None and step.host
    reducer.flat.fill_(np.nan)  # every gradient entry must be written
    got_loss = step(data)
    assert ref_loss > 1e-3 and abs(got_loss - ref_loss) <= 1e-13 * ref_loss
    for got, ref in zip(reducer.views, ref_grads):
        err = float((got - ref).abs().max())
        assert err <= GRAD_RTOL * float(ref.abs().max()), (err, float(ref.abs().max()))


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "tables"])
def test_loss_gradient_matches_finite_differences_of_the_loss(data, compiled, monkeypatch):
    """dL/dy of both losses against central differences of the autograd-free loss value."""
    monkeypatch.setattr(fused_loss, "COMPILED", compiled)
    sub = data[:20]
    y = 0.2 * torch.randn(20, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for squared in (False, True):
        f = lambda t: loss_and_output_gradient(t, sub.gfs, sub.omega2, sub.weights, squared=squared)  # noqa: E731
        _, gy = f(y)
        h = 1e-6
        for i, k in ((0, 0), (3, 4), (7, 8), (19, 5)):
            yp, ym = y.clone(), y.clone()
            yp[i, k] += h
            ym[i, k] -= h
            fd = (f(yp)[0] - f(ym)[0]) / (2 * h)
            assert abs(float(gy[i, k]) - fd) <= 1e-7 * float(gy.abs().max()), (i, k, float(gy[i, k]), fd)


def test_adam_kernels_are_optimizer_step_bit_for_bit_also_after_loading_its_state(data):
    def make():
        model = MetricMLP(10, depth=2, width=8, seed=2, output_scale=0.1)
        return model, make_optimizer(model, TrainConfig(lr=1e-2)), GradientReducer(model)

    (m1, o1, r1), (m2, o2, r2) = make(), make()
    fast = AdamStep.build(o2)
    assert fast is not None
    gen = torch.Generator().manual_seed(0)
    for k in range(6):
        g = torch.randn(r1.flat.shape, dtype=torch.float64, generator=gen)
        r1.flat.copy_(g)
        r2.flat.copy_(g)
        lr = 1e-2 / (k + 1)
        o1.param_groups[0]["lr"] = lr
        o1.step()
        fast(lr)
        if k == 2:  # a resume replaces the state tensors
            o2.load_state_dict(copy.deepcopy(o2.state_dict()))
        for a, b in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(a, b)
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        assert s1["state"][i].keys() == s2["state"][i].keys()
        for key in ("step", "exp_avg", "exp_avg_sq"):  # the first step's state formed as torch forms it
            assert s1["state"][i][key].dtype == s2["state"][i][key].dtype
            assert torch.equal(s1["state"][i][key], s2["state"][i][key])
    assert AdamStep.build(torch.optim.Adam(m1.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)) is None
    assert AdamStep.build(torch.optim.SGD(m1.parameters(), lr=1e-3)) is None


class _Wrapped(torch.nn.Module):
    """Not a MetricMLP (the same network inside): the Trainer must take autograd."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.kind = inner, inner.kind

    def raw(self, x):
        return self.inner.raw(x)

    def forward(self, x, gfs):
        return self.inner(x, gfs)


def test_trainer_uses_the_manual_step_where_it_applies_with_the_results_of_autograd():
    X = Hypersurface.fermat(3)
    tr, va = (MetricData.from_pointset(X.sample(n, seed=s)) for n, s in ((400, 0), (200, 1)))
    cfg = TrainConfig(epochs=2, batch_size=50, lr=3e-3, loss="ultralocal", seed=0)
    runs = {}
    for manual in (True, False):
        model = MetricMLP(10, depth=2, width=16, seed=0, output_scale=0.1, init="he")
        t = Trainer(model, tr, va, TrainConfig(**{**cfg.__dict__, "manual_step": manual}))
        assert (t.manual is not None, t.fast_step is not None) == (manual, manual)
        runs[manual] = (t.run(), model)
    (h1, m1), (h2, m2) = runs[True], runs[False]
    np.testing.assert_allclose(h1.sigma_val, h2.sigma_val, rtol=1e-10)
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=1e-10)
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-10)
    wrapped = Trainer(_Wrapped(MetricMLP(10, depth=1, width=4, seed=0)), tr, va, cfg)
    assert wrapped.manual is None and isinstance(wrapped.fast_step, AdamStep)
    sgd = Trainer(MetricMLP(10, depth=1, width=4, seed=0), tr, va, TrainConfig(**{**cfg.__dict__, "optimizer": "sgd"}))
    assert sgd.manual is not None and isinstance(sgd.fast_step, SgdStep)
    assert len(wrapped.run().sigma_val) == 3 and len(sgd.run().sigma_val) == 3


def test_the_step_form_follows_threads_rows_and_activation(data):
    """torch's OpenMP threads and OpenBLAS's threads in one process slow each other ~10x (BENCHMARKS.md): with
    more than one torch thread the products stay with torch; the compiled form takes the small batches, NumPy's
    BLAS the large ones."""
    reducer = {}

    def step(act):
        model = MetricMLP(10, depth=2, width=16, activation=act, seed=1, init="he", output_scale=0.3)
        reducer[act] = GradientReducer(model)
        return ManualGradient.build(model, reducer[act].params, reducer[act].views, loss="ultralocal",
                                    detach_kappa=False)

    relu, gelu = step("relu"), step("gelu")
    rows = (fast_step.HOST_BLAS_ROWS - 1, fast_step.HOST_BLAS_ROWS, fast_step.COMPILED_ROWS["relu"])
    deep = MetricMLP(10, depth=fast_step.COMPILED_MAX_LAYERS, width=4, activation="relu", seed=1)  # one layer more
    deep_reducer = GradientReducer(deep)
    deep = ManualGradient.build(deep, deep_reducer.params, deep_reducer.views, loss="ultralocal", detach_kappa=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert [relu.path(r) for r in rows] == ["compiled", "compiled", "numpy"]
        assert [gelu.path(r) for r in rows] == ["compiled", "numpy", "numpy"]
        assert [deep.path(r) for r in rows] == ["torch", "numpy", "numpy"]  # not compiled for each new depth
        torch.set_num_threads(2)
        assert {s.path(r) for s in (relu, gelu) for r in rows} == {"torch"}
    finally:
        torch.set_num_threads(threads)


def test_sgd_step_is_optimizer_step_bit_for_bit():
    """The width sweep's plain SGD: the same parameters as torch's SGD.step after steps of changing lr."""
    def make():
        model = MetricMLP(10, depth=2, width=8, seed=3, output_scale=0.1)
        return model, make_optimizer(model, TrainConfig(lr=0.5, optimizer="sgd")), GradientReducer(model)

    (m1, o1, r1), (m2, o2, r2) = make(), make()
    fast = optimizer_step(o2)
    assert isinstance(fast, SgdStep)
    gen = torch.Generator().manual_seed(1)
    for k in range(4):
        g = torch.randn(r1.flat.shape, dtype=torch.float64, generator=gen)
        r1.flat.copy_(g)
        r2.flat.copy_(g)
        lr = 0.5 / (k + 1)
        o1.param_groups[0]["lr"] = lr
        o1.step()
        fast(lr)
        for a, b in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(a, b)
    assert o1.state_dict() == o2.state_dict()  # no momentum buffers; the last lr in the group
    assert SgdStep.build(torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)) is None
    assert SgdStep.build(torch.optim.SGD(m1.parameters(), lr=0.1, weight_decay=1e-3)) is None
