"""Delta ("nearest neighbour") kernel (sec. 3.2): a point takes the update of its nearest source point.

Theta_IJ(x, x') = delta_IJ [x' = nn(x)], nn(x) = the source point nearest to x in FS distance. Train points are
their own nearest sources (distance 0), so train points update pointwise. The nearest neighbour is found with a
KD-tree on projector features, whose Euclidean distance sqrt(2) sin d is monotone in the FS distance d.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from hpcflow.backend import array_module, to_host
from hpcflow.geometry.distance import projector_features
from hpcflow.kernels.base import DEFAULT_TILE, Kernel


def nearest_source(x, x_src):
    """Index (N,) of the FS-nearest point of x_src for every point of x."""
    _, idx = cKDTree(projector_features(to_host(x_src))).query(projector_features(to_host(x)), k=1)
    return np.asarray(idx, dtype=np.int64)


def delta(z1, z2):
    """Delta kernel block (N1, N2): 1 where z2[j] is the FS-nearest point of z2 to z1[i], else 0."""
    xp = array_module(z1)
    k = xp.zeros((z1.shape[0], z2.shape[0]))
    k[xp.arange(z1.shape[0]), xp.asarray(nearest_source(z1, z2))] = 1.0
    return k


class DeltaKernel(Kernel):
    """Nearest-train-point kernel; `apply` is a gather, O(N log N), no N1 x N2 block is formed."""

    name = "delta"

    def block(self, x1, x2):
        return delta(x1, x2)

    def operator(self, x, x_src, *, tile: int = DEFAULT_TILE, threads: int | None = None, cache_bytes: int = 0):
        idx = array_module(x).asarray(nearest_source(x, x_src))
        return lambda grad: grad[idx]
