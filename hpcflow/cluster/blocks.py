"""Per-cluster flow blocks (§3.1): the NTK is evaluated inside each cluster, cross-cluster terms dropped.

A block says which train points (`train_idx`) and test points (`test_idx`) are updated using which train
sources (`source_idx`) in the flow step of eq. 3.5 (all integer index arrays, sorted ascending). A test point
belongs to the cluster of its FS-nearest train point. With `halo_cutoff` a cluster's sources also include
every train point within that FS distance of any of the cluster's train or test points; at
halo_cutoff >= pi/2 every block sees all train points, i.e. the unclustered flow.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import numpy as np

from hpcflow.cluster.inputs import as_points
from hpcflow.cluster.methods import cluster_points
from hpcflow.cluster.nearest import feature_tree, nearest_point, within_fs_distance
from hpcflow.errors import ConfigError


class FlowBlock(NamedTuple):
    """Train points `train_idx` and test points `test_idx` flow with sources `source_idx` (train indices)."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    source_idx: np.ndarray


def flow_blocks(train_points, test_points=None, *, method: str = "batched", n_clusters: int,
                batch_size: int = 10_000, seed=0, merge: str = "nearest",
                halo_cutoff: float | None = None) -> list[FlowBlock]:
    """Cluster the train points, attach each test point to its nearest train point's cluster, build blocks.

    Every train point and every test point lies in exactly one block; blocks without train points are
    dropped (they cannot occur: each test point follows a train point).
    """
    z_train = as_points(train_points, "train points")
    z_test = as_points(test_points, "test points", allow_empty=True) if test_points is not None else None
    if z_test is not None and z_test.shape[0] and z_test.shape[1] != z_train.shape[1]:
        raise ConfigError(f"test points have {z_test.shape[1]} coordinates, train points {z_train.shape[1]}; "
                          "use points of the same hypersurface")
    check_halo_cutoff(halo_cutoff)
    labels = cluster_points(z_train, method=method, n_clusters=n_clusters, batch_size=batch_size, seed=seed,
                            merge=merge).labels
    tree = feature_tree(z_train)
    if z_test is None or z_test.shape[0] == 0:
        test_labels = np.zeros(0, dtype=np.int64)
        z_test = np.zeros((0, z_train.shape[1]), dtype=np.complex128)
    else:
        test_labels = labels[nearest_point(z_train, z_test, tree=tree)[0]]
    blocks = []
    for c in range(int(labels.max()) + 1):
        train_idx = np.flatnonzero(labels == c)
        if train_idx.size == 0:
            continue
        test_idx = np.flatnonzero(test_labels == c)
        blocks.append(FlowBlock(train_idx, test_idx, block_sources(tree, z_train, z_test, train_idx, test_idx,
                                                                   halo_cutoff)))
    return blocks


def check_halo_cutoff(halo_cutoff) -> None:
    """None, or a finite FS distance >= 0: a real number, NumPy's float32 and integers included (ConfigError
    otherwise)."""
    if halo_cutoff is not None and (isinstance(halo_cutoff, bool) or not isinstance(halo_cutoff, Real)
                                    or not math.isfinite(halo_cutoff) or halo_cutoff < 0):
        raise ConfigError(f"halo_cutoff = {halo_cutoff!r} must be a finite FS distance >= 0 (pi/2 = all points)")


def block_sources(tree, z_train, z_test, train_idx, test_idx, halo_cutoff) -> np.ndarray:
    """A block's sources: its own train points, or every train point within `halo_cutoff` of its members."""
    if halo_cutoff is None:
        return train_idx
    members = np.concatenate([z_train[train_idx], z_test[test_idx]])
    return within_fs_distance(tree, members, float(halo_cutoff))
