"""The deep ReLU NTK ((Dense, Relu) x depth, Dense) against neural-tangents: reference values computed once by
tests/reference/make_relu_ntk_fixture.py (run by hand) and stored in tests/data/relu_ntk_deep_reference.json."""

from pathlib import Path

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.kernels import ReluNTKKernel, real_features, relu_ntk
from hpcflow.kernels.relu_ntk import relu_features, relu_tile, relu_tile_deep
from reference import load_relu_ntk_fixture
from roundoff import relu_ntk_deep_entry_error, relu_ntk_entry_error

FIXTURE = Path(__file__).parent / "data" / "relu_ntk_deep_reference.json"


@pytest.fixture(scope="module")
def ref():
    return load_relu_ntk_fixture(FIXTURE)


def tolerance(points, w_std, b_std, depth):
    """Both sides' rounding bounds: each runs the same layer recursion in float64, so the propagated bound of
    relu_ntk_deep_entry_error bounds each of them."""
    h = ReluNTKKernel(w_std, b_std, depth).features(points)
    return 2.0 * relu_ntk_deep_entry_error(h, h, w_std, b_std, depth)


SETTINGS = [(5.716, 80.52, 3), (1.5, 0.3, 2), (1.414, 0.01, 8), (1.414, 0.0, 32), (1.2, 0.05, 64)]


def setting(ref, w_std, b_std, depth):
    return next(s for s in ref["settings"] if (s["w_std"], s["b_std"], s["depth"]) == (w_std, b_std, depth))


def test_fixture_inputs_are_hpcflows_features(ref):
    np.testing.assert_array_equal(real_features(ref["points"]), ref["inputs"])
    assert {(s["w_std"], s["b_std"], s["depth"]) for s in ref["settings"]} == set(SETTINGS)


@pytest.mark.parametrize("w_std, b_std, depth", SETTINGS)
def test_deep_relu_ntk_matches_neural_tangents(ref, w_std, b_std, depth):
    """Every entry (near duplicates and an exact duplicate included) within both implementations' propagated
    rounding bounds, by the closed-form diagonal, the general recursion on a copy, and the kernel object. For
    points apart (layer-0 angle > 1e-3) the bound stays below 1e-7 of sqrt(Theta(x, x) Theta(x', x')) even after
    64 layers, so a convention slip shows; at the arccos branch point (duplicates) it is ~1e-2 at worst."""
    z, x = ref["points"], ref["inputs"]
    want = setting(ref, w_std, b_std, depth)["ntk"]
    tol = tolerance(z, w_std, b_std, depth)
    scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
    h = ReluNTKKernel(w_std, b_std, depth).features(z)
    apart = np.arccos(np.clip(h[:, :-1] @ h[:, :-1].T, -1.0, 1.0)) > 1e-3
    assert apart.sum() >= len(z) * (len(z) - 5) and np.all(tol[apart] <= 1e-7 * scale[apart])
    assert np.all(tol <= 1e-2 * scale)
    kern = ReluNTKKernel(w_std, b_std, depth)
    for got in (relu_ntk(x, x, w_std=w_std, b_std=b_std, depth=depth),
                relu_ntk(x, x.copy(), w_std=w_std, b_std=b_std, depth=depth), kern.block(z, z), kern.block(z, z.copy())):
        excess = np.abs(got - want) - tol
        assert np.all(excess <= 0), f"worst excess {excess.max():.3g} over the rounding bound"


@pytest.mark.parametrize("w_std, b_std, depth", [(1.414, 0.01, 8), (5.716, 80.52, 3), (1.2, 0.05, 64)])
def test_deep_comparison_detects_a_layer_too_many_or_too_few(ref, w_std, b_std, depth):
    """Off by one layer, or the bias std off by 1e-6 relative, leaves the bound: the comparison is sharp."""
    x = ref["inputs"]
    want = setting(ref, w_std, b_std, depth)["ntk"]
    tol = tolerance(ref["points"], w_std, b_std, depth)
    for wrong in (relu_ntk(x, x, w_std=w_std, b_std=b_std, depth=depth - 1),
                  relu_ntk(x, x, w_std=w_std, b_std=b_std, depth=depth + 1),
                  relu_ntk(x, x, w_std=w_std * (1 + 1e-6), b_std=b_std, depth=depth)):
        assert not np.all(np.abs(wrong - want) <= tol)


@pytest.mark.parametrize("w_std, depth", [(1.414, 32), (1.2, 64), (3.0, 5)])
def test_bias_free_diagonal_is_the_closed_form(w_std, depth):
    """Without biases every layer scales the diagonal covariance by W^2/2, so Sigma_l(x, x) = (W^2/2)^l Sigma_0
    and Theta_L(x, x) = (L + 1) (W^2/2)^L Sigma_0 with Sigma_0 = W^2 |x|^2 / d: the closed-form diagonal that
    the NTK matrix carries (duplicates, where neural-tangents' own arccos path is least accurate), to a sum of
    positive terms' rounding."""
    from roundoff import gamma

    x = real_features(Hypersurface.fermat(3).sample(30, seed=9).points)
    sigma0 = w_std ** 2 * np.sum(x * x, axis=1) / x.shape[1]
    want = (depth + 1) * (w_std ** 2 / 2) ** depth * sigma0
    got = np.diag(relu_ntk(x, x, w_std=w_std, b_std=0.0, depth=depth))
    assert np.all(np.abs(got - want) <= gamma(4 * depth + x.shape[1] + 8) * want)


def test_recursion_at_depth_one_is_the_closed_form():
    """The layer recursion at depth 1 equals the one-layer closed form (one arccos, other arrangement) within the
    one-layer rounding bound of each, near duplicates included."""
    w, b = 1.7, 0.6
    x = Hypersurface.fermat(3).sample(200, seed=5).points
    x = np.concatenate([x, x[:20] * (1.0 + 1e-7 * np.random.default_rng(1).normal(size=(20, 5)))])
    h = relu_features(real_features(x), w, b)
    bound = 2.0 * relu_ntk_entry_error(h, h, w)
    assert np.all(np.abs(relu_tile_deep(h, h, w, b, 1) - relu_tile(h, h, w, b)) <= bound)


def test_depth_must_be_a_positive_integer():
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="depth"):
            ReluNTKKernel(1.0, 0.1, bad)
    assert ReluNTKKernel(1.0, 0.1, 4).params() == {"w_std": 1.0, "b_std": 0.1, "depth": 4}


def test_time_estimate_counts_the_layers(monkeypatch):
    """`--check`'s kernel seconds count one evaluation per layer (the deep kernel's measured cost grows ~linearly
    in depth: 1.06e8, 1.37e7, 1.43e6 entries/s at depth 1, 8, 64), so a deep job's time is not understated: the
    depth-64 job's estimate exceeds the depth-1 one's at least as much as their measured wall times (16.3 / 3.7 s,
    the kernel matrix cached and applied 50 times)."""
    from hpcflow.jobs import registry
    from hpcflow.resources import estimate

    monkeypatch.setenv("HPCFLOW_THREADS", "2")  # the threads of those runs: the estimate's kernel part scales with them
    root = Path(__file__).resolve().parents[1] / "jobs"
    _, deep = registry.load(str(root / "table1_relu_deep.toml"), [])
    _, shallow = registry.load(str(root / "table1_relu_deep.toml"), ["kernel.depth=1"])
    t_deep, t_shallow = estimate(deep).seconds, estimate(shallow).seconds
    assert t_deep / t_shallow >= 16.3 / 3.7
