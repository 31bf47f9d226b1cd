"""Run under mpiexec -n R by tests/test_flow_collectives.py. argv: OUT.

count: a flow with a callback and a CheckpointWriter (as `hpcflow run` has them) on a communicator that records
the name of every call but Get_*; rank 0 writes each step's calls (callback to callback) to OUT/calls_R.json.
flow: a flow with rejected trial steps and its reference, eq. 3.5 with one correctly rounded global sum per
quantity and one decision per trial dt, its arrays on the flow's array module (`get_xp`: CuPy on a GPU, whose roundoff
the flow's is); rank 0 writes both (metrics gathered in global order) to OUT/flow_R.npz.
"""

import json
import os
import sys
import tempfile

import numpy as np

from hpcflow.backend import get_xp, to_host
from hpcflow.checkpoint import CheckpointWriter
from hpcflow.flow import DEFAULT_CACHE_BYTES, kernel_flow
from hpcflow.flow_step import Exact
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.kernels import make_kernel
from hpcflow.kernels.base import DEFAULT_TILE
from hpcflow.metric import is_positive_definite, loss_and_grad
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share
from hpcflow.parallel.reduce import any_true, exact_sum, gather_rows

out = sys.argv[1]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
train_all, test_all = (Hypersurface.fermat(3).sample(n, seed=seed, chart=(0, 1)) for n, seed in ((90, 41), (37, 42)))
train, test = (ps.subset(np.arange(*share(len(ps), R, r))) for ps in (train_all, test_all))
kernel = make_kernel("gaussian", width=0.3)
DT, STEPS, HALVINGS = 40.0, 5, 12  # dt = 40 is rejected at several steps


class Recorded:
    """`comm` with the name of each call but Get_* appended to `names`."""

    def __init__(self, comm):
        self.comm, self.names = comm, []

    def __getattr__(self, name):
        if not name.startswith("Get_"):
            self.names.append(name)
        return getattr(self.comm, name)


class OnXp:
    """The arrays of a point set that the flow uses, on its array module."""

    def __init__(self, ps, xp):
        self.points, self.g_fs, self.omega2, self.weights = (xp.asarray(getattr(ps, f))
                                                             for f in ("points", "g_fs", "omega2", "weights"))

    def __len__(self):
        return len(self.points)


def reference(train, test):
    """(sigma_train, sigma_test, dt, test_held, v_train, v_test) of eq. 3.5: kappa, the loss gradient's kappa term,
    sigma (eq. B.11) and held test points each a `reduce.exact_sum`; a trial dt rejected when any train metric is
    not positive definite, halved up to HALVINGS times."""
    xp = get_xp()
    train, test = OnXp(train, xp), OnXp(test, xp)
    steps = Exact(kernel, train, test, c.allgather(len(train)), tile=DEFAULT_TILE, cache_bytes=DEFAULT_CACHE_BYTES,
                  comm=c)
    total = {id(ps): exact_sum(to_host(ps.weights), comm=c) for ps in (train, test)}

    def kappa(v, ps):
        eta = det_hermitian(unpack(v)) / ps.omega2
        return eta, exact_sum(to_host(ps.weights * eta), comm=c) / total[id(ps)]

    def sigma(v, ps):
        eta, k = kappa(v, ps)
        return exact_sum(to_host(ps.weights * abs(1.0 - eta / k)), comm=c) / total[id(ps)]

    v_tr, v_te, dts, held = pack(train.g_fs), pack(test.g_fs), [], 0
    s_tr, s_te = [sigma(v_tr, train)], [sigma(v_te, test)]
    for _ in range(STEPS):
        _, grad = loss_and_grad(v_tr, train.omega2, train.weights, kappa(v_tr, train)[1],
                                weight_sum=total[id(train)], allsum=lambda x: exact_sum(to_host(x), comm=c))
        u_tr, u_te = steps(grad)
        h = DT
        with np.errstate(over="ignore", invalid="ignore"):
            while any_true(not bool(xp.all(is_positive_definite(unpack(v_tr - h * u_tr)))), comm=c):
                h *= 0.5
        assert h >= DT / 2 ** HALVINGS
        new_te = v_te - h * u_te
        ok = is_positive_definite(unpack(new_te))
        v_tr, v_te = v_tr - h * u_tr, xp.where(ok[:, None], new_te, v_te)
        held += int(exact_sum([float(len(ok) - int(ok.sum()))], comm=c))
        dts.append(h)
        s_tr.append(sigma(v_tr, train))
        s_te.append(sigma(v_te, test))
    return s_tr, s_te, dts, held, to_host(v_tr), to_host(v_te)


with pcomm.abort_on_error(c):
    rec = Recorded(c)
    folder = c.bcast(tempfile.mkdtemp() if r == 0 else None)
    writer = CheckpointWriter(os.path.join(folder, "checkpoint.h5"), {}, every=None, seconds=1e9, comm=rec)
    marks = []
    kernel_flow(kernel, train, test, dt=0.05, steps=6, comm=rec, on_step=writer,
                callback=lambda info: marks.append(len(rec.names)) and False)
    writer.restore_signals()
    if r == 0:
        with open(os.path.join(out, f"calls_{R}.json"), "w", encoding="utf-8") as fh:
            json.dump([rec.names[a:b] for a, b in zip(marks, marks[1:])], fh)

    res = kernel_flow(kernel, train, test, dt=DT, steps=STEPS, max_halvings=HALVINGS, comm=c,
                      callback=lambda info: False, on_step=lambda view: False)
    s_tr, s_te, dts, held, v_tr, v_te = reference(train, test)
    got = {"sigma_train": res.sigma_train, "sigma_test": res.sigma_test, "dt": res.dt_history,
           "test_held": np.array([res.test_held]), "rejected": np.array([res.rejected_steps]),
           "g_train": gather_rows(res.train_idx, pack(res.g_train), len(train_all), comm=c),
           "g_test": gather_rows(res.test_idx, pack(res.g_test), len(test_all), comm=c),
           "ref_sigma_train": np.array(s_tr), "ref_sigma_test": np.array(s_te), "ref_dt": np.array(dts),
           "ref_test_held": np.array([held]),
           "ref_g_train": gather_rows(res.train_idx, v_tr, len(train_all), comm=c),
           "ref_g_test": gather_rows(res.test_idx, v_te, len(test_all), comm=c)}
    if r == 0:
        np.savez(os.path.join(out, f"flow_{R}.npz"), **got)
