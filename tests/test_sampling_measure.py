"""The sampler draws points with the FS volume form (Shiffman-Zelditch), checked against an independent MC.

For chart (0, n) the local coordinates x = (z_1..z_{n-1}) lie in the unit polydisc. Drawing x uniformly there
and solving z_n^{n+1} = -(1 + sum x^{n+1}) gives, counting the roots whose canonical chart is (0, n), the
chart region's coordinate volume A. The sampler's points satisfy E[1{chart=(0,n)} / det g_FS] = A / Vol_FS,
so Vol_FS = A / E[...] must equal the analytic FS volume int_X det g_FS d^{2(n-1)}x = pi^{n-1} deg / (n-1)!.
"""

import math

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.geometry.charts import canonical_charts


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_fs_volume_of_fermat_hypersurfaces(dim):
    X = Hypersurface.fermat(dim)
    n, deg = X.n, X.degree
    rng = np.random.default_rng(100 + dim)
    M = 200_000
    r = np.sqrt(rng.random((M, n - 1)))
    x = r * np.exp(2j * np.pi * rng.random((M, n - 1)))
    base = (-(1 + np.sum(x**deg, axis=1)) + 0j) ** (1 / deg)
    hits = np.zeros(M)
    for k in range(deg):
        z = np.concatenate([np.ones((M, 1)), x, (base * np.exp(2j * np.pi * k / deg))[:, None]], axis=1)
        chart, ok = canonical_charts(X, z)
        hits += ok & (chart[:, 0] == 0) & (chart[:, 1] == n)
    area = math.pi ** (n - 1) * hits.mean()
    area_err = math.pi ** (n - 1) * hits.std() / math.sqrt(M)

    ps = X.sample(M, seed=200 + dim)
    f = np.all(ps.chart == [0, n], axis=1) / ps.det_g_fs
    mean, mean_err = f.mean(), f.std() / math.sqrt(M)

    vol = area / mean
    vol_err = vol * math.hypot(area_err / area, mean_err / mean)
    exact = math.pi ** (n - 1) * deg / math.factorial(n - 1)
    assert abs(vol - exact) < 5 * vol_err, (vol, vol_err, exact)
    assert vol_err / exact < 0.02  # the check has teeth: a 10% error in density or g_FS would fail
