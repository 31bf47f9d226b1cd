"""The Gaussian operator's near pairs (pairs closer than `near_distance`, given their stable distance) are found by
KD-tree ball queries of NEAR_QUERY_ROWS rows at a time, so the Python lists of hits of a query exist for those rows
only: the pairs, their order and their distances against a brute-force O(N^2) search, for piece sizes that split
the rows unevenly and one larger than all of them, and the query counted."""

import importlib

import numpy as np
import pytest
import scipy.spatial

from hpcflow.kernels import GaussianKernel
from hpcflow.kernels.gaussian import near_distance

gaussian = importlib.import_module("hpcflow.kernels.gaussian")  # the package's `gaussian` is the function


def _clustered(groups, per_group, seed):
    """groups x per_group points of P^2 (complex rows of random scale): each group a random point and points within
    FS distance ~1e-5 .. 1e-4 of it, so pairs are either far below 1e-3 (same group) or far above it."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(groups, 1, 3)) + 1j * rng.normal(size=(groups, 1, 3))
    step = 10.0 ** rng.uniform(-6, -5, size=(groups, per_group, 1))
    z = base + step * np.abs(base).max() * (rng.normal(size=(groups, per_group, 3))
                                            + 1j * rng.normal(size=(groups, per_group, 3)))
    z = z.reshape(-1, 3)
    return z * rng.uniform(0.1, 10.0, size=(z.shape[0], 1))


def _brute_distances(a, b):
    """FS distances of every pair (N1, N2): for unit u, v with the phase of v turned so that <u, v> >= 0, |u - v| is
    the chord 2 sin(d/2) of d = arccos |<u, v>| (no cancellation near d = 0)."""
    u = a / np.linalg.norm(a, axis=1, keepdims=True)
    v = b / np.linalg.norm(b, axis=1, keepdims=True)
    inner = u.conj() @ v.T  # (N1, N2)
    phase = np.where(inner == 0, 1.0, inner / np.where(inner == 0, 1.0, np.abs(inner)))
    chord = np.linalg.norm(u[:, None, :] - v[None, :, :] * phase.conj()[:, :, None], axis=2)
    return 2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0))


@pytest.mark.parametrize("same", [True, False])
def test_near_pairs_in_pieces_are_the_brute_force_pairs_in_row_order(monkeypatch, same):
    x = _clustered(10, 5, seed=1)  # 50 rows
    x_src = x if same else np.concatenate([x[3::2] * 1.7j, _clustered(6, 4, seed=2)])
    kernel = GaussianKernel(0.3, form="gauss")
    below = near_distance(kernel)
    d = _brute_distances(x, x_src)
    assert np.all((d < below / 3) | (d > below * 3))  # no pair near the cut, where rounding could decide
    want_rows, want_cols = np.nonzero(d < below)  # row-major: sorted by row
    assert 50 < want_rows.size < 50 * len(x_src) / 4  # most rows have several near pairs, most pairs are not near
    results = []
    for piece in (7, 1, 13, 50, 1000):  # uneven splits of the 50 rows, one piece of them all, a piece larger
        monkeypatch.setattr(gaussian, "NEAR_QUERY_ROWS", piece)
        op = kernel.operator(x, x_src)
        rows, cols, dist = op.pair_rows, op.pair_cols, op.pair_dist
        assert rows.dtype == cols.dtype == np.int64 and dist.dtype == np.float64
        assert np.array_equal(rows, want_rows) and np.all(np.diff(rows) >= 0)
        order = np.lexsort((cols, rows))
        assert np.array_equal(cols[order], want_cols)
        assert np.allclose(dist, d[rows, cols], rtol=1e-7, atol=1e-12)  # NOISE_FLOOR: exact duplicates are 0
        results.append((rows, cols, dist))
    for rows, cols, dist in results[1:]:  # the same pairs in the same order, whatever the pieces
        assert np.array_equal(rows, results[0][0]) and np.array_equal(cols, results[0][1])
        assert np.allclose(dist, results[0][2], rtol=1e-12, atol=0.0)


def test_near_pair_query_is_split_into_pieces_of_rows(monkeypatch):
    sizes = []

    class Tree(scipy.spatial.cKDTree):
        def query_ball_point(self, x, *args, **kwargs):
            sizes.append(len(x))
            return super().query_ball_point(x, *args, **kwargs)

    monkeypatch.setattr(scipy.spatial, "cKDTree", Tree)
    monkeypatch.setattr(gaussian, "NEAR_QUERY_ROWS", 7)
    x = _clustered(10, 5, seed=3)
    op = GaussianKernel(0.3, form="gauss").operator(x, x)
    assert sizes == [7] * 7 + [1]
    assert op.pair_rows.size >= 50 and np.array_equal(np.unique(op.pair_rows), np.arange(50))
    sizes.clear()
    GaussianKernel(0.3, form="gauss").operator(x[:0], x)  # no rows: no query
    assert sizes == []
