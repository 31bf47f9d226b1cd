"""One entry point for the three clustering methods ("batched", "full", "birch") by name."""

from __future__ import annotations

from hpcflow.cluster.batched import batched_clustering
from hpcflow.cluster.birch import birch_clustering
from hpcflow.cluster.full import MAX_POINTS, full_clustering
from hpcflow.cluster.inputs import check_batch_size, check_batched, check_merge, check_n_clusters
from hpcflow.cluster.result import Clustering
from hpcflow.errors import ConfigError

METHODS = ("batched", "full", "birch")


def cluster_points(points, *, method: str = "batched", n_clusters: int, batch_size: int = 10_000, seed=0,
                   merge: str = "nearest") -> Clustering:
    """Cluster points by `method`; `batch_size`, `seed` and `merge` (eq. 3.3 rule: "nearest" or "paper") matter
    for "batched" only (the others are deterministic), but are checked for every method (`check_batched`: a
    ConfigError naming the first bad one)."""
    check_method(method)  # (the method first: a misspelt one is the error to name, not a setting it would ignore)
    check_batched(batch_size, seed, merge)
    if method == "batched":
        return batched_clustering(points, n_clusters=n_clusters, batch_size=batch_size, seed=seed, merge=merge)
    if method == "full":
        return full_clustering(points, n_clusters=n_clusters)
    return birch_clustering(points, n_clusters=n_clusters)


def check_method(method) -> str:
    """The clustering method must be one of METHODS."""
    if method not in METHODS:
        raise ConfigError(f"clustering method {method!r} is not one of {', '.join(METHODS)}; use one of these")
    return method


def check_settings(n_points: int, *, method: str, n_clusters: int, batch_size: int = 10_000,
                   merge: str = "nearest") -> None:
    """Raise the ConfigError that `cluster_points` would raise for these sizes, without any points (job checks)."""
    check_merge(merge)
    check_method(method)
    if n_points < 1:
        raise ConfigError("the point set is empty; sample at least one point")
    if method == "batched":
        check_n_clusters(n_clusters, n_points, batch_size=check_batch_size(batch_size))
    else:
        if method == "full" and n_points > MAX_POINTS:
            raise ConfigError(f"method 'full' on {n_points} points exceeds its limit of {MAX_POINTS}; use 'batched'")
        check_n_clusters(n_clusters, n_points)
