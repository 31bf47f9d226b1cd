"""Sampling one chart stops, naming the chart, its rate and the fix, once the points found in it bound its rate too
low for the batches left of max_batches to give the rest; never for the charts of the Fermat quintic when the batches
can give the points, whose samples stay those of every chart's sample taken in that chart."""

import math
import re

import numpy as np
import pytest

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import LINES_PER_BATCH

#: on X, |z_0| >= |z_k| and |dp/dz_4| >= |dp/dz_k| (k = 1, 2, 3) give |z_k| <= 1e-6^(1/4) |z_4|, and then
#: |z_0^5| = |z_1^5 + z_2^5 + z_3^5 + 1e-6 z_4^5| <= 1.1e-6 |z_0|^5: chart (0, 4) holds no point at all
SMALL = Hypersurface.from_monomials(np.eye(5, dtype=np.int64) * 5, [1, 1, 1, 1, 1e-6])


@pytest.mark.parametrize("n, max_batches", [(1000, 1000), (10, 100)])
def test_an_empty_chart_is_refused_before_max_batches(n, max_batches):
    with pytest.raises(ConfigError) as exc:
        SMALL.sample(n, seed=0, chart=(0, 4), max_batches=max_batches, threads=1)
    said = str(exc.value)
    assert "\n" not in said and said.startswith("chart (0, 4) holds too few points: 0 of the ")
    assert "chart=None" in said and "raise max_batches" in said
    m, done = (int(x) for x in re.search(r"0 of the (\d+) points where the lines of (\d+) batches", said).groups())
    assert m == done * LINES_PER_BATCH * 5
    # no point in m: the rate whose Poisson chance of none is 1e-6 is ln(1e6) / m; it cannot give the n points
    rate = float(re.search(r"a rate of at most ([0-9.e+-]+)", said).group(1))
    assert rate == pytest.approx(math.log(1e6) / m, rel=0.01)
    assert rate * (max_batches - done) * LINES_PER_BATCH * 5 < n
    # and it stops at the first wave after which that holds
    first = math.ceil(max_batches * math.log(1e6) / (n + math.log(1e6)))
    assert first <= done <= first + 4 and done < max_batches


@pytest.fixture(scope="module")
def every():
    return Hypersurface.fermat(3).sample(9000, seed=0, threads=1)  # within block 0 (10240 intersections)


@pytest.mark.parametrize("chart", Hypersurface.fermat(3).charts)
def test_every_quintic_chart_samples_few_points_as_before(chart, every):
    """The sample of one chart is the first n points of that chart in the sample of every chart, by block order."""
    ps = Hypersurface.fermat(3).sample(5, seed=0, chart=chart, threads=1)
    mine = np.flatnonzero((every.chart == chart).all(axis=1))[:5]
    assert len(mine) == 5
    for name in ("points", "weights", "omega2", "g_fs", "chart", "jacobian"):
        np.testing.assert_array_equal(getattr(ps, name), getattr(every, name)[mine])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_chart_the_batches_can_fill_is_not_stopped(seed):
    """Chart (0, 1) holds ~1/20 of the points: ~512 a batch, so 10 batches give ~5100 for 4000 (a wave of 4)."""
    ps = Hypersurface.fermat(3).sample(4000, seed=seed, chart=(0, 1), threads=1, max_batches=10)
    assert len(ps) == 4000 and (ps.chart == (0, 1)).all()
