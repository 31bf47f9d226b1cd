"""Average-linkage agglomerative clustering on a precomputed FS distance matrix (§3.1 step 2).

SciPy's linkage builds the merge tree; k clusters are what the first N - k merges join (the partition
scikit-learn's AgglomerativeClustering gives, without its 1.5 s import in every process). Labels are renumbered
by first occurrence (the cluster of point 0 is 0, the next new cluster 1, ...), so they depend only on the
partition and the point order.
"""

from __future__ import annotations

import numpy as np


def canonical_labels(labels) -> np.ndarray:
    """Renumber cluster ids 0, 1, ... in order of first occurrence (int64)."""
    labels = np.asarray(labels)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


def average_linkage(d, n_clusters: int) -> np.ndarray:
    """k clusters of the points behind the square FS distance matrix `d` (average linkage, precomputed).

    Deterministic for a given matrix (scipy's linkage underneath breaks ties by merge order); the
    caller shuffles points from a seed where a random order is wanted.
    """
    n = d.shape[0]
    if n_clusters == 1 or n == 1:
        return np.zeros(n, dtype=np.int64)
    if n_clusters >= n:
        return np.arange(n, dtype=np.int64)
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    merges = linkage(squareform(np.asarray(d, dtype=np.float64), checks=False), method="average")
    return canonical_labels(_first_merges(merges[: n - n_clusters, :2].astype(np.int64), n))


def _first_merges(children, n: int) -> np.ndarray:
    """Root below the cut of each of the n leaves, after the merges `children` (rows: the two nodes joined
    into node n + row, in merge order): pointer doubling, log2(n) vectorised passes."""
    parent = np.arange(n + children.shape[0], dtype=np.int64)
    parent[children[:, 0]] = parent[children[:, 1]] = n + np.arange(children.shape[0])
    while True:
        up = parent[parent]
        if np.array_equal(up, parent):
            return parent[:n]
        parent = up


def one_hot(labels, n_clusters: int) -> np.ndarray:
    """(N, k) float64 indicator matrix of the labels: sums over clusters become one matmul."""
    out = np.zeros((labels.shape[0], n_clusters), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out
