"""Clustering and flow blocks on R ranks (§3.1): mini-batches clustered in parallel, clusters owned by cost.

Batched method: the mini-batches of `split_batches` (one global shuffle from `seed`) are dealt round-robin,
batch i to rank i % R; each rank clusters its batches (average linkage), the seed batch 0 is clustered on rank
0 and its labels broadcast, and each rank merges its own batches into the seeds (eq. 3.3, `merge_to_seeds`,
rule `merge`: each batch's merge needs only the seeds, so no further communication). The labels are those of
`batched_clustering`, for every R. "full" and "birch" run on rank 0 and their labels are broadcast. Blocks are
those of `flow_blocks` (global indices); their halos are computed round-robin and gathered; then blocks are
owned by longest-processing-time greedy on cost = train points x their sources + test points x theirs (largest
first, ties to the lower block; to the least loaded rank, ties to the lower rank), so every rank knows the same
ownership map. `blocks_from_labels` builds the same blocks and owners from labels found before (a flow checkpoint's
cluster/labels, which a --resume flows) without clustering: the halos and the owners for its R alone.

Memory per rank: the coordinates of all train and test points (16 (n+1) bytes each, 80 for the quintic),
their projector features for the KD-tree ((n+1)^2 float64: 200 bytes) and the tree (~16 bytes per train
point), the labels and the blocks' index arrays (8 bytes per train, test and source entry), plus one B x B
distance matrix while clustering: about 0.3 kB per train point, ~300 MB per rank at 10^6 train points.
The flow's heavy per-point data (g_FS, metrics, gradients) is not held: `fetch_rows` moves it to owners.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from hpcflow.cluster.agglomerative import average_linkage
from hpcflow.cluster.batched import merge_to_seeds, split_batches
from hpcflow.cluster.blocks import FlowBlock, block_sources, check_halo_cutoff
from hpcflow.cluster.inputs import (as_points, check_batched, check_cluster_count, check_merge, check_n_clusters,
                                   check_tile)
from hpcflow.cluster.methods import check_method, check_settings, cluster_points
from hpcflow.cluster.nearest import feature_tree, nearest_point
from hpcflow.errors import ConfigError
from hpcflow.geometry.distance import DEFAULT_TILE, fs_distance
from hpcflow.parallel.comm import arguments_together, raise_together, resolve
from hpcflow.parallel.redistribute import fetch_rows
from hpcflow.parallel.reduce import allgatherv
from hpcflow.parallel.replicated import fingerprint
from hpcflow.progress import progress


@dataclass
class DistributedBlocks:
    """The flow blocks of a clustered point set and who owns them; the same on every rank (but `counters`).

    blocks: list of FlowBlock (train_idx, test_idx, source_idx, test_source_idx: sorted GLOBAL int64 indices);
    owner: (n_blocks,) rank owning each block; cluster: (n_blocks,) cluster id of each block;
    labels: (n_train,) cluster of every train point; test_labels: (n_test,) cluster of every test point;
    cost: (n_blocks,) int64 train x source_idx + test x test_source_idx entries; cluster_owner: (n_clusters,) owner
    per cluster (-1: empty);
    train_share / test_share: (lo, hi) of the input rows this rank passed in (decompose.share layout);
    counters: this rank's figures (clustering_batches, clustering_seconds, clusters_owned, train_owned,
    test_owned, halo_rows, cost_owned).
    """

    blocks: list
    owner: np.ndarray
    cluster: np.ndarray
    labels: np.ndarray
    test_labels: np.ndarray
    cost: np.ndarray
    cluster_owner: np.ndarray
    rank: int
    train_share: tuple
    test_share: tuple
    counters: dict = field(default_factory=dict)

    def owned(self, rank: int | None = None) -> np.ndarray:
        """Indices of the blocks `rank` (default: this rank) owns."""
        return np.flatnonzero(self.owner == (self.rank if rank is None else rank))

    def train_rows(self, rank: int | None = None) -> np.ndarray:
        """Sorted global train indices the owner updates (its blocks' train_idx)."""
        return _union([self.blocks[b].train_idx for b in self.owned(rank)])

    def source_rows(self, rank: int | None = None) -> np.ndarray:
        """Sorted global train indices the owner reads (its blocks' sources of train and test rows: own train
        rows plus halo)."""
        return _union([s for b in self.owned(rank) for s in (self.blocks[b].source_idx,
                                                              self.blocks[b].test_sources())])

    def test_rows(self, rank: int | None = None) -> np.ndarray:
        """Sorted global test indices the owner updates."""
        return _union([self.blocks[b].test_idx for b in self.owned(rank)])

    def fetch_train(self, local, rows, *, comm=None) -> np.ndarray:
        """Rows `rows` (sorted global train indices) of a per-point train array held in input shares."""
        return fetch_rows(local, self.train_share[0], rows, comm=comm)

    def fetch_test(self, local, rows, *, comm=None) -> np.ndarray:
        """Rows `rows` (sorted global test indices) of a per-point test array held in input shares."""
        return fetch_rows(local, self.test_share[0], rows, comm=comm)


def distributed_labels(z, *, method: str = "batched", n_clusters: int, batch_size: int = 10_000, seed=0,
                       merge: str = "nearest", comm=None, tile: int = DEFAULT_TILE) -> tuple[np.ndarray, dict]:
    """(labels (N,), counters) of all points z (N, n+1) held on every rank; equal to `cluster_points` for any R.
    A bad setting on any rank, or points z or a setting (`clustering_settings`) that differ between ranks, is
    refused by every rank together (one allgather at R > 1; `tile` is each rank's own)."""
    c = resolve(comm)
    got = {}

    def check():
        if getattr(z, "ndim", None) != 2:
            raise TypeError(f"z is a {type(z).__name__}, not an (N, n+1) array of points; pass the same one on "
                            "every rank")
        check_tile(tile)
        got.update(clustering_settings(method, n_clusters, batch_size, seed, merge))

    arguments_together(check, comm=c, same=lambda: {**got, "z": fingerprint([z])})
    return _labels(z, got, tile=tile, c=c)


def clustering_settings(method, n_clusters, batch_size, seed, merge) -> dict:
    """The clustering settings checked as far as they can be without the points (`check_settings` does the rest
    from N), normalised, for `arguments_together`'s `same`: method, n_clusters, and for "batched" (which alone uses
    them) batch_size, seed and merge, which are checked for every method (`check_batched`). No collective."""
    check_merge(merge)
    out = {"method": check_method(method), "n_clusters": check_cluster_count(n_clusters)}
    batched = check_batched(batch_size, seed, merge)
    if method == "batched":
        out.update(batched)
    return out


def _labels(z, args: dict, *, tile: int, c) -> tuple[np.ndarray, dict]:
    """`distributed_labels` of settings `args` (`clustering_settings`) that every rank of `c` shares."""
    R, r = c.Get_size(), c.Get_rank()
    method, n_clusters = args["method"], args["n_clusters"]
    t0 = time.perf_counter()
    try:  # on every rank, before rank 0 alone clusters by "full" or "birch": N is every rank's
        check_settings(z.shape[0], **{k: v for k, v in args.items() if k != "seed"})
    except ConfigError as exc:
        raise_together(exc, comm=c)
    if method != "batched":
        labels = cluster_points(z, method=method, n_clusters=n_clusters).labels if r == 0 else None
        labels = c.bcast(labels, root=0) if R > 1 else labels
        return labels, {"clustering_batches": int(r == 0), "clustering_seconds": time.perf_counter() - t0}
    batch_size, merge = args["batch_size"], args["merge"]
    k = check_n_clusters(n_clusters, z.shape[0], batch_size=batch_size)
    batches = split_batches(z.shape[0], batch_size, args["seed"])
    mine = list(range(r, len(batches), R))
    local = {i: average_linkage(fs_distance(z[batches[i]], tile=tile), k)
             for i in progress(mine, desc="clustering", unit="batch", comm=c, lines=True)}
    seed_labels = local[0] if r == 0 else np.empty(batches[0].size, dtype=np.int64)
    if R > 1:
        c.Bcast(seed_labels, root=0)
    z_seed = z[batches[0]]
    targets = {i: np.arange(k) if i == 0 else merge_to_seeds(z_seed, seed_labels, z[batches[i]], local[i], k,
                                                               merge=merge, tile=tile)[0] for i in mine}
    idx = np.concatenate([batches[i] for i in mine] or [np.zeros(0, np.int64)]).astype(np.int64)
    lab = np.concatenate([targets[i][local[i]] for i in mine] or [np.zeros(0, np.int64)]).astype(np.int64)
    labels = np.empty(z.shape[0], dtype=np.int64)
    labels[allgatherv(idx, comm=c)] = allgatherv(lab, comm=c)
    return labels, {"clustering_batches": len(mine), "clustering_seconds": time.perf_counter() - t0}


def lpt_owners(cost, size: int) -> np.ndarray:
    """Longest-processing-time greedy: largest cost first (ties: lower index) to the least loaded rank (ties:
    lower rank). Makespan <= (4/3 - 1/(3R)) x optimal (Graham 1969)."""
    cost = np.asarray(cost, dtype=np.int64)
    owner = np.empty(cost.size, dtype=np.int64)
    heap = [(0, q) for q in range(int(size))]
    for b in np.argsort(-cost, kind="stable"):
        load, q = heapq.heappop(heap)
        owner[b] = q
        heapq.heappush(heap, (load + int(cost[b]), q))
    return owner


def distributed_blocks(local_train_points, local_test_points=None, *, comm=None, method: str = "batched",
                       n_clusters: int, batch_size: int = 10_000, seed=0, merge: str = "nearest",
                       halo_cutoff: float | None = None) -> DistributedBlocks:
    """`flow_blocks` of points held in contiguous shares (rank r: rows decompose.share(N, R, r), in global order),
    with an ownership map. Collective; the blocks, labels and owners are identical for every R.

    Returns a DistributedBlocks (see its docstring). Memory per rank: see the module docstring.
    A bad argument on any rank (this rank's points too), or a setting (`clustering_settings`), halo_cutoff or
    number of coordinates per point that differs between ranks, is refused by every rank together (one allgather
    at R > 1).
    """
    c = resolve(comm)
    got = {}
    arguments_together(lambda: got.update(_block_arguments(local_train_points, local_test_points, halo_cutoff, (
        method, n_clusters, batch_size, seed, merge))), comm=c, same=lambda: {
        **got["settings"], "halo_cutoff": got["halo_cutoff"], "coordinates per point": got["train"].shape[1]})
    z_train, shares = _gather_points(got, c)
    labels, counters = _labels(z_train, got["settings"], tile=DEFAULT_TILE, c=c)
    return _assemble(z_train, labels, counters, got, shares, c)


def blocks_from_labels(local_train_points, local_test_points=None, *, labels, comm=None,
                       halo_cutoff: float | None = None) -> DistributedBlocks:
    """`distributed_blocks` of the train points clustered as `labels` (a clustering made before, e.g. the
    cluster/labels of a flow checkpoint) instead of clustering them: the test points' clusters, the halos and the
    cost-balanced owners for this R are computed as `distributed_blocks` computes them, so the blocks of the labels
    `distributed_blocks` found are its blocks, at any R. Collective; counters clustering_batches and
    clustering_seconds are 0 (nothing clustered).

    labels: (N,) non-negative integers, the cluster of every train point of every rank in global order, the same
    on every rank. A bad argument on any rank, or labels, halo_cutoff or coordinates per point that differ between
    ranks, is refused by every rank together (ConfigError; one allgather at R > 1)."""
    c = resolve(comm)
    got = {}

    def check():
        got.update(_block_arguments(local_train_points, local_test_points, halo_cutoff, None))
        got["labels"] = _check_labels(labels)

    arguments_together(check, comm=c, same=lambda: {
        "labels": fingerprint([got["labels"]]), "halo_cutoff": got["halo_cutoff"],
        "coordinates per point": got["train"].shape[1]})
    z_train, shares = _gather_points(got, c)
    try:
        if got["labels"].size != z_train.shape[0]:
            raise ConfigError(f"labels hold {got['labels'].size} entries for {z_train.shape[0]} train points; pass "
                              "one label per train point of every rank")
    except ConfigError as exc:
        raise_together(exc, comm=c)
    return _assemble(z_train, got["labels"], {"clustering_batches": 0, "clustering_seconds": 0.0}, got, shares, c)


def _check_labels(labels) -> np.ndarray:
    """`blocks_from_labels`' labels as int64: a 1-D array of integers >= 0 (ConfigError else); no collective."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
        raise ConfigError(f"labels (shape {arr.shape}, type {arr.dtype}) are not a 1-D array of integers >= 0; pass "
                          "one cluster number per train point")
    return arr.astype(np.int64)


def _gather_points(got: dict, c) -> tuple[np.ndarray, tuple]:
    """(every rank's train points, (train_share, test_share) of this rank) of the checked arguments `got`
    (collective; no train point on any rank: refused by every rank)."""
    r = c.Get_rank()
    z_train = allgatherv(got["train"], comm=c)
    try:
        z_train = as_points(z_train, "train points")  # every rank's points (no train point on any rank: refused)
    except ConfigError as exc:
        raise_together(exc, comm=c)
    got["test"] = got["test"].reshape(-1, z_train.shape[1])
    n_train_local, n_test_local = len(got["train"]), len(got["test"])
    lo_train = int(allgatherv(np.array([n_train_local]), comm=c)[:r].sum())
    lo_test = int(allgatherv(np.array([n_test_local]), comm=c)[:r].sum())
    return z_train, ((lo_train, lo_train + n_train_local), (lo_test, lo_test + n_test_local))


def _assemble(z_train, labels, counters: dict, got: dict, shares: tuple, c) -> DistributedBlocks:
    """The DistributedBlocks of all train points `z_train` in clusters `labels` and this rank's test points
    got["test"] (collective): the test points' clusters, the halos (computed round-robin, gathered), the owners."""
    R, r = c.Get_size(), c.Get_rank()
    local_test, halo_cutoff = got["test"], got["halo_cutoff"]
    tree = feature_tree(z_train)
    test_labels = allgatherv(labels[nearest_point(z_train, local_test, tree=tree)[0]], comm=c)
    z_test = allgatherv(local_test, comm=c) if halo_cutoff is not None else None
    clusters = np.unique(labels)
    train_of = [np.flatnonzero(labels == cl) for cl in clusters]
    test_of = [np.flatnonzero(test_labels == cl) for cl in clusters]
    mine = range(r, clusters.size, R)  # halos computed round-robin, then gathered
    # each block's train-row sources then its test-row sources
    src = [s for b in mine for s in block_sources(tree, z_train, z_test, train_of[b], test_of[b], halo_cutoff)]
    lengths = allgatherv(np.array([s.size for s in src], dtype=np.int64), comm=c)
    flat = allgatherv(np.concatenate(src or [np.zeros(0, np.int64)]).astype(np.int64), comm=c)
    order = np.concatenate([np.arange(q, clusters.size, R) for q in range(R)])  # block of each gathered pair
    pieces = np.split(flat, np.cumsum(lengths)[:-1])
    sources = [None] * clusters.size
    for b, train_src, test_src in zip(order, pieces[0::2], pieces[1::2]):
        sources[b] = (train_src, test_src)
    blocks = [FlowBlock(train_of[b], test_of[b], *sources[b]) for b in range(clusters.size)]
    cost = np.array([b.train_idx.size * b.source_idx.size + b.test_idx.size * b.test_sources().size
                     for b in blocks], dtype=np.int64)
    owner = lpt_owners(cost, R)
    cluster_owner = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    cluster_owner[clusters] = owner
    out = DistributedBlocks(blocks, owner, clusters.astype(np.int64), labels, test_labels, cost, cluster_owner, r,
                            *shares)
    train, sources_r = out.train_rows(), out.source_rows()
    counters.update(clusters_owned=int(out.owned().size), train_owned=int(train.size),
                    test_owned=int(out.test_rows().size), halo_rows=int(np.setdiff1d(sources_r, train).size),
                    cost_owned=int(cost[out.owned()].sum()))
    out.counters = counters
    return out


def _block_arguments(local_train_points, local_test_points, halo_cutoff, clustering) -> dict:
    """`distributed_blocks`' arguments on this rank checked (no collective): its train and test points (test points
    of the train points' width, none: an empty set), halo_cutoff (a float or None) and the
    `clustering_settings` (None: no clustering settings, `blocks_from_labels`)."""
    check_halo_cutoff(halo_cutoff)
    train = as_points(local_train_points, "train points", allow_empty=True)
    test = np.zeros((0, train.shape[1]), dtype=np.complex128) if local_test_points is None else as_points(
        local_test_points, "test points", allow_empty=True)
    if len(test) and test.shape[1] != train.shape[1]:
        raise ConfigError(f"test points have {test.shape[1]} coordinates, the train points {train.shape[1]}; pass "
                          "points of one manifold")
    return {"train": train, "test": test, "halo_cutoff": None if halo_cutoff is None else float(halo_cutoff),
            "settings": None if clustering is None else clustering_settings(*clustering)}


def _union(parts) -> np.ndarray:
    return np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

