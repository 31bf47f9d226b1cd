"""A manifold whose random lines meet it in more than about 1% of points float64 cannot place on X (Dwork at large
|psi|) is refused after the first wave of batches, in one line naming psi and the |psi| that works; that |psi| is
checked against the fraction of points the sampler actually places there, and the threshold against the binomial
law. Ordinary psi sample the same bits, block by block."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from scipy.stats import binom

from hpcflow.backend import get_xp
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, sampling
from hpcflow.geometry.sampling import LINES_PER_BATCH


@pytest.fixture
def blocks(monkeypatch):
    """The blocks sampled while the test runs."""
    seen = []
    real = sampling.sample_block

    def counted(surface, k, *args, **kw):
        seen.append(k)
        return real(surface, k, *args, **kw)

    monkeypatch.setattr(sampling, "sample_block", counted)
    return seen


def _lost(X, seed=11, lines=LINES_PER_BATCH):
    """Fraction of the points where random lines meet X that the sampler cannot place on X."""
    z, bad = X.line_points(lines, np.random.default_rng(seed))
    return bad / (lines * X.degree)


@pytest.mark.parametrize("dim, psi", [(3, 1e9), (2, 3e6j), (1, -1e7)])
def test_a_huge_psi_is_refused_after_the_first_wave_naming_psi_and_the_psi_that_works(blocks, dim, psi):
    X = Hypersurface.dwork(dim, psi)
    with pytest.raises(ConfigError) as exc:
        X.sample(1000, seed=0, threads=1, max_batches=40)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"dwork(dim={dim}, psi=") and "cannot be placed on X" in msg
    assert blocks == [0]  # 1000 points need one batch: the first wave
    bound = float(re.search(r"use \|psi\| <= ([0-9.e+-]+) ", msg).group(1))
    assert abs(psi) > 100 * bound
    # the bound is where about 99% of the points are placed; ten times above it most are lost
    direction = psi / abs(psi)
    assert _lost(Hypersurface.dwork(dim, bound * direction)) <= 0.02
    assert _lost(Hypersurface.dwork(dim, 10 * bound * direction)) > 0.5


def test_other_manifolds_with_ill_conditioned_roots_are_told_to_balance_coefficients():
    dwork = Hypersurface.dwork(3, 1e9)
    X = Hypersurface.from_monomials(dwork.monomials, dwork.coefficients)
    with pytest.raises(ConfigError, match="custom.*coefficients of comparable sizes"):
        X.sample(100, seed=0, threads=1, max_batches=40)


@pytest.mark.parametrize("psi", [0.0, 0.3 + 0.2j, 1.0001, 100.0, 1e4])
def test_ordinary_psi_sample_the_points_of_their_blocks(psi):
    """The set is the first N points of blocks 0, 1, ... formed one by one from SeedSequence(seed, spawn_key=(k,)),
    bitwise: the first-wave check changes no point."""
    X = Hypersurface.dwork(3, psi)
    n = 3 * LINES_PER_BATCH * X.degree // 2
    ps = X.sample(n, seed=9, threads=2)
    parts, have, k = [], 0, 0
    while have < n:
        z, _ = X.line_points(LINES_PER_BATCH, np.random.default_rng(np.random.SeedSequence(9, spawn_key=(k,))),
                             xp=get_xp(auto_on_host=True))  # the sampler's array module (CuPy where asked for)
        parts.append(X.point_set(z))
        have, k = have + len(parts[-1]), k + 1
    for name in ("points", "weights", "omega2", "g_fs", "chart"):
        want = np.concatenate([getattr(p, name) for p in parts])[:n]
        assert getattr(ps, name).tobytes() == want.tobytes(), name
    assert _lost(X) <= 0.01  # these are placed on X (below the refusal's threshold by far)


def _lost_in_block(X, seed, k=0):
    """Fraction of block k's points (the sampler's stream SeedSequence(seed, spawn_key=(k,)), on its array module)
    not placed on X."""
    z, bad = X.line_points(LINES_PER_BATCH, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,))),
                           xp=get_xp(auto_on_host=True))
    return bad / (LINES_PER_BATCH * X.degree)


@pytest.mark.parametrize("dim, psi", [(3, 1e5), (1, 1e4), (2, -3e4j)])
def test_a_psi_that_loses_several_percent_of_the_points_is_refused(blocks, dim, psi):
    """Leaving out a few percent of the intersection points biases the sample: refused after the first wave (one
    block for 1000 points), with the fraction that block loses."""
    X = Hypersurface.dwork(dim, psi)
    lost = _lost_in_block(X, seed=0)
    assert 0.03 < lost < 0.15  # several percent: well under the majority that alone was refused
    with pytest.raises(ConfigError) as exc:
        X.sample(1000, seed=0, threads=1)
    msg = str(exc.value)
    assert "\n" not in msg and "cannot be placed on X" in msg and "use |psi| <= " in msg
    assert f"{lost:.1%} of the {LINES_PER_BATCH * X.degree} points" in msg
    assert blocks == [0]


@pytest.mark.parametrize("dim, psi", [(3, 3e4), (1, 3e3), (1, 1e3), (3, -1e3j)])
def test_a_psi_that_loses_far_under_one_percent_samples(dim, psi):
    X = Hypersurface.dwork(dim, psi)
    assert _lost_in_block(X, seed=0) < 0.005
    ps = X.sample(1000, seed=0, threads=1)
    assert len(ps) == 1000 and ps.n_dropped < 0.005 * LINES_PER_BATCH * X.degree


@pytest.mark.parametrize("degree", [3, 5, 10, 18])
@pytest.mark.parametrize("batches", [1, 4])
def test_the_refusal_threshold_lets_one_percent_pass_and_refuses_two(degree, batches):
    """Exact binomial tails at the first wave's size: a sample whose points are lost with probability 1% is refused
    rarely (<= 0.25%), one with 2% almost always; the threshold lies above 1% and below 1.5%."""
    total = batches * LINES_PER_BATCH * degree
    limit = sampling.max_off_x(total)
    assert 0.01 < limit < 0.015
    refused = int(np.floor(limit * total)) + 1  # the fewest lost points refused
    assert refused / total > limit >= (refused - 1) / total
    assert binom.sf(refused - 1, total, 0.01) <= 0.0025
    assert binom.cdf(refused - 1, total, 0.02) < 0.01


@pytest.mark.parametrize("dim, psi", [(3, 1e300), (2, -1e200j), (1, 1e100)])
def test_a_psi_whose_polynomial_overflows_is_refused_without_numpy_warnings(dim, psi):
    """Dwork at |psi| ~ 1e300 overflows p, the Aberth and Newton steps and |grad p| to inf and nan, which the root
    finder and line_points handle (such steps are not taken, such points dropped): NumPy's RuntimeWarnings of them
    (overflow in multiply, invalid value) came out before the ConfigError. The error is the one given with the
    warnings ignored, and none is given, threaded or not."""
    X = Hypersurface.dwork(dim, psi)
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ConfigError) as quiet:
                X.sample(5, seed=seed, threads=1)
        assert "cannot be placed on X" in str(quiet.value) and "use |psi| <= " in str(quiet.value)
        for threads in (1, 2):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(ConfigError) as exc:
                    X.sample(5, seed=seed, threads=threads)
            assert str(exc.value) == str(quiet.value)


def test_a_cone_and_ordinary_polynomials_sample_without_numpy_warnings():
    """p = z0^5 + ... + z3^5 (free of z4: a cone, singular at (0, 0, 0, 0, 1)) and ordinary polynomials sample with
    NumPy's warnings as errors."""
    cone = Hypersurface.from_monomials([[5, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0], [0, 0, 0, 5, 0]],
                                       [1, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for X in (cone, Hypersurface.fermat(3), Hypersurface.dwork(3, 0.3 + 0.2j), Hypersurface.dwork(1, 100.0)):
            for seed in range(3):
                ps = X.sample(100, seed=seed)
                assert len(ps.points) == 100 and np.all(X.residual(ps.points) < 1e-12)
