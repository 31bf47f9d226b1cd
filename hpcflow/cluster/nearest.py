"""FS nearest neighbours through the projector embedding z -> z z^dagger/|z|^2 and a KD-tree.

The Euclidean distance of the projector features is sqrt(2) sin d_FS, monotone on [0, pi/2], so the
Euclidean nearest neighbour is the FS nearest neighbour and balls map to balls (radius sqrt(2) sin r).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.geometry.distance import as_coordinates, chordal_to_fs, projector_features, query_in_pieces

if TYPE_CHECKING:
    from scipy.spatial import cKDTree


def feature_tree(z) -> cKDTree:
    """KD-tree on the projector features of the points z (N, n+1)."""
    from scipy.spatial import cKDTree  # here, not at import: ~0.2 s of every command's start-up that builds no tree

    return cKDTree(projector_features(z))


def nearest_point(z_ref, z_query, *, tree: cKDTree | None = None):
    """For each query point (rows of z_query (M, n+1), or a PointSet): index of its FS-nearest reference point and
    that FS distance, arrays (M,)."""
    z_query = np.asarray(as_coordinates(z_query))
    if np.ndim(z_query) != 2:
        raise ConfigError(f"z_query has shape {np.shape(z_query)}; pass query points as a 2-D array (M, n+1), one row "
                          "of homogeneous coordinates per point (one point: z[None])")
    tree = tree if tree is not None else feature_tree(z_ref)
    if z_query.shape[0] and z_query.shape[1] ** 2 != tree.m:
        raise ConfigError(f"z_query has {z_query.shape[1]} homogeneous coordinates per point, the reference points "
                          f"{int(round(tree.m ** 0.5))}; pass points of one P^n")
    if z_query.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    chord, idx = query_in_pieces(tree, projector_features(z_query))
    return np.asarray(idx, dtype=np.int64), chordal_to_fs(chord)


def within_fs_distance(tree: cKDTree, z_query, cutoff: float, *, chunk: int = 512) -> np.ndarray:
    """Sorted indices of tree points within FS distance `cutoff` of at least one query point.

    `cutoff` >= pi/2 returns every point (all FS distances are <= pi/2); otherwise the ball radius is
    sqrt(2) sin(cutoff) in the feature space (equality at the boundary is decided in that space).
    """
    if cutoff >= np.pi / 2:
        return np.arange(tree.n, dtype=np.int64)
    radius = np.sqrt(2.0) * np.sin(cutoff)
    hit = np.zeros(tree.n, dtype=bool)
    feats = projector_features(z_query)
    for s in range(0, feats.shape[0], chunk):
        for lst in tree.query_ball_point(feats[s : s + chunk], radius):
            hit[lst] = True
    return np.flatnonzero(hit)
