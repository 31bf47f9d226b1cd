"""Run under mpiexec -n R by tests/test_whole_sets_mpi.py. argv: OUT [indices | charts].

Without "indices": every rank passes the whole train and test sets (`Hypersurface.sample`'s default layout "all")
to `kernel_flow` with the Delta kernel and the row-normalised Gaussian; rank 0 saves the histories to
OUT/flow_R.npz with every rank's histories (to show they agree). Then every rank saves its share (layout "share")
of a sample as OUT/share_R.h5.

With "indices": every rank passes its rows with their global indices. Sets that are not, over the ranks, each index
once (`cases`), and blocks or an exact-mode split wrong on one rank alone (a row of another rank, one of its own rows
in no block), or sets wrong on one rank or across ranks (`set_cases`, a NaN weight among them), are caught as
ValueErrors; rank 0 saves every rank's [message, collective] to OUT/refused_R.json. The partition rank r::R flows
(histories, train_idx, test_idx to OUT/strided_R.npz, key_RANK). Last, the whole sets with arange indices on every
rank, not caught: every rank ends with it.

With "charts": each rank's train and test rows lie in one chart, the last rank's in another; not caught.
"""

import json
import os
import sys

import numpy as np

from hpcflow.flow import FlowBlock, kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share

N_TRAIN, N_TEST = 200, 100
out = sys.argv[1]
c = pcomm.resolve()
R, r = c.Get_size(), c.Get_rank()
X = Hypersurface.fermat(3)
train, test = X.sample(N_TRAIN, seed=0, chart=(0, 1)), X.sample(N_TEST, seed=1, chart=(0, 1))
GAUSSIAN_ROW = make_kernel("gaussian", width=1 / 30, normalize="row", engine="numpy")
KW = dict(dt=17.0, steps=3, loss="ultralocal", comm=c)
OTHER_CHART = X.sample(N_TRAIN, seed=0, chart=(1, 2)), X.sample(N_TEST, seed=1, chart=(1, 2))
DWORK_TEST = Hypersurface.dwork(3, 0.3).sample(N_TEST, seed=1, chart=(0, 1))


def cases():
    """name -> (train rows, train_idx, test rows, test_idx, blocks) of this rank."""
    own, town = np.arange(*share(N_TRAIN, R, r)), np.arange(*share(N_TEST, R, r))
    everything = np.arange(N_TRAIN)
    last_lo = share(N_TRAIN, R, R - 1)[0]
    overlap = np.arange(own[0], min(own[-1] + 6, N_TRAIN))  # 5 rows of the next rank's share as well
    gap = own + (1 if r == R - 1 else 0)  # the last rank's rows labelled one up: last_lo unused, N_TRAIN given
    rest = np.arange(share(N_TRAIN, R, 0)[1], N_TRAIN)
    dealt = own if r == 0 else rest[r - 1::R - 1]  # a partition; rank 0 alone holds its run of the exact split
    stray = FlowBlock(np.union1d(own, [(own[-1] + 1) % N_TRAIN]), town, everything)  # a row of another rank
    found = {
        "overlap": (overlap, overlap, town, town, [FlowBlock(overlap, town, everything)]),
        "gap": (own, gap, town, town, [FlowBlock(gap, town, np.setdiff1d(np.arange(N_TRAIN + 1), [last_lo]))]),
        "test_local": (own, own, town, np.arange(town.size), None),  # each rank's test rows numbered from 0
        "rank0_only": (own, own if r == 0 else None, town, None, None),
        "block_one_rank": (own, own, town, town, [stray if r == R - 1 else FlowBlock(own, town, everything)]),
        "block_gap_one_rank": (own, own, town, town, [FlowBlock(own[1:] if r == R - 1 else own, town, everything)]),
    }
    if R >= 3:  # (at R = 2 a partition whose rank 0 holds its run is the exact split itself)
        found["exact_order"] = (dealt, dealt, town, town, None)
    return found


