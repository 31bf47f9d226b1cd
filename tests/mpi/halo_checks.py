"""Run under mpiexec -n R by tests/test_halo_train_only.py. argv: OUT.

A clustered Gaussian flow with a halo over R ranks (`distributed_blocks`, each rank its own blocks), once with each
of two test sets and once without one; rank 0 saves every run's sigma_train history and gathered train metrics to
OUT/{name}_sigma_train.npy and OUT/{name}_g_train.npy (name: a, b, none)."""

import os
import sys

import numpy as np

from hpcflow.cluster.distributed import distributed_blocks
from hpcflow.flow import kernel_flow
from hpcflow.geometry.hermitian import pack
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share
from hpcflow.parallel.reduce import gather_rows

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: the settings' module
from test_halo_train_only import CLUSTERING, FLOW, kernel, point_sets  # noqa: E402

out = sys.argv[1]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
train_all, tests = point_sets()
with pcomm.abort_on_error(c):
    for name, test_all in tests.items():
        mine = lambda ps: ps.subset(np.arange(*share(len(ps), R, r)))  # noqa: E731
        db = distributed_blocks(mine(train_all).points, None if test_all is None else mine(test_all).points, comm=c,
                                **CLUSTERING)
        rows, test_rows = db.train_rows(), db.test_rows()
        res = kernel_flow(kernel(), train_all.subset(rows), None if test_all is None else test_all.subset(test_rows),
                          blocks=[db.blocks[b] for b in db.owned()], train_idx=rows,
                          test_idx=None if test_all is None else test_rows, comm=c, **FLOW)
        g = gather_rows(res.train_idx, pack(res.g_train), len(train_all), comm=c)
        if r == 0:
            np.save(os.path.join(out, f"{name}_sigma_train.npy"), res.sigma_train)
            np.save(os.path.join(out, f"{name}_g_train.npy"), g)
