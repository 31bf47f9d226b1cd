"""One entry point for the three clustering methods ("batched", "full", "birch") by name."""

from __future__ import annotations

from hpcflow.cluster.batched import batched_clustering
from hpcflow.cluster.birch import birch_clustering
from hpcflow.cluster.full import full_clustering
from hpcflow.cluster.result import Clustering
from hpcflow.errors import ConfigError

METHODS = ("batched", "full", "birch")


def cluster_points(points, *, method: str = "batched", n_clusters: int, batch_size: int = 10_000, seed=0) -> Clustering:
    """Cluster points by `method`; `batch_size` and `seed` matter for "batched" only (the others are deterministic)."""
    if method == "batched":
        return batched_clustering(points, n_clusters=n_clusters, batch_size=batch_size, seed=seed)
    if method == "full":
        return full_clustering(points, n_clusters=n_clusters)
    if method == "birch":
        return birch_clustering(points, n_clusters=n_clusters)
    raise ConfigError(f"clustering method {method!r} is not one of {', '.join(METHODS)}; use one of these")
