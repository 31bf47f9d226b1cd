"""Average-linkage agglomerative clustering on a precomputed FS distance matrix (§3.1 step 2, scikit-learn).

Labels are renumbered by first occurrence (the cluster of point 0 is 0, the next new cluster 1, ...), so
they depend only on the partition and the point order, never on scikit-learn's internal numbering.
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
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed", linkage="average")
    return canonical_labels(model.fit_predict(d))


def one_hot(labels, n_clusters: int) -> np.ndarray:
    """(N, k) float64 indicator matrix of the labels: sums over clusters become one matmul."""
    out = np.zeros((labels.shape[0], n_clusters), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out
