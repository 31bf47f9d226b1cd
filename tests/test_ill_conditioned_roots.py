"""A manifold whose random lines meet it mostly in points float64 cannot place on X (Dwork at huge |psi|) is refused
after the first wave of batches, in one line naming psi and the |psi| that works; that |psi| is checked against the
fraction of points the sampler actually places there. Ordinary psi sample the same bits, block by block."""

from __future__ import annotations

import re

import numpy as np
import pytest

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
    assert _lost(Hypersurface.dwork(dim, 10 * bound * direction)) > sampling.MAX_OFF_X


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
        z, _ = X.line_points(LINES_PER_BATCH, np.random.default_rng(np.random.SeedSequence(9, spawn_key=(k,))))
        parts.append(X.point_set(z))
        have, k = have + len(parts[-1]), k + 1
    for name in ("points", "weights", "omega2", "g_fs", "chart"):
        want = np.concatenate([getattr(p, name) for p in parts])[:n]
        assert getattr(ps, name).tobytes() == want.tobytes(), name
    assert _lost(X) <= 0.01  # these are placed on X (below the refusal's threshold by far)
