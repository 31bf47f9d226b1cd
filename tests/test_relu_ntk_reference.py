"""The ReLU NTK against neural-tangents, the implementation the paper used: reference values computed once by
tests/reference/make_relu_ntk_fixture.py (run by hand) and stored in tests/data/relu_ntk_reference.json."""

from pathlib import Path

import numpy as np
import pytest

from hpcflow.kernels import ReluNTKKernel, real_features, relu_ntk
from reference import load_relu_ntk_fixture
from roundoff import gamma, relu_ntk_entry_error

FIXTURE = Path(__file__).parent / "data" / "relu_ntk_reference.json"
PAPER = (5.716, 80.52)  # Table 1


@pytest.fixture(scope="module")
def ref():
    return load_relu_ntk_fixture(FIXTURE)


def setting(ref, w_std, b_std):
    return next(s for s in ref["settings"] if (s["w_std"], s["b_std"]) == (w_std, b_std))


def tolerance(points, w_std, b_std):
    """Both sides' rounding bounds: each evaluates the same arc-cosine kernel in float64 from a cosine (or
    sine^2) of the layer-0 covariance known to a few gamma_d, so relu_ntk_entry_error bounds each of them."""
    h = ReluNTKKernel(w_std, b_std).features(points)
    return 2.0 * relu_ntk_entry_error(h, h, w_std)


def within(got, want, tol):
    return bool(np.all(np.abs(got - want) <= tol))


def test_fixture_inputs_are_the_networks_inputs(ref):
    """The fixture's network inputs are hpcflow's: (Re z, Im z) of chart-normalised points (a coordinate exactly 1),
    d = 2(n+1) = 10 on the quintic; the paper's setting is among the references."""
    z = ref["points"]
    assert z.shape == (20, 5) and np.all(np.any(z == 1.0, axis=1))
    np.testing.assert_array_equal(real_features(z), ref["inputs"])
    assert ref["inputs"].shape == (20, 10)
    assert setting(ref, *PAPER)["ntk"].shape == (20, 20)


@pytest.mark.parametrize("w_std, b_std", [PAPER, (1.5, 0.3), (1.0, 0.0)])
def test_relu_ntk_matches_neural_tangents(ref, w_std, b_std):
    """Every entry of Theta on the fixture's inputs (near duplicates included) equals neural-tangents' infinite-width
    NTK within the two implementations' rounding bounds, by each evaluation path: the closed-form diagonal, the
    general arccos formula on a copy, and the kernel object on chart-normalised points. The bound is sharp (below
    3e-7 of sqrt(Theta(x, x) Theta(x', x')) even at the arccos branch point), so no convention change hides in it."""
    z, x, want = ref["points"], ref["inputs"], setting(ref, w_std, b_std)["ntk"]
    tol = tolerance(z, w_std, b_std)
    assert np.all(tol <= 3e-7 * np.sqrt(np.outer(np.diag(want), np.diag(want))))
    kern = ReluNTKKernel(w_std, b_std)
    for got in (relu_ntk(x, x, w_std=w_std, b_std=b_std), relu_ntk(x, x.copy(), w_std=w_std, b_std=b_std),
                kern.block(z, z), kern.block(z, z.copy())):
        excess = np.abs(got - want) - tol
        assert np.all(excess <= 0), f"worst excess {excess.max():.3g} over the rounding bound"


@pytest.mark.parametrize("w_std, b_std", [PAPER, (1.5, 0.3), (1.0, 0.0)])
def test_relu_ntk_diagonal_matches_neural_tangents_nngp_diagonal(ref, w_std, b_std):
    """On the diagonal ReLU has Sigma1 = Sigma0 / 2 and Sigmadot = 1/2, so Theta(x, x) = 2 K(x, x) - b^2 with K
    neural-tangents' NNGP diagonal, which it propagates without an angle: a check to a few ulps (sums of d
    positive terms on both sides, one cancellation of at most 2), where the full matrix is only known to ~1e-7."""
    z = ref["points"]
    d = ref["inputs"].shape[1]
    want = 2.0 * setting(ref, w_std, b_std)["nngp_diagonal"] - b_std ** 2
    for got in (np.diag(relu_ntk(ref["inputs"], ref["inputs"], w_std=w_std, b_std=b_std)),
                np.diag(ReluNTKKernel(w_std, b_std).block(z, z))):
        assert np.all(np.abs(got - want) <= 2.0 * gamma(2 * d + 16) * (want + 2 * b_std ** 2))
    assert np.all(np.abs(np.diag(setting(ref, w_std, b_std)["ntk"]) - want) <= 1e-7 * want)  # fixture consistent


def test_reference_comparison_detects_convention_changes(ref):
    """The comparison fails for each plausible convention slip at the paper's setting: b_std or W_std off by 1e-6
    relative, a factor 1/2, inputs without the 1/sqrt(d) fan-in scaling, and the NNGP (the fixture's other
    kernel) in place of the NTK."""
    z, x = ref["points"], ref["inputs"]
    w, b = PAPER
    s = setting(ref, w, b)
    tol = tolerance(z, w, b)
    assert within(relu_ntk(x, x, w_std=w, b_std=b), s["ntk"], tol)
    unscaled = x * np.sqrt(x.shape[1])
    wrong = [relu_ntk(x, x, w_std=w, b_std=b * (1 + 1e-6)), relu_ntk(x, x, w_std=w * (1 + 1e-6), b_std=b),
             0.5 * relu_ntk(x, x, w_std=w, b_std=b), relu_ntk(unscaled, unscaled, w_std=w, b_std=b), s["nngp"]]
    for k, got in enumerate(wrong):
        assert not within(got, s["ntk"], tol), k
