"""Run under mpiexec -n R by tests/test_whole_sets_mpi.py. argv: OUT.

Every rank passes the whole train and test sets (`Hypersurface.sample`'s default layout "all") to
`kernel_flow` with the Delta kernel and the row-normalised Gaussian; rank 0 saves the histories to
OUT/flow_R.npz with every rank's histories (to show they agree). Then every rank saves its share
(layout "share") of a sample as OUT/share_R.h5.
"""

import os
import sys

import numpy as np

from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from hpcflow.parallel import comm as pcomm

out = sys.argv[1]
c = pcomm.resolve()
R = c.Get_size()
X = Hypersurface.fermat(3)
train, test = X.sample(200, seed=0, chart=(0, 1)), X.sample(100, seed=1, chart=(0, 1))
with pcomm.abort_on_error(c):
    hist = {}
    for name, kw in (("delta", {}), ("gaussian_row", dict(width=1 / 30, normalize="row", engine="numpy"))):
        res = kernel_flow(make_kernel(name.split("_")[0], **kw), train, test, dt=17.0, steps=3, loss="ultralocal",
                          comm=c)
        rows = c.gather((len(res.train_idx), len(res.test_idx)), root=0)
        for key in ("sigma_train", "sigma_test"):
            hist[f"{name}_{key}"] = np.array(c.gather(getattr(res, key), root=0))
        hist[f"{name}_rows"] = np.array(rows)
    if c.Get_rank() == 0:
        np.savez(os.path.join(out, f"flow_{R}.npz"), **hist)
    X.sample(1000, seed=0, layout="share").save(os.path.join(out, f"share_{R}.h5"))
