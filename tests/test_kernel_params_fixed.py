"""A kernel's parameters are fixed when it is built: its evaluation is prepared from them (the Gaussian's fitted
polynomial, scale and row shift; the NTKs' range checks), so a parameter changed afterwards would be ignored or
half-applied while params() reported it. Every kernel refuses the change, naming the way to build a new kernel."""

import copy
import gc
import pickle
import weakref

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.kernels import (KERNELS, CosineNTKKernel, DeltaKernel, GaussianKernel, Kernel, ReluNTKKernel, gaussian,
                             make_kernel)

X = Hypersurface.fermat(3)


@pytest.fixture(scope="module")
def pts():
    return X.sample(60, seed=0).points


BUILT = [("gaussian", {"width": 0.3}, "width", 0.1), ("gaussian", {"width": 1e-4}, "normalize", "row"),
         ("gaussian", {"width": 0.3, "normalize": "row"}, "form", "gauss"),
         ("gaussian", {"width": 0.3}, "method", "direct"), ("gaussian", {"width": 0.3}, "dtype", "float32"),
         ("relu_ntk", {"w_std": 1.5, "b_std": 0.3}, "w_std", -1.0),
         ("relu_ntk", {"w_std": 1.5, "b_std": 0.3}, "depth", 3),
         ("relu_ntk", {"w_std": 1.5, "b_std": 0.3}, "b_std", 0.0),
         ("cosine_ntk", {"sigma_w": 2.0}, "sigma_w", 5.0), ("cosine_ntk", {"sigma_w": 2.0}, "amplitude", 3.0),
         ("cosine_ntk", {"sigma_w": 2.0}, "normalization", "printed")]


@pytest.mark.parametrize("name, params, key, value", BUILT)
def test_a_parameter_cannot_be_changed_after_the_kernel_is_built(pts, name, params, key, value):
    k = make_kernel(name, **params)
    before, block = k.params(), k.block(pts, pts[:20])
    with pytest.raises(AttributeError) as err:
        setattr(k, key, value)
    said = str(err.value)
    assert "\n" not in said and f"make_kernel({name!r}, " in said and f"{key}={value!r}" in said, said
    for other, v in params.items():  # the call to use names the kernel's other parameters as built
        if other != key:
            assert f"{other}={v!r}" in said, said
    with pytest.raises(AttributeError):
        delattr(k, key)
    assert k.params() == before and np.array_equal(k.block(pts, pts[:20]), block)
    # the call the message names builds the kernel asked for
    call = said[said.index("make_kernel("):]
    call = call[:call.index(")") + 1]
    if value == -1.0:  # no weight standard deviation: the new kernel refuses it, naming it
        with pytest.raises(ValueError, match="w_std"):
            eval(call, {"make_kernel": make_kernel})
    else:
        assert eval(call, {"make_kernel": make_kernel}).params()[key] == value


def test_a_changed_width_is_a_new_kernel_with_that_width(pts):
    """A width set on a built Gaussian kernel: k.width = 0.1 kept the polynomial of width 0.3 while params() said
    0.1, and a narrow kernel given normalize = 'row' afterwards gave NaN rows (its unshifted sums underflowed). Both
    are refused; the new kernels they name give eq. 3.6 at the new width and finite, normalised rows."""
    k = make_kernel("gaussian", width=0.3)
    with pytest.raises(AttributeError, match=r"make_kernel\('gaussian', width=0\.1\)"):
        k.width = 0.1
    np.testing.assert_allclose(k.block(pts), gaussian(pts, width=0.3), rtol=1e-12, atol=0)
    np.testing.assert_allclose(make_kernel("gaussian", width=0.1).block(pts), gaussian(pts, width=0.1), rtol=1e-11,
                               atol=0)
    narrow = make_kernel("gaussian", width=1e-4)
    with pytest.raises(AttributeError, match=r"make_kernel\('gaussian', width=0\.0001, normalize='row'\)"):
        narrow.normalize = "row"
    rows = make_kernel("gaussian", width=1e-4, normalize="row").block(pts[:30], pts[30:])
    assert np.all(np.isfinite(rows)) and np.allclose(rows.sum(axis=1), 1.0, rtol=0, atol=64 * np.finfo(float).eps)


@pytest.mark.parametrize("kernel", [GaussianKernel(0.3), DeltaKernel(), ReluNTKKernel(1.5, 0.0, depth=2),
                                    CosineNTKKernel(2.0)])