def set_cases():
    """name -> (train rows, test rows or None, train_idx, test_idx, blocks) of this rank; every rank's are a
    valid flow's but where a case says otherwise."""
    own, town = np.arange(*share(N_TRAIN, R, r)), np.arange(*share(N_TEST, R, r))
    last = r == R - 1
    other_train, other_test = (OTHER_CHART if last else (train, test))
    mine = train.subset(own), test.subset(town)
    return {
        "chart_one_rank": (mine[0], other_test.subset(town), own, town, None),  # the last rank's test rows
        "chart_by_rank": (other_train.subset(own), other_test.subset(town), own, town, None),  # one chart a rank
        "manifold_one_rank": (mine[0], (DWORK_TEST if last else test).subset(town), own, town, None),
        "test_some_ranks": (mine[0], None if r == 0 else mine[1], own, None, None),
        "blocks_some_ranks": (*mine, own, town, [FlowBlock(own, town, np.arange(N_TRAIN))] if r == 0 else None),
        "empty_train": (train.subset(own[:0]), mine[1], own[:0], town, None),
        "float_idx_one_rank": (*mine, own + 0.5 if last else own, town, None),
        "nan_weight_one_rank": (nan_weight(mine[0]) if last else mine[0], mine[1], own, town, None),
    }


def nan_weight(ps):
    """ps with weights[3] = NaN."""
    out = ps[:]
    out.weights = out.weights.copy()
    out.weights[3] = np.nan
    return out


def run_sets(train_rows, test_rows, idx, tidx, blocks):
    return kernel_flow(GAUSSIAN_ROW, train_rows, test_rows, train_idx=idx, test_idx=tidx, blocks=blocks, **KW)


def run(rows, idx, trows, tidx, blocks):
    return kernel_flow(GAUSSIAN_ROW, train.subset(rows), test.subset(trows), train_idx=idx, test_idx=tidx,
                       blocks=blocks, **KW)


with pcomm.abort_on_error(c):
    if sys.argv[2:] == ["indices"]:
        refused = {}
        for name, (flow, args) in [*((n, (run, a)) for n, a in cases().items()),
                                   *((n, (run_sets, a)) for n, a in set_cases().items())]:
            try:
                flow(*args)
                refused[name] = None
            except ValueError as exc:
                refused[name] = [str(exc), bool(getattr(exc, "collective", False))]
        every = c.gather(refused, root=0)
        idx, tidx = np.arange(r, N_TRAIN, R), np.arange(r, N_TEST, R)
        res = run(idx, idx, tidx, tidx, [FlowBlock(idx, tidx, np.arange(N_TRAIN))])
        got = {k: c.gather(getattr(res, k), root=0) for k in ("sigma_train", "sigma_test", "train_idx", "test_idx")}
        if r == 0:
            with open(os.path.join(out, f"refused_{R}.json"), "w", encoding="utf-8") as fh:
                json.dump(every, fh)
            np.savez(os.path.join(out, f"strided_{R}.npz"), **{f"{k}_{i}": v for k, per in got.items()
                                                                for i, v in enumerate(per)})
        c.Barrier()
        run(np.arange(N_TRAIN), np.arange(N_TRAIN), np.arange(N_TEST), np.arange(N_TEST), None)
        sys.exit(0)  # not reached: the line above is refused
    if sys.argv[2:] == ["charts"]:
        run_sets(*set_cases()["chart_by_rank"])
        sys.exit(0)  # not reached: refused
    hist = {}
    for name, kw in (("delta", {}), ("gaussian_row", dict(width=1 / 30, normalize="row", engine="numpy"))):
        res = kernel_flow(make_kernel(name.split("_")[0], **kw), train, test, dt=17.0, steps=3, loss="ultralocal",
                          comm=c)
        rows = c.gather((len(res.train_idx), len(res.test_idx)), root=0)
        for key in ("sigma_train", "sigma_test"):
            hist[f"{name}_{key}"] = np.array(c.gather(getattr(res, key), root=0))
        hist[f"{name}_rows"] = np.array(rows)
    if r == 0:
        np.savez(os.path.join(out, f"flow_{R}.npz"), **hist)
    X.sample(1000, seed=0, layout="share").save(os.path.join(out, f"share_{R}.h5"))
