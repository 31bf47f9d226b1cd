"""Run under mpiexec -n R by tests/test_mpi.py. argv: MODE OUT.

dense: one exact-mode step (Gaussian, tile 8 so tile pairs spread over ranks) of this rank's contiguous rows;
rank 0 saves the gathered metrics and the per-rank kernel entries to OUT/dense_*.npy.
raise: the last rank raises inside the flow at step 2 while the others wait in a collective.
idle: 2 clusters (halo = every train point) on R ranks, so some ranks own nothing; every rank checks the
histories against the same flow run by itself alone and prints "idle ok" with its row counts.
preempt JOB: the flow job of JOB into OUT, with SIGTERM sent to the last rank during step 3's checkpoint hook;
exits with the Preempted status (4) after the checkpoint of step 3 is written."""

import os
import sys

import numpy as np

from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import pack
from hpcflow.kernels import GaussianKernel
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share
from hpcflow.parallel.reduce import gather_rows

mode, out = sys.argv[1], sys.argv[2]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
X = Hypersurface.fermat(3)
train_all, test_all = X.sample(61, seed=41, chart=(0, 1)), X.sample(23, seed=42, chart=(0, 1))
train = train_all.subset(np.arange(*share(len(train_all), R, r)))
test = test_all.subset(np.arange(*share(len(test_all), R, r)))


class FailingKernel(GaussianKernel):
    """The Gaussian kernel, except that the last rank's operator raises on its second evaluation."""

    def operator(self, x, x_src, **kw):
        op = super().operator(x, x_src, **kw)
        calls = []

        def apply(grad):
            calls.append(1)
            if r == R - 1 and len(calls) == 2:
                raise RuntimeError("injected kernel failure")
            return op(grad)

        return apply


# raise: the failing rank waits RAISE_WAIT, not ABORT_WAIT (3 s), for the others, which sit in a collective and never
# come; that wait itself, default or given, is tests/test_abort_mpi.py's
RAISE_WAIT = 0.5
with pcomm.abort_on_error(c, wait=RAISE_WAIT if mode == "raise" else pcomm.ABORT_WAIT):
    if mode == "dense":
        res = kernel_flow(GaussianKernel(0.3), train, test, dt=0.05, steps=1, tile=8, comm=c)
        g_tr = gather_rows(res.train_idx, pack(res.g_train), len(train_all), comm=c)
        g_te = gather_rows(res.test_idx, pack(res.g_test), len(test_all), comm=c)
        entries = np.array(c.allgather(res.per_rank["kernel_entries"]), dtype=np.int64)
        if r == 0:
            np.save(os.path.join(out, "dense_train.npy"), g_tr)
            np.save(os.path.join(out, "dense_test.npy"), g_te)
            np.save(os.path.join(out, "dense_entries.npy"), entries)
    elif mode == "idle":
        from hpcflow.cluster.distributed import distributed_blocks

        db = distributed_blocks(train.points, test.points, comm=c, method="full", n_clusters=2, halo_cutoff=1.6)
        rows, test_rows = db.train_rows(), db.test_rows()
        res = kernel_flow(GaussianKernel(0.3), train_all.subset(rows), test_all.subset(test_rows), dt=0.05, steps=2,
                          blocks=[db.blocks[b] for b in db.owned()], train_idx=rows, test_idx=test_rows, comm=c)
        ref = kernel_flow(GaussianKernel(0.3), train_all, test_all, dt=0.05, steps=2, blocks=db.blocks,
                          comm=pcomm.SerialComm())
        np.testing.assert_allclose(res.sigma_train, ref.sigma_train, rtol=1e-10, atol=0)
        np.testing.assert_allclose(res.sigma_test, ref.sigma_test, rtol=1e-10, atol=0)
        np.testing.assert_allclose(pack(res.g_train), pack(ref.g_train[rows]), rtol=1e-10, atol=1e-12)
        line = f"idle ok rank {r}: {len(rows)} rows, {res.per_rank['halo_rows']} halo rows"
        lines = c.gather(line, root=0)  # one writer: lines printed by several ranks can interleave
        for text in lines if r == 0 else []:
            print(text, flush=True)
    elif mode == "preempt":
        import signal

        from hpcflow import checkpoint
        from hpcflow.errors import Preempted
        from hpcflow.experiments import flow_job
        from hpcflow.jobs import output, registry

        hook = checkpoint.CheckpointWriter.__call__

        def signalled_hook(self, view):
            if view.step == 3 and r == R - 1 and not view.final:
                os.kill(os.getpid(), signal.SIGTERM)
            return hook(self, view)

        checkpoint.CheckpointWriter.__call__ = signalled_hook
        _, cfg = registry.load(sys.argv[3])
        try:
            flow_job.run(cfg, output.prepare_outdir(out))
        except Preempted as exc:
            sys.exit(exc.exit_status)
    elif mode == "raise":
        kernel_flow(FailingKernel(0.3), train, test, dt=0.05, steps=5, comm=c)
