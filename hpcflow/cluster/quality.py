"""Silhouette score (Rousseeuw 1987) of a clustering on FS geodesic distances (§3.1, Fig. 2 numbers).

s(i) = (b_i - a_i) / max(a_i, b_i) with a_i the mean distance to the other points of i's cluster and b_i
the smallest mean distance to the points of another cluster; s(i) = 0 for a point alone in its cluster
(scikit-learn's convention). The score is the mean of s(i).
Large N: the N x N matrix is never stored; rows are evaluated in tiles against all N points. With
`sample_size` only that many rows (drawn without replacement from `seed`) are evaluated, each still against
all N points, so the estimate is unbiased for the full-data score with standard error ~ std(s)/sqrt(m)
(returned). This differs from scikit-learn's `sample_size`, which also drops the columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcflow.arguments import api_integer, api_seed
from hpcflow.cluster.agglomerative import one_hot
from hpcflow.cluster.inputs import as_points
from hpcflow.errors import ConfigError
from hpcflow.geometry.distance import fs_distance

#: fewest silhouette rows of a subsample: its standard error std(s) / sqrt(m) needs m >= 2
MIN_SAMPLE = 2
#: distance entries per row tile (tile rows x N columns); ~160 MB of float64
TILE_ENTRIES = 20_000_000


@dataclass
class Silhouette:
    """Mean silhouette `score`, its standard error (0 when every point is used), and the rows used."""

    score: float
    stderr: float
    n_rows: int


def silhouette_rows(d_rows, labels, rows) -> np.ndarray:
    """s(i) for the points `rows`, given their distances `d_rows` (len(rows), N) to all N labelled points.
    `labels` are 0 .. k-1 (as `_check_labels` returns them): the work and memory grow with the largest label."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = d_rows @ one_hot(labels, k)  # (m, k): distance sums to each cluster (d(i, i) = 0 included)
    own = labels[rows]
    m = np.arange(len(rows))
    n_own = counts[own]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = sums[m, own] / (n_own - 1.0)
        means = sums / counts
    means[m, own] = np.inf
    means[:, counts == 0] = np.inf
    b = means.min(axis=1)
    denom = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / denom
    s[(n_own <= 1) | (denom == 0)] = 0.0
    return s


def silhouette_precomputed(d, labels) -> float:
    """Mean silhouette from a full square distance matrix (small N)."""
    d = check_distances(d)
    labels = _check_labels(labels, d.shape[0])
    return float(np.mean(silhouette_rows(d, labels, np.arange(d.shape[0]))))


def check_distances(d) -> np.ndarray:
    """A square matrix (N, N) of finite real distances >= 0 as float64, else one ConfigError naming `d` and the fix
    (a nan entry made the score nan without a word)."""
    try:
        d = np.asarray(d)
    except (TypeError, ValueError):  # a ragged list
        d = None
    if d is None or d.dtype.kind not in "iuf":
        raise ConfigError(f"d: {'a ragged or non-numeric array' if d is None else f'dtype {d.dtype}'} is not a "
                          "matrix of distances; pass a square float array (N, N), e.g. fs_distance(points)")
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ConfigError(f"d: shape {d.shape} is not square; pass the distances between all N points, shape (N, N), "
                          "e.g. fs_distance(points)")
    bad = ~(np.isfinite(d) & (d >= 0))
    if bad.any():
        i, j = np.unravel_index(np.argmax(bad), d.shape)
        raise ConfigError(f"d: {int(bad.sum())} entries are nan, inf or negative (first d[{i}, {j}] = {d[i, j]}); "
                          "pass finite distances >= 0")
    return d.astype(np.float64, copy=False)


def silhouette_fs(points, labels, *, sample_size: int | None = None, seed=0,
                  tile_entries: int = TILE_ENTRIES) -> Silhouette:
    """Silhouette on FS distances, tile by tile; `sample_size` rows (None = all points) against all points.
    A `sample_size` above N is refused (ConfigError, as `[quality].sample_size` above n_points), not taken as N."""
    z = as_points(points)
    labels = _check_labels(labels, z.shape[0])
    n = z.shape[0]
    tile_entries = api_integer("tile_entries", tile_entries, "an integer >= 1 (distance entries per tile)", lo=1)
    seed = api_seed("seed", seed, type_error=ConfigError, value_error=ConfigError)
    if sample_size is not None:
        sample_size = api_integer("sample_size", sample_size, f"a whole number of rows >= {MIN_SAMPLE} and <= {n} "
                                  f"(the standard error of a subsample needs two rows; they are drawn from the {n} "
                                  "points), or None for every point", lo=MIN_SAMPLE, hi=n,
                                  type_error=ConfigError, value_error=ConfigError)
    if sample_size is None or sample_size == n:
        rows = np.arange(n)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))
    step = max(1, tile_entries // n)
    s = np.concatenate([silhouette_rows(fs_distance(z[r], z, tile=step), labels, r)
                        for r in (rows[i : i + step] for i in range(0, rows.size, step))])
    stderr = 0.0 if rows.size == n else float(np.std(s, ddof=1) / np.sqrt(rows.size))
    return Silhouette(float(np.mean(s)), stderr, int(rows.size))


def _check_labels(labels, n: int) -> np.ndarray:
    """labels renumbered 0 .. k-1 (k distinct labels, in the order of their values) as an int64 array (n,), else one
    ConfigError saying what is wrong with them: the shape, the dtype (float labels are refused, not truncated) or the
    first negative label. The renumbering makes the cost of the score depend on k, not on the largest label (labels
    {0, 10**12} asked for a 10**12-column indicator matrix)."""
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError):  # a ragged list
        labels = np.asarray(None)
    if labels.shape != (n,):
        raise ConfigError(f"labels: need {n} non-negative integer cluster labels, got shape {labels.shape}; pass one "
                          f"label per point, shape ({n},)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"labels: dtype {labels.dtype} is not an integer one; pass integer cluster labels >= 0, one "
                          "per point (as the clustering functions return them)")
    if n and labels.min() < 0:
        row = int(np.argmax(labels < 0))
        raise ConfigError(f"labels: label {int(labels[row])} at row {row} is negative; pass cluster labels >= 0")
    values, inverse = np.unique(labels, return_inverse=True)
    n_labels = values.size
    if not 2 <= n_labels <= n - 1:
        raise ConfigError(
            f"silhouette needs 2 <= number of clusters <= N-1, got {n_labels} clusters for {n} points; "
            "change n_clusters"
        )
    return inverse.reshape(n).astype(np.int64, copy=False)
