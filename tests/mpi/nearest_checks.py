"""Run under mpiexec -n R by tests/test_nearest_mpi.py. argv: OUT.

Train points: 61 sampled points plus exact copies of three of them appended at the end (global rows 61-63
repeat rows 5, 40, 58), split in contiguous shares; test points: 23 sampled points plus copies of rows 5, 40
and 58 (ties at distance 0). Saves to OUT (rank 0):
- nearest_R.npy: the train row each test row takes its update from, read off `flow_step.Nearest` (trees of 7
  rows) applied to a gradient whose first column is the global train index; train_ok_R.npy: whether every
  train row took its own gradient; counters_R.npy: per rank (halo rows, kernel entries, bytes) after 3 steps;
- flow_R.npz: sigma histories and gathered metrics of a 4-step Delta flow, and of the same flow through the
  gather-everything `flow_step.Exact` path (the Delta kernel with `nearest` switched off).
"""

import os
import sys

import numpy as np

from hpcflow.flow import kernel_flow
from hpcflow.flow_step import Nearest
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import pack
from hpcflow.geometry.pointset import PointSet
from hpcflow.kernels import DeltaKernel
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share
from hpcflow.parallel.reduce import gather_rows

COPIES = [5, 40, 58]
out = sys.argv[1]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
X = Hypersurface.fermat(3)
base, test_base = X.sample(61, seed=41, chart=(0, 1)), X.sample(23, seed=42, chart=(0, 1))
train_all = PointSet.concatenate([base, base.subset(np.array(COPIES))])
test_all = PointSet.concatenate([test_base, base.subset(np.array(COPIES))])
tr_rows, te_rows = np.arange(*share(len(train_all), R, r)), np.arange(*share(len(test_all), R, r))
train, test = train_all.subset(tr_rows), test_all.subset(te_rows)


class GatherAll(DeltaKernel):
    """The Delta kernel through the generic operator: every train point gathered to every rank (flow_step.Exact)."""

    nearest = False


with pcomm.abort_on_error(c):
    op = Nearest(DeltaKernel(), train, test, tr_rows, comm=c, chunk=7)
    grad = np.zeros((len(train), 9))
    grad[:, 0] = tr_rows
    grad[:, 1:] = np.random.default_rng(r).standard_normal((len(train), 8))
    for _ in range(3):
        u_train, u_test = op(grad)
    nearest = gather_rows(te_rows, u_test[:, 0].astype(np.int64), len(test_all), comm=c)
    train_ok = all(c.allgather(bool(np.array_equal(u_train, grad))))
    counters = c.allgather((op.halo_rows, op.counters.kernel_entries, op.counters.comm_bytes))
    flows = {}
    for name, kernel in (("nearest", DeltaKernel()), ("gather", GatherAll())):
        res = kernel_flow(kernel, train, test, dt=0.4, steps=4, loss="ultralocal", comm=c)
        flows[f"{name}_sigma_train"], flows[f"{name}_sigma_test"] = res.sigma_train, res.sigma_test
        flows[f"{name}_rejected"] = np.array([res.rejected_steps])
        flows[f"{name}_train_g"] = gather_rows(res.train_idx, pack(res.g_train), len(train_all), comm=c)
        flows[f"{name}_test_g"] = gather_rows(res.test_idx, pack(res.g_test), len(test_all), comm=c)
    if r == 0:
        np.save(os.path.join(out, f"nearest_{R}.npy"), nearest)
        np.save(os.path.join(out, f"train_ok_{R}.npy"), np.array([train_ok]))
        np.save(os.path.join(out, f"counters_{R}.npy"), np.array(counters, dtype=np.int64))
        np.savez(os.path.join(out, f"flow_{R}.npz"), **flows)
