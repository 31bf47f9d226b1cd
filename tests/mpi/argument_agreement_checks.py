"""Run under mpiexec -n R by tests/test_arguments_agree_mpi.py. argv: OUT [CASE ...] (default: every case).
(hpcflow.nn.experiment.sample_shards, which imports torch, is checked by tests/mpi/nn_api_checks.py.)

Each case of REFUSED gives one rank (ODD: the last, or rank 0 where the case says) an argument of a collective
entry point that is bad there alone; each case of UNLIKE gives that rank a valid one that differs from the others'.
Every rank records what it raised (["Type", message, collective] or None), then all take part in an allreduce;
after the cases every rank samples a valid share (the ranks are still in step). Rank 0 writes OUT/agree_R.json:
{"every": [each rank's {case: outcome}], "allreduce": [...], "seconds": the cases' wall time}, and the shares'
points in rank order to OUT/share_R.npy. The cases' points are small (tens of points), so a case that refuses takes
one allgather and one that is accepted a little sampling.
"""

import json
import os
import sys
import time

import numpy as np

from hpcflow.checkpoint import CheckpointWriter
from hpcflow.cluster.distributed import distributed_blocks, distributed_labels
from hpcflow.experiments.common import sample_train_test_shares
from hpcflow.experiments.distance_scaling import neighbour_distances
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import sample_points
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share

out, only = sys.argv[1], sys.argv[2:]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
X = Hypersurface.fermat(3)
z = X.sample(12, seed=0, threads=1).points  # the same on every rank
mine = z[slice(*share(len(z), R, r))]  # this rank's share
GEO = {"manifold": "fermat", "dim": 3, "psi": 0.0, "chart": [0, 1], "n_train": 20, "n_test": 20, "seed": 0}
SC = {"method": "brute", "queries": 0, "workers": 1}
EXISTS = os.path.join(out, f"exists_{R}.h5")


def odd(good, bad, at=-1):
    """`bad` on rank `at` (-1: the last), `good` elsewhere."""
    return bad if r == at % R else good


def nan_first(points):
    """`points` with NaN in the first coordinate of the first point."""
    out = points.copy()
    out[0, 0] = np.nan
    return out


def saved(**kw):
    return X.sample(20, seed=0, threads=1, comm=c).save(**{"path": os.path.join(out, f"unwritten_{R}.h5"), **kw},
                                                        comm=c)


def without(d, key):
    """`d` less `key`."""
    return {k: v for k, v in d.items() if k != key}


def writer(**kw):
    """A CheckpointWriter that writes nothing (its signal handlers put back at once)."""
    CheckpointWriter(os.path.join(out, f"never_{R}.h5"), {}, comm=c, **kw).restore_signals()


