"""The network's frozen empirical NTK as a mixing kernel for kernel_flow (eq. 3.5)."""

import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.errors import ConfigError  # noqa: E402
from hpcflow.flow import kernel_flow  # noqa: E402
from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.geometry.hermitian import pack  # noqa: E402
from hpcflow.geometry.measures import kappa  # noqa: E402
from hpcflow.metric import loss_and_grad  # noqa: E402
from hpcflow.nn.data import MetricData  # noqa: E402
from hpcflow.nn.kernel import NetworkNTKKernel  # noqa: E402
from hpcflow.nn.model import MetricMLP  # noqa: E402
from hpcflow.nn.ntk import empirical_ntk, parameter_jacobian  # noqa: E402

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


def _sigma(v, omega2, weights):
    """σ (eq. B.11) of packed metrics v with κ = Σ w η / Σ w from these metrics."""
    from hpcflow.geometry.hermitian import unpack

    eta = np.linalg.det(unpack(v)).real / omega2
    k = np.sum(weights * eta) / np.sum(weights)
    return np.sum(weights * np.abs(1 - eta / k)) / np.sum(weights)


def test_ntk_step_with_the_exact_kappa_gradient_descends_sigma_itself(setup):
    """With κ differentiated (kernel_flow's default), one small step lowers σ with κ recomputed by
    ≈ dt gᵀ Θ g (first order)."""
    X, tr, _, model = setup
    v = pack(tr.g_fs)
    k = float(kappa(tr.eta(), tr.weights))
    _, grad = loss_and_grad(v, tr.omega2, tr.weights, k)
    u = NetworkNTKKernel(model, X).operator(tr.points, tr.points)(grad)
    dt = 1e-4
    predicted = -dt * np.sum(grad * u)
    change = _sigma(v - dt * u, tr.omega2, tr.weights) - _sigma(v, tr.omega2, tr.weights)
    assert predicted < 0
    assert abs(change - predicted) < 0.05 * abs(predicted)


def test_ntk_kernel_flow_differentiates_kappa(setup):
    """The nn job's flow (experiment.ntk_kernel_flow) is kernel_flow with kappa_gradient "exact", not "fixed"."""
    from hpcflow.nn.experiment import ntk_kernel_flow

    X, tr, te, model = setup
    got = ntk_kernel_flow(model, X, tr, te, dt=1e-3, steps=3)
    for kg, same in (("exact", True), ("fixed", False)):
        res = kernel_flow(NetworkNTKKernel(model, X), tr, te, dt=1e-3, steps=3, kappa_gradient=kg)
        assert np.array_equal(got["sigma_test"], res.sigma_test) == same, kg


def test_kernel_flow_runs_with_the_network_kernel(setup):
    X, tr, te, model = setup
    res = kernel_flow(NetworkNTKKernel(model, X), tr, te, dt=1e-3, steps=3)
    assert res.steps_taken == 3 and res.sigma_test.shape == (4,)
    assert np.all(np.isfinite(res.sigma_train)) and res.sigma_train[0] == pytest.approx(tr.sigma())
    assert abs(res.sigma_train[-1] - res.sigma_train[0]) > 1e-8  # the metric moved


def test_kernel_refuses_its_copy_of_the_network_changed_after_building(setup):
    """The kernel's own copy (kernel.model) changed in place is refused, not evaluated at other parameters."""
    X, tr, _, model = setup
    k = NetworkNTKKernel(model, X)
    with torch.no_grad():
        k.model.layers[0].bias.add_(1.0)
    with pytest.raises(ConfigError, match="changed"):
        k.block(tr.points[:2], tr.points[:2])


