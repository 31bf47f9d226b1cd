"""Unbatched FS clustering: average linkage on the full N x N FS distance matrix (Fig. 2, right panel).

Memory grows like N^2 (about 16 N^2 bytes, as measured in BENCHMARKS.md: the N x N matrix, 8 N^2, and the
condensed copies SciPy's linkage works on), so N is capped by `max_points` (default 20,000, ~6 GiB); larger sets
need the batched method.
"""

from __future__ import annotations

from hpcflow.cluster.agglomerative import average_linkage
from hpcflow.cluster.inputs import as_points, check_n_clusters, check_tile
from hpcflow.cluster.result import Clustering
from hpcflow.errors import ConfigError
from hpcflow.geometry.distance import DEFAULT_TILE, fs_distance

MAX_POINTS = 20_000


def full_clustering(points, *, n_clusters: int, max_points: int = MAX_POINTS, tile: int = DEFAULT_TILE) -> Clustering:
    """k average-linkage clusters of all points at once on their FS distance matrix."""
    tile = check_tile(tile)
    z = as_points(points)
    if z.shape[0] > max_points:
        raise ConfigError(
            f"method 'full' on {z.shape[0]} points needs a {z.shape[0]}^2 distance matrix (limit {max_points} "
            "points); use method 'batched'"
        )
    k = check_n_clusters(n_clusters, z.shape[0])
    return Clustering(average_linkage(fs_distance(z, tile=tile), k), k, "full")
