"""The outcome of a clustering: one label per point, plus the mini-batch bookkeeping of the batched method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Clustering:
    """Cluster label of every point (0..n_clusters-1) and how it was obtained.

    For method "batched": `batch_index` (N,) is the mini-batch of each point, `batch_labels` (N,) its
    cluster within that mini-batch, and `merge_target[I][beta]` the seed cluster (of mini-batch 0) that
    cluster beta of mini-batch I joined (eq. 3.3); `merge_distance[I]` (k, k) holds the mean FS distances
    between seed clusters (rows) and the clusters of mini-batch I (columns); `merge` the rule that chose the
    targets ("nearest" or "paper"). None for other methods.
    """

    labels: np.ndarray
    n_clusters: int
    method: str
    seed: int | None = None
    merge: str | None = None
    batch_index: np.ndarray | None = None
    batch_labels: np.ndarray | None = None
    merge_target: list | None = None
    merge_distance: list | None = None

    def sizes(self) -> np.ndarray:
        """Number of points in each cluster (n_clusters,)."""
        return np.bincount(self.labels, minlength=self.n_clusters)

    def order(self) -> np.ndarray:
        """A permutation that lists the points cluster by cluster (stable within a cluster): Fig. 2 ordering."""
        return np.argsort(self.labels, kind="stable")
