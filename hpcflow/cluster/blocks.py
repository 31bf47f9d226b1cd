"""Per-cluster flow blocks (§3.1): the NTK is evaluated inside each cluster, cross-cluster terms dropped.

A block says which train points (`train_idx`) and test points (`test_idx`) are updated using which train
sources in the flow step of eq. 3.5: `source_idx` for its train rows, `test_source_idx` for its test rows (all
integer index arrays, sorted ascending; test_source_idx None: source_idx). A test point belongs to the cluster of
its FS-nearest train point. With `halo_cutoff` a cluster's train rows also take as sources every train point within
that FS distance of one of the cluster's train points, and its test rows every train point within it of one of the
cluster's train or test points: the test points widen only the test rows' neighbourhoods, so the train flow does
not depend on the test set. At halo_cutoff >= pi/2 every block sees all train points, i.e. the unclustered flow.
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
    """Train points `train_idx` flow with sources `source_idx`, test points `test_idx` with sources
    `test_source_idx` (None: source_idx); sources are train indices."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    source_idx: np.ndarray
    test_source_idx: np.ndarray | None = None

    def test_sources(self) -> np.ndarray:
        """The sources of the test rows: test_source_idx, or source_idx when it is None."""
        return self.source_idx if self.test_source_idx is None else self.test_source_idx


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
        blocks.append(FlowBlock(train_idx, test_idx, *block_sources(tree, z_train, z_test, train_idx, test_idx,
                                                                    halo_cutoff)))
    return blocks


def check_halo_cutoff(halo_cutoff) -> None:
    """None, or a finite FS distance >= 0: a real number, NumPy's float32 and integers included (ConfigError
    otherwise)."""
    if halo_cutoff is not None and (isinstance(halo_cutoff, bool) or not isinstance(halo_cutoff, Real)
                                    or not math.isfinite(halo_cutoff) or halo_cutoff < 0):
        raise ConfigError(f"halo_cutoff = {halo_cutoff!r} must be a finite FS distance >= 0 (pi/2 = all points)")


def block_sources(tree, z_train, z_test, train_idx, test_idx, halo_cutoff) -> tuple[np.ndarray, np.ndarray]:
    """A block's (train-row sources, test-row sources): its own train points for both, or with `halo_cutoff` every
    train point within it of one of its train points (train rows) and of one of its train or test points (test
    rows). z_test may be None when test_idx is empty."""
    if halo_cutoff is None:
        return train_idx, train_idx
    train_src = within_fs_distance(tree, z_train[train_idx], float(halo_cutoff))
    if not len(test_idx):
        return train_src, train_src
    near_test = within_fs_distance(tree, z_test[test_idx], float(halo_cutoff))
    return train_src, np.union1d(train_src, near_test).astype(np.int64)