REFUSED = {
    "sample_points_n_points": lambda: sample_points(X, odd(40, 0), 1, threads=1, comm=c),
    "sample_points_chart": lambda: sample_points(X, 40, 1, chart=odd((0, 1), (0, 0)), threads=1, comm=c),
    "sample_points_layout_on_rank_0": lambda: sample_points(X, 40, 1, layout=odd("all", "rows", 0), comm=c),
    "sample_points_backend": lambda: sample_points(X, 40, 1, backend=odd("numpy", "gpu"), comm=c),
    "surface_sample_seed": lambda: X.sample(40, seed=odd(1, -1), threads=1, comm=c),
    "train_test_shares_n_train": lambda: sample_train_test_shares({**GEO, "n_train": odd(20, 0)}, comm=c),
    "train_test_shares_missing_key": lambda: sample_train_test_shares(odd(GEO, without(GEO, "n_test")), comm=c),
    "neighbour_distances_missing_key": lambda: neighbour_distances(X, 40, 1, odd(SC, without(SC, "queries")), comm=c),
    "checkpoint_every": lambda: writer(every=odd(2, 0)),
    "checkpoint_seconds": lambda: writer(seconds=odd(60.0, float("nan"))),
    "checkpoint_block_rows": lambda: writer(block_rows=odd(4, 2.5)),
    "neighbour_distances_queries": lambda: neighbour_distances(X, 40, 1, {**SC, "queries": odd(0, -1)}, comm=c),
    "labels_n_clusters": lambda: distributed_labels(z, n_clusters=odd(2, 0), batch_size=6, comm=c),
    "labels_seed_on_rank_0": lambda: distributed_labels(z, n_clusters=2, batch_size=6, seed=odd(0, "a", 0), comm=c),
    "blocks_halo_cutoff": lambda: distributed_blocks(mine, method="full", n_clusters=2, halo_cutoff=odd(0.5, -1.0),
                                                     comm=c),
    "blocks_test_points": lambda: distributed_blocks(mine, odd(mine, nan_first(mine)), method="full", n_clusters=2,
                                                     comm=c),
    "save_existing_without_force": lambda: X.sample(20, seed=0, threads=1, comm=c).save(EXISTS, force=r == 0,
                                                                                         comm=c),
}
UNLIKE = {
    "n_points": lambda: sample_points(X, odd(40, 41), 1, threads=1, comm=c),
    "seed": lambda: sample_points(X, 40, odd(1, 2), threads=1, comm=c),
    "chart": lambda: sample_points(X, 40, 1, chart=odd((0, 1), (1, 0)), threads=1, comm=c),
    "max_batches": lambda: sample_points(X, 40, 1, max_batches=odd(100, 200), threads=1, comm=c),
    "layout": lambda: sample_points(X, 40, 1, layout=odd("share", "all"), threads=1, comm=c),
    "jacobian": lambda: sample_points(X, 40, 1, jacobian=odd(True, False), threads=1, comm=c),
    "surface": lambda: sample_points(odd(X, Hypersurface.dwork(3, 0.1)), 40, 1, threads=1, comm=c),
    "sample_n_points": lambda: X.sample(odd(40, 41), seed=1, threads=1, comm=c),
    "shares_n_test": lambda: sample_train_test_shares({**GEO, "n_test": odd(20, 0)}, comm=c),
    "shares_test_seed": lambda: sample_train_test_shares(GEO, test_seed=odd(None, 5), comm=c),
    "distances_queries": lambda: neighbour_distances(X, 40, 1, {**SC, "queries": odd(10, 12)}, comm=c),
    "labels_seed": lambda: distributed_labels(z, n_clusters=2, batch_size=6, seed=odd(0, 1), comm=c),
    "labels_z": lambda: distributed_labels(odd(z, z[::-1]), n_clusters=2, batch_size=6, comm=c),
    "blocks_halo_cutoff": lambda: distributed_blocks(mine, method="full", n_clusters=2, halo_cutoff=odd(0.5, None),
                                                     comm=c),
    "checkpoint_every": lambda: writer(every=odd(2, 3)),
    "checkpoint_seconds": lambda: writer(seconds=odd(None, 60.0)),
    "checkpoint_block_rows": lambda: writer(block_rows=odd(4, 8)),
    "save_path": lambda: saved(path=os.path.join(out, f"unwritten_{R}_{r == R - 1}.h5")),
}

if r == 0:
    with open(EXISTS, "w") as fh:  # the file `save_existing_without_force` finds
        fh.write("kept")
c.Barrier()
said, reduced = {}, []
t0 = time.perf_counter()
for group, cases in (("", REFUSED), ("unlike_", UNLIKE)):
    for case, call in cases.items():
        if only and group + case not in only:
            continue
        try:
            call()
            said[group + case] = None
        except Exception as exc:  # noqa: BLE001 - whatever each rank raised is the result
            said[group + case] = [type(exc).__name__, str(exc), bool(getattr(exc, "collective", False))]
        reduced.append(c.allreduce(1))  # every rank is here, in step with the others
seconds = time.perf_counter() - t0
ps = sample_points(X, 40, 1, chart=(0, 1), threads=1, comm=c, layout="share")[0]
every = c.gather(said, root=0)
rows = c.gather(ps.points, root=0)
if r == 0:
    with open(os.path.join(out, f"agree_{R}.json"), "w", encoding="utf-8") as fh:
        json.dump({"every": every, "allreduce": reduced, "seconds": seconds}, fh)
    np.save(os.path.join(out, f"share_{R}.npy"), np.concatenate(rows))
