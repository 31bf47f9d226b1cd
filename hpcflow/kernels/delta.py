"""Delta ("nearest neighbour") kernel (sec. 3.2): a point takes the update of its nearest source point.

Theta_IJ(x, x') = delta_IJ [x' = nn(x)], nn(x) = the source point nearest to x in FS distance; among sources at
the same distance, the one with the smallest index (so the choice does not depend on how the sources are split
over trees or ranks). Train points are their own nearest sources (distance 0), so train points update pointwise.
The nearest neighbour is found with a KD-tree on projector features, whose Euclidean distance sqrt(2) sin d is
monotone in the FS distance d.
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module, to_host
from hpcflow.geometry.distance import projector_features, query_in_pieces
from hpcflow.kernels.base import Kernel, check_gradient, check_point_sets


def tree_nearest(tree, f, *, workers: int = 1):
    """(distance (n,), index (n,) int64) of the point of `tree` nearest to every row of the features f; among points
    at exactly the same distance the smallest index. An empty tree gives (inf, -1). workers: query threads."""
    f = np.atleast_2d(np.asarray(f, dtype=np.float64))
    if tree.n == 0:
        return np.full(f.shape[0], np.inf), np.full(f.shape[0], -1, dtype=np.int64)
    k = min(2, tree.n)
    d, i = query_in_pieces(tree, f, k, workers=workers)  # pieces: a stop request is honoured between them
    d, i = d.reshape(f.shape[0], k), i.reshape(f.shape[0], k)
    dist, idx = d[:, 0].copy(), i[:, 0].astype(np.int64)
    for t in np.flatnonzero(d[:, -1] == d[:, 0]) if k > 1 else ():  # exact ties (duplicate points): rare
        kk = k
        while True:
            kk = min(2 * kk, tree.n)
            dd, ii = tree.query(f[t], k=kk)
            if dd[-1] > dd[0] or kk == tree.n:
                break
        idx[t] = int(ii[dd == dd[0]].min())
    return dist, idx


def nearest_source(x, x_src):
    """Index (N,) of the FS-nearest point of x_src for every point of x (ties: the smallest index); x is x_src:
    every point is its own nearest (distance 0; no search). Points as `DeltaKernel.block` takes them (a PointSet, a
    list, an array), refused as it refuses them (`check_point_sets`: one error naming x or x_src and the fix)."""
    x, x_src = check_point_sets(DeltaKernel, ("x", "x_src"), x, x_src)
    return nearest_index(x, x_src)


def nearest_index(x, x_src):
    """`nearest_source` for point arrays that `check_point_sets` has taken (the kernel's block and operator)."""
    if x is x_src:
        return np.arange(x.shape[0], dtype=np.int64)
    from scipy.spatial import cKDTree  # here, not at import: ~0.2 s of every command's start-up that builds no tree

    return tree_nearest(cKDTree(projector_features(to_host(x_src))), projector_features(to_host(x)))[1]


def delta(z1, z2=None):
    """Delta kernel block (N1, N2): 1 where z2[j] is the FS-nearest point of z2 to z1[i], else 0 (z2 None: z1, the
    identity, as `gaussian`'s). Points as
    `DeltaKernel.block` takes them, refused as it refuses them (`check_point_sets`), naming z1 or z2."""
    return delta_block(*check_point_sets(DeltaKernel, ("z1", "z2"), z1, z2))


def delta_block(z1, z2):
    """`delta` for point arrays that `check_point_sets` has taken."""
    xp = array_module(z1)
    k = xp.zeros((z1.shape[0], z2.shape[0]))
    k[xp.arange(z1.shape[0]), xp.asarray(nearest_index(z1, z2))] = 1.0
    return k


class DeltaKernel(Kernel):
    """Nearest-train-point kernel; `apply` is a gather, O(N log N), no N1 x N2 block is formed.

    `nearest = True` tells an unclustered flow to use `hpcflow.flow_step.Nearest` (each rank: its own train rows
    and the test rows' nearest train gradients) instead of gathering every train point to every rank."""

    name = "delta"
    nearest = True
    needs_sources = "the delta kernel gives each point the update of its nearest source point"

    def block(self, x1, x2=None):
        return delta_block(*check_point_sets(self, ("x1", "x2"), x1, x2))

    def _operator(self, x, x_src, *, tile: int, threads: int | None, cache_bytes: int):
        return NearestOperator(array_module(x).asarray(nearest_index(x, x_src)), x_src.shape[0])


class NearestOperator:
    """grad_src (N_src, P) -> (N, P) float64, as every kernel's: each point's row is its nearest source's gradient
    row (a gather; the kernel takes no tile, threads or cache, but refuses bad ones as the others do)."""

    def __init__(self, idx, n_src: int):
        self.idx, self.n_src = idx, n_src

    def __call__(self, grad_src):
        return check_gradient(grad_src, self.n_src)[self.idx].astype(np.float64, copy=False)
