"""Batched agglomerative clustering by FS geodesic distance, paper §3.1 steps 1-5 and eq. 3.3.

1. The points are shuffled with `numpy.random.default_rng(seed)` and split into ceil(N/B) mini-batches
   of as equal size as possible (sizes differ by at most one, none exceeds B).
2. Each mini-batch gets k clusters by average-linkage agglomerative clustering on its precomputed FS
   distance matrix (scikit-learn).
3. The k clusters of the first mini-batch are the seeds c^1_alpha.
4. Each cluster c^I_beta of a later mini-batch joins a seed, by the mean FS distance
   D[alpha, beta] = mean_{x in c^1_alpha, y in c^I_beta} d(x, y) and the rule `merge`:
   "nearest" (default): beta joins the seed alpha with the smallest D[alpha, beta].
   "paper" (eq. 3.3 as printed): each seed alpha takes the cluster beta with the smallest D[alpha, beta]
   of every batch. A cluster two seeds take joins the one of them with the smaller D (each point must lie
   in exactly one flow block, and that seed is where the printed minimum is attained more closely; the
   other seed takes nothing from that batch); a cluster no seed takes joins its nearest seed as in
   "nearest" (dropping it would leave its points out of the flow, keeping it would give more than k
   clusters). Distances are always measured to the seeds (batch-1 points only), so the mini-batches are
   merged independently and in any order with the same result.
5. Every point therefore lies in exactly one final cluster c_alpha = c^1_alpha U (joined clusters).

Ties: `numpy.argmin` (lowest-numbered seed or batch cluster); seeds are numbered by first occurrence in the
shuffled first batch, so the result is a function of (points, k, B, seed, merge) only. Empty seeds cannot
occur: every seed keeps its own first-batch points, even when no later cluster joins it (final cluster
sizes can then be unequal; `Clustering.sizes()` reports them).
Memory: one B x B distance matrix per batch (plus scikit-learn's condensed copy); the seed-to-batch
mean distances are accumulated tile by tile and never stored as a matrix.
"""

from __future__ import annotations

import math

import numpy as np

from hpcflow.cluster.agglomerative import average_linkage, one_hot
from hpcflow.cluster.inputs import as_points, check_batch_size, check_merge, check_n_clusters, check_seed, check_tile
from hpcflow.cluster.result import Clustering
from hpcflow.geometry.distance import DEFAULT_TILE, fs_distance
from hpcflow.progress import progress


def split_batches(n_points: int, batch_size: int, seed) -> list[np.ndarray]:
    """Step 1: shuffled point indices cut into ceil(N/B) mini-batches of near-equal size (<= B each)."""
    perm = np.random.default_rng(check_seed(seed)).permutation(n_points)
    return np.array_split(perm, math.ceil(n_points / batch_size))


def cluster_sum_distances(z1, labels1, z2, labels2, n_clusters: int, *, tile: int = DEFAULT_TILE):
    """S[alpha, beta] = sum of d_FS(x, y) over x in cluster alpha of z1, y in cluster beta of z2 (tiled)."""
    h1, h2 = one_hot(labels1, n_clusters), one_hot(labels2, n_clusters)
    out = np.zeros((n_clusters, n_clusters))
    for s in range(0, z1.shape[0], tile):
        d = fs_distance(z1[s : s + tile], z2, tile=tile)
        out += h1[s : s + tile].T @ (d @ h2)
    return out


def merge_targets(mean, merge: str = "nearest") -> np.ndarray:
    """Step 4: the seed each batch cluster joins, from the (seeds, clusters) mean FS distances, by rule `merge`."""
    nearest = np.argmin(mean, axis=0)
    if check_merge(merge) == "nearest":
        return nearest
    picks = np.argmin(mean, axis=1)  # eq. 3.3: seed alpha takes cluster picks[alpha]
    taken = picks[:, None] == np.arange(mean.shape[1])
    return np.where(taken.any(axis=0), np.argmin(np.where(taken, mean, np.inf), axis=0), nearest)


def merge_census(clustering: Clustering) -> dict:
    """Later batches' clusters taken by one seed, several, none (eq. 3.3 as printed), and those whose seed is not
    their nearest one (0 under "nearest")."""
    means = clustering.merge_distance[1:]
    taken = np.array([np.bincount(np.argmin(m, axis=1), minlength=m.shape[1]) for m in means])
    moved = sum(int((t != merge_targets(m)).sum()) for t, m in zip(clustering.merge_target[1:], means))
    return {"taken_once": int((taken == 1).sum()), "taken_more": int((taken > 1).sum()),
            "taken_none": int((taken == 0).sum()), "not_nearest": moved}


def merge_to_seeds(z_seed, seed_labels, z_batch, batch_labels, n_clusters: int, *, merge: str = "nearest",
                   tile: int = DEFAULT_TILE):
    """Step 4 / eq. 3.3: the seed each cluster of a batch joins, and the (k, k) mean seed-to-cluster distances."""
    sums = cluster_sum_distances(z_seed, seed_labels, z_batch, batch_labels, n_clusters, tile=tile)
    counts1 = np.bincount(seed_labels, minlength=n_clusters).astype(np.float64)
    counts2 = np.bincount(batch_labels, minlength=n_clusters).astype(np.float64)
    mean = sums / np.outer(counts1, counts2)
    return merge_targets(mean, merge), mean


def batched_clustering(points, *, n_clusters: int, batch_size: int, seed=0, merge: str = "nearest",
                       tile: int = DEFAULT_TILE) -> Clustering:
    """Cluster (N, n+1) points (or a PointSet) into k FS clusters with mini-batches of size <= B (§3.1)."""
    check_merge(merge)
    tile = check_tile(tile)
    z = as_points(points)
    batch_size = check_batch_size(batch_size)
    k = check_n_clusters(n_clusters, z.shape[0], batch_size=batch_size)
    batches = split_batches(z.shape[0], batch_size, seed)
    labels = np.empty(z.shape[0], dtype=np.int64)
    batch_index = np.empty(z.shape[0], dtype=np.int64)
    batch_labels = np.empty(z.shape[0], dtype=np.int64)
    targets, means = [np.arange(k)], [None]
    z_seed = z[batches[0]]
    for i, idx in enumerate(progress(batches, desc="clustering", unit="batch", lines=True)):
        zb = z_seed if i == 0 else z[idx]
        lab = average_linkage(fs_distance(zb, tile=tile), k)
        if i == 0:
            seed_labels, target = lab, np.arange(k)
        else:
            target, mean = merge_to_seeds(z_seed, seed_labels, zb, lab, k, merge=merge, tile=tile)
            targets.append(target)
            means.append(mean)
        labels[idx], batch_index[idx], batch_labels[idx] = target[lab], i, lab
    return Clustering(labels, k, "batched", seed=int(seed), merge=merge, batch_index=batch_index,
                      batch_labels=batch_labels, merge_target=targets, merge_distance=means)