def test_derived_settings_and_unknown_names_are_refused_too(kernel):
    """What a kernel derives from its parameters (the polynomial, its scale, needs_sources, symmetric) and a name
    it does not have (a misspelt parameter, which would be silently ignored) are refused as well, naming the
    parameters the kernel takes."""
    names = ["widht", "symmetric", "needs_sources", "mixes_components"]
    if isinstance(kernel, GaussianKernel):
        names += ["coef", "squarings", "scale", "shift_rows", "engine"]
    for key in names:
        before = getattr(kernel, key, None)
        with pytest.raises(AttributeError, match=f"{type(kernel).__name__}.{key} cannot be set") as err:
            setattr(kernel, key, 1)
        assert f"make_kernel({kernel.name!r}" in str(err.value) and "\n" not in str(err.value)
        assert getattr(kernel, key, None) is before


def test_every_registered_kernel_is_fixed():
    assert set(KERNELS) == {"gaussian", "delta", "relu_ntk", "cosine_ntk"}  # a new kernel: add it to BUILT
    assert all(issubclass(cls, Kernel) for cls in KERNELS.values())


def test_subclasses_build_as_before_and_methods_can_still_be_replaced(pts):
    """A subclass sets what it likes in its own __init__ (the test kernels do), and is fixed once built; a method can
    still be replaced on an instance (pytest's monkeypatch of features), and private caches stay writable."""

    class Scaled(Kernel):
        def __init__(self, base, factor):
            self.base, self.factor = base, factor

        def tile_block(self, f1, f2):
            return self.factor * self.base.block(f1, f2)

    k = Scaled(GaussianKernel(0.3), 2.0)
    said = r"Scaled\.factor cannot be set.*build a new kernel: Scaled\(base=\.\.\., factor=3\.0\)$"
    with pytest.raises(AttributeError, match=said):
        k.factor = 3.0
    np.testing.assert_allclose(k.block(pts), 2.0 * gaussian(pts, width=0.3), rtol=1e-12, atol=0)
    k.features = lambda x: x[:, ::-1]  # a method replaced on the instance
    k._cache = {}
    assert k.features(np.eye(2))[0, 1] == 1.0 and k._cache == {}


class Holder:
    """A stand-in for a large argument (a network): a kernel that copies it must not keep the original alive."""

    def __init__(self):
        self.weights = np.zeros(1000)


class Copying(Kernel):
    def __init__(self, model, factor=2.0):
        self.model = copy.deepcopy(model)
        self.factor = factor


def test_a_built_kernel_keeps_only_the_shown_form_of_its_arguments():
    """The refusal's advice shows each argument (a repr, or ... for an object): the kernel keeps those strings, not
    the arguments, so an argument the kernel copies (a network) is collected once the caller drops it, and a copy
    or pickle of the kernel holds one network, its own."""
    m = Holder()
    alive = weakref.ref(m)
    k = Copying(m, 3.0)
    del m
    gc.collect()
    assert alive() is None
    with pytest.raises(AttributeError, match=r"build a new kernel: Copying\(model=\.\.\., factor=4\.0\)$"):
        k.factor = 4.0
    twin = pickle.loads(pickle.dumps(copy.deepcopy(k)))
    assert [type(v) for v in vars(twin).values()].count(Holder) == 1 and twin.factor == 3.0


def test_the_network_kernel_lets_the_callers_network_go():
    """NetworkNTKKernel evaluates its own deep copy of the network: the caller's network is not kept beside it."""
    from hpcflow.nn.kernel import NetworkNTKKernel
    from hpcflow.nn.model import MetricMLP

    m = MetricMLP(10, depth=1, width=8, activation="gelu", seed=5)
    alive = weakref.ref(m)
    k = NetworkNTKKernel(m, X)
    del m
    gc.collect()
    assert alive() is None and k.model is not None
    with pytest.raises(AttributeError, match=r"make_kernel|NetworkNTKKernel\(model=\.\.\., manifold=\.\.\."):
        k.method = "jacobian"


@pytest.mark.parametrize("name", ["_built_with", "_building"])
def test_the_names_that_fix_a_kernel_cannot_be_set_or_deleted(pts, name):
    """Deleting the record of the construction (or setting it anew) would unfix the kernel: both are refused, and
    the kernel stays fixed."""
    k = make_kernel("relu_ntk", w_std=1.5, b_std=0.3)
    block = k.block(pts[:10])
    with pytest.raises(AttributeError, match=f"ReluNTKKernel.{name} cannot be set"):
        delattr(k, name)
    with pytest.raises(AttributeError, match=f"ReluNTKKernel.{name} cannot be set"):
        setattr(k, name, {})
    with pytest.raises(AttributeError, match="ReluNTKKernel.w_std cannot be set"):
        k.w_std = 2.0
    assert k.w_std == 1.5 and np.array_equal(k.block(pts[:10]), block)
