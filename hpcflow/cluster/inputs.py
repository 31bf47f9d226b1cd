"""Checks shared by the clustering entry points: points as (N, n+1) complex128 arrays, sizes of k and B.

Every bad input is a one-line `ConfigError` (exit status 2 at the CLI) naming the setting and the fix, the shuffle
seed's too (as `Hypersurface.sample`'s). Whole numbers are taken as the rest of the API takes them
(`arguments.api_integer`, `api_seed`): an int, a NumPy integer or an integral float (5.0); a seed of any size >= 0.
"""

from __future__ import annotations

import math

import numpy as np

from hpcflow.arguments import api_integer, api_seed
from hpcflow.errors import ConfigError

#: rules of the eq. 3.3 merge (hpcflow.cluster.batched): each batch cluster picks its nearest seed, or each
#: seed takes its nearest cluster of every batch (as printed)
MERGES = ("nearest", "paper")


def as_points(points, name: str = "points", *, allow_empty: bool = False) -> np.ndarray:
    """Homogeneous points (N, n+1) complex128 from an array or a PointSet; reject empty sets and NaN/inf."""
    z = getattr(points, "points", points)
    try:
        z = np.asarray(z, dtype=np.complex128)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: not an array of homogeneous coordinates; pass an (N, n+1) array") from None
    if z.ndim != 2 or z.shape[1] < 2:
        raise ConfigError(f"{name}: shape {z.shape} is not (N, n+1) with n >= 1; pass homogeneous coordinates")
    if z.shape[0] == 0 and not allow_empty:
        raise ConfigError(f"{name}: the point set is empty; sample at least one point")
    bad = ~np.all(np.isfinite(z), axis=1)
    if bad.any():
        raise ConfigError(
            f"{name}: {int(bad.sum())} point(s) contain NaN or inf (first at row {int(np.argmax(bad))}); "
            "drop or resample them"
        )
    zero = ~np.any(z != 0, axis=1)  # not |z| == 0: |z| underflows to 0 for valid points such as 1e-170 z
    if zero.any():
        raise ConfigError(f"{name}: row {int(np.argmax(zero))} has all coordinates 0, which is no point of P^n; "
                          "drop it")
    return z


def check_n_clusters(n_clusters, n_points: int, *, batch_size: int | None = None) -> int:
    """k must be an integer with 1 <= k <= the points clustered together: all n_points, or with `batch_size` (the
    batched method) the smallest of the ceil(N/B) near-equal mini-batches, floor(N / ceil(N/B)) points. The advice
    fits the case: more points when k > N, else the batch size that makes the smallest mini-batch hold k points."""
    n_clusters = check_cluster_count(n_clusters)
    if n_clusters > n_points:
        raise ConfigError(f"n_clusters = {n_clusters} is larger than the {n_points} points; lower n_clusters or "
                          "cluster more points")
    if batch_size is not None and n_clusters > (smallest := n_points // math.ceil(n_points / batch_size)):
        need = math.ceil(n_points / (n_points // n_clusters))  # the least B whose smallest mini-batch holds k
        raise ConfigError(
            f"n_clusters = {n_clusters} is larger than the {smallest} points of the smallest mini-batch (N="
            f"{n_points} split into batches of <= {batch_size}); lower n_clusters or raise batch_size to >= {need}"
        )
    return int(n_clusters)


def check_cluster_count(n_clusters) -> int:
    """k as an int: an integer >= 1, whatever the points (`check_n_clusters` compares it with them)."""
    n_clusters = api_integer("n_clusters", n_clusters, "an integer >= 1", type_error=ConfigError,
                             value_error=ConfigError)
    if n_clusters < 1:
        raise ConfigError(f"n_clusters = {n_clusters} must be >= 1; use at least one cluster")
    return int(n_clusters)


def check_seed(seed) -> int:
    """The shuffle seed of the batched method: an integer >= 0 of any size, as `Hypersurface.sample` takes seeds
    (`api_seed`; job files bound it to SEED_MAX). None, a random seed, would give each MPI rank its own
    mini-batches: refused."""
    return api_seed("seed", seed, "an integer >= 0 (of any size; None is not reproducible across ranks)",
                    type_error=ConfigError, value_error=ConfigError)


def check_batch_size(batch_size) -> int:
    """The mini-batch size B of §3.1 must be an integer >= 2 (a batch of one point cannot be clustered)."""
    batch_size = api_integer("batch_size", batch_size, "an integer >= 2", type_error=ConfigError,
                             value_error=ConfigError)
    if batch_size < 2:
        raise ConfigError(f"batch_size = {batch_size} must be >= 2; use mini-batches of at least 2 points")
    return int(batch_size)


def check_tile(tile) -> int:
    """The rows of the points per FS distance block (`fs_distance`'s tile) as an int >= 1; TypeError / ValueError
    naming tile in the clustering's words (fs_distance's own spoke of the rows of its z1)."""
    return api_integer("tile", tile, "an integer >= 1 (rows of the points per distance block)", lo=1)


def check_batched(batch_size, seed, merge) -> dict:
    """batch_size, seed and merge (`check_batch_size`, `check_seed`, `check_merge`) as {name: value}: checked for
    every method, though "batched" alone uses them, so that a call refuses a bad one whatever its method."""
    merge = check_merge(merge)
    return {"batch_size": check_batch_size(batch_size), "seed": check_seed(seed), "merge": merge}


def check_merge(merge) -> str:
    """The merge rule of the batched method must be one of MERGES."""
    if merge not in MERGES:
        raise ConfigError(f"merge = {merge!r} is not one of {', '.join(MERGES)}; use one of these")
    return merge