class Plain(torch.nn.Module):
    """A MetricMLP without ntk_factors: only torch.func can differentiate it."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    @property
    def dtype(self):
        return self.inner.dtype

    def forward(self, x, gfs):
        return self.inner(x, gfs)


def _jacobian(model, ps):
    """(N, 9, P) parameter Jacobian of the packed metric at the points of `ps` (torch.func, every parameter)."""
    jac = parameter_jacobian(model, *_tensors(ps))
    return torch.cat([j.flatten(2) for j in jac.values()], dim=2).numpy()


@pytest.mark.parametrize("kind,act,features", [("multiplicative", "gelu", "reim"), ("additive", "relu", "reim_abs2")])
def test_layerwise_operator_equals_the_torch_func_operator_and_the_explicit_ntk(setup, kind, act, features):
    """Θ u at 30 targets from 40 sources, several tiles: the layer-wise product (auto, layerwise), torch.func's
    (jacobian, and auto for a model without ntk_factors) and Θ from empirical_ntk contracted with u agree to
    n ε Σ |J(x)| |J(x')|ᵀ |u|, the float64 rounding bound of sums of n = P + 9 N_src products."""
    X, tr, te, _ = setup
    model = MetricMLP(10, depth=2, width=12, activation=act, kind=kind, features=features, seed=6)
    u = np.random.default_rng(1).standard_normal((len(tr), 9))
    jt, js = _jacobian(model, te), _jacobian(model, tr)
    n = js.shape[2] + js.shape[0] * 9
    bound = n * np.finfo(np.float64).eps * np.einsum("aIp,bJp,bJ->aI", np.abs(jt), np.abs(js), np.abs(u))
    theta = empirical_ntk(model, *_tensors(te), *_tensors(tr))  # (9, 9, 30, 40)
    forms = {"explicit": np.einsum("IJab,bJ->aI", theta, u)}
    for name, m, method in (("auto", model, "auto"), ("layerwise", model, "layerwise"),
                            ("jacobian", model, "jacobian"), ("no factors", Plain(model), "auto")):
        forms[name] = NetworkNTKKernel(m, X, method=method).operator(te.points, tr.points, tile=7)(u)
    for name, out in forms.items():
        assert out.shape == (30, 9)
        for other in forms:
            assert np.all(np.abs(out - forms[other]) <= bound), (name, other, np.abs(out - forms[other]).max())
    assert np.abs(forms["auto"]).max() > 1e3 * bound.max()  # the bound is far below the values it compares


def test_the_kernel_method_chooses_the_operator_form(setup, monkeypatch):
    """"auto" and "layerwise" apply Θ from the model's ntk_factors, "jacobian" never calls them; with a cache budget
    the tiles' factors are computed once for every call; a method the model cannot take is refused when the kernel
    is built (as empirical_ntk refuses it)."""
    X, tr, te, model = setup
    calls = []
    factors = model.ntk_factors
    monkeypatch.setattr(model, "ntk_factors", lambda *a: calls.append(1) or factors(*a))
    u = np.ones((len(tr), 9))
    for method, used in (("auto", True), ("layerwise", True), ("jacobian", False)):
        calls.clear()
        NetworkNTKKernel(model, X, method=method).operator(te.points, tr.points, tile=16)(u)
        assert bool(calls) == used, method
        if used:  # ntk_factors once per source tile and once per target tile
            assert len(calls) == 3 + 2, calls
    calls.clear()
    op = NetworkNTKKernel(model, X).operator(te.points, tr.points, tile=16, cache_bytes=2 ** 30)
    first, again = op(u), op(u)  # a flow applies the operator to the same points every step: factors kept
    assert len(calls) == 5 and np.array_equal(first, again), calls
    assert np.array_equal(first, NetworkNTKKernel(model, X).operator(te.points, tr.points, tile=16)(u))
    with pytest.raises(ConfigError, match="ntk method = 'vmap' is not one of"):
        NetworkNTKKernel(model, X, method="vmap")
    with pytest.raises(ConfigError, match="'layerwise' needs a model with ntk_factors.*not a Plain; use 'auto'"):
        NetworkNTKKernel(Plain(model), X, method="layerwise")


def test_operators_on_one_source_set_reuse_the_direction_only_for_the_same_u_and_tile(setup):
    """Operators on bitwise-equal sources share the direction Σ_x' J(x')ᵀ u(x'); every product, after u changed in
    place, another u, another tile or sources changed in place, has the bits of a kernel that shares nothing."""
    X, tr, te, model = setup
    k = NetworkNTKKernel(model, X)
    ops = {(name, tile): k.operator(x, src, tile=tile) for name, x, src in (("train", tr.points, tr.points),
                                                                           ("test", te.points, tr.points.copy()))
           for tile in (7, 16)}
    rng = np.random.default_rng(2)
    u, other = rng.standard_normal((2, len(tr), 9))
    for name, tile, change in (("train", 7, None), ("test", 7, None), ("test", 7, "in place"), ("train", 7, None),
                               ("test", 16, None), ("train", 16, "new"), ("test", 7, None), ("test", 16, None)):
        if change == "in place":
            u[3, 2] += 1.0
        elif change == "new":
            u = other
        x = {"train": tr.points, "test": te.points}[name]
        alone = NetworkNTKKernel(model, X).operator(x, tr.points, tile=tile)(u.copy())
        assert np.array_equal(ops[(name, tile)](u), alone), (name, tile, change)
    src = tr.points.copy()
    first = k.operator(te.points, src, tile=7)
    first(u)
    src[[0, 1]] = src[[1, 0]]  # the same array, other sources: an operator built now shares nothing with `first`
    alone = NetworkNTKKernel(model, X).operator(te.points, src.copy(), tile=7)(u)
    assert np.array_equal(k.operator(te.points, src, tile=7)(u), alone)


class Unshared(NetworkNTKKernel):
    """The network kernel with fresh sources for every operator: nothing shared between products."""

    def _sources(self, x_src):
        self._last_sources = None
        return super()._sources(x_src)


def test_a_flow_step_forms_the_direction_once_for_both_products(setup):
    """Each step passes the sources through the network once for the direction and each target set once for its
    image (cache_bytes = 0: no factors kept), not the sources once per product; the history has the bits of a flow
    whose products share nothing."""
    X, tr, te, model = setup
    passes = []
    hook = model.layers[0].register_forward_hook(lambda *a: passes.append(a[1][0].shape[0]))
    tiles = -(-len(tr) // 16), -(-len(te) // 16)
    try:
        for method in ("auto", "jacobian"):
            runs = {}
            for kind, sources in ((NetworkNTKKernel, 1), (Unshared, 2)):
                passes.clear()
                runs[kind] = res = kernel_flow(kind(model, X, method=method), tr, te, dt=1e-3, steps=3, tile=16,
                                               cache_bytes=0)
                assert res.steps_taken == 3, method
                assert len(passes) == 3 * ((sources + 1) * tiles[0] + tiles[1]), (method, kind, len(passes))
                assert sum(passes) == 3 * ((sources + 1) * len(tr) + len(te)), (method, kind)
            for key in ("sigma_train", "sigma_test", "g_train", "g_test", "dt_history"):
                assert np.array_equal(getattr(runs[NetworkNTKKernel], key), getattr(runs[Unshared], key)), key
    finally:
        hook.remove()


def test_the_network_kernel_refuses_gradients_as_the_scalar_kernels_do(setup, monkeypatch):
    """A complex or boolean grad_src, or one with other than one row per source point, is one error naming it, from
    the operator's call and from apply before any network pass; a complex one was cast to the model's dtype,
    its imaginary part dropped with only a ComplexWarning."""
    X, tr, te, model = setup
    k = NetworkNTKKernel(model, X)
    op = k.operator(te.points, tr.points, tile=16)
    g = np.random.default_rng(3).standard_normal((len(tr), 9))
    monkeypatch.setattr(k, "features", lambda *a: pytest.fail("apply started work on a refused gradient"))
    cases = [(g + 1j * g, TypeError, r"grad_src has dtype complex128; pass real numbers .*grad_src\.real"),
             (g > 0, TypeError, "grad_src has dtype bool; pass real numbers"),
             (g[:-1], ValueError, rf"grad_src has shape \({len(tr) - 1}, 9\); pass one gradient row per source point"),
             (g[0], ValueError, r"grad_src has shape \(9,\); pass one gradient row per source point")]
    for bad, exc, match in cases:
        for call in (lambda: op(bad), lambda: k.apply(te.points, tr.points, bad)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(exc, match=match):
                    call()


@pytest.mark.parametrize("kw, word", [(dict(tile=0), "tile=0"), (dict(tile=2.5), "tile=2.5"),
                                      (dict(cache_bytes=-1), "cache_bytes=-1"), (dict(threads=0), "threads=0")])
def test_the_network_kernel_refuses_bad_operator_settings_as_the_others_do(setup, monkeypatch, kw, word):
    """tile=0 or 2.5 was taken as 1 or 2 and a negative cache as none; now the one ValueError every kernel gives,
    before the network sees the points."""
    X, tr, te, model = setup
    k = NetworkNTKKernel(model, X)
    monkeypatch.setattr(k, "features", lambda *a: pytest.fail("the kernel started work on refused settings"))
    with pytest.raises(ValueError, match=rf"{word} is invalid; pass "):
        k.operator(te.points, tr.points, **kw)


def test_the_network_kernel_refuses_points_that_are_not_finite(setup, monkeypatch):
    """Its operator checks the points as every kernel's does (it checked none): a nan coordinate is one ValueError
    naming the set and the row, before the network sees the points."""
    X, tr, te, model = setup
    k = NetworkNTKKernel(model, X)
    monkeypatch.setattr(k, "features", lambda *a: pytest.fail("the kernel started work on refused points"))
    src = tr.points.copy()
    src[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"^x_src has 1 point\(s\) with a nan or inf coordinate \(row 5 first\)"):
        k.operator(te.points, src)


def test_a_gradient_with_other_than_the_packed_component_count_is_refused(setup):
    """Θ mixes the m² = 9 packed components of a point: 8 or 10 columns get one error naming the shape to pass."""
    X, tr, te, model = setup
    op = NetworkNTKKernel(model, X).operator(te.points, tr.points)
    for cols in (8, 10):
        with pytest.raises(ValueError, match=r"grad_src has shape \(40, %d\); .* pass shape \(40, 9\)" % cols):
            op(np.ones((40, cols)))


class Device:
    """Stands in for a CuPy array where no GPU is: of a module named cupy, it refuses an implicit conversion to
    NumPy as CuPy does and is copied to the host by .get()."""

    __module__ = "cupy"

    def __init__(self, a):
        self.a = np.array(a)
        self.shape, self.dtype = self.a.shape, self.a.dtype

    def __len__(self):
        return len(self.a)

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()`")

    def get(self):
        return self.a.copy()


def test_the_network_kernel_copies_device_arrays_to_the_host_and_back(setup, monkeypatch):
    """On the CuPy backend kernel_flow hands the operator CuPy points and gradients: it converted them implicitly
    (np.asarray), which CuPy refuses. It copies them to the host and returns the product on the gradient's module,
    with the bits of the host product."""
    import types

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(ndarray=Device, asarray=Device))
    X, tr, te, model = setup
    g = np.random.default_rng(4).standard_normal((len(tr), 9))
    want = NetworkNTKKernel(model, X).operator(te.points, tr.points, tile=16)(g)
    op = NetworkNTKKernel(model, X)._operator(Device(te.points), Device(tr.points), tile=16, threads=None,
                                              cache_bytes=0)
    got = op(Device(g))
    assert type(got) is Device and got.get().tobytes() == want.tobytes()


def test_the_kernel_keeps_a_fixed_copy_of_the_network_that_training_does_not_change(setup):
    """Fig. 4's workflow: build the NTK kernel, then train the network on. The kernel is the NTK at the parameters
    it was built with (a copy), so its block and operator stay those of the untrained network, and a flow with it
    runs, where it raised ConfigError mid-flow once the network changed."""
    X, tr, te, model = setup
    trained = MetricMLP(10, depth=2, width=12, activation="gelu", seed=5)
    k = NetworkNTKKernel(trained, X)
    before = k.block(te.points, tr.points)
    grad = np.random.default_rng(1).standard_normal((len(tr), 9))
    op_before = k.operator(te.points, tr.points, tile=16)(grad)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a training step's worth of change
    assert np.array_equal(k.block(te.points, tr.points), before)
    assert np.array_equal(k.operator(te.points, tr.points, tile=16)(grad), op_before)
    assert not np.allclose(NetworkNTKKernel(trained, X).block(te.points, tr.points), before)
    res = kernel_flow(k, tr, te, dt=1e-3, steps=2)
    assert res.steps_taken == 2


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_kernel_whose_operator_was_built_copies_and_gives_the_same_operator(setup, how):
    import copy
    import pickle

    X, tr, te, model = setup
    k = NetworkNTKKernel(model, X)
    u = np.random.default_rng(1).standard_normal((len(tr), 9))
    first = k.operator(te.points, tr.points, tile=16)(u)  # leaves a weak reference to its sources behind
    c = pickle.loads(pickle.dumps(k)) if how == "pickle" else copy.deepcopy(k)
    assert c._last_sources is None and k._last_sources is not None
    assert np.array_equal(c.operator(te.points, tr.points, tile=16)(u), first)
