"""Run under mpiexec -n R by tests/test_checkpoint.py: a fake flow whose rows are split over ranks is
checkpointed; argv: OUT STEPS [signal_at_step [slow_sync]].

slow_sync S > 0: rank 0's fsync takes S seconds longer (a slow shared file system), and right after close every
rank reads the checkpoint back (`load_resume`) and prints "rank R: read step S status X"."""

import os
import signal
import sys
import time
from types import SimpleNamespace

import numpy as np

from hpcflow.checkpoint import CheckpointWriter, load_resume
from hpcflow.errors import Preempted
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share

out, steps = sys.argv[1], int(sys.argv[2])
sig_at = int(sys.argv[3]) if len(sys.argv) > 3 else -1
slow_sync = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
N, M = 11, 7
lo, hi = share(N, R, R - 1 - r)  # a permuted ownership: rank r owns a block from the other end
tlo, thi = share(M, R, r)


def v_of(idx, step):  # packed positive-definite metrics depending on the global row and the step
    v = np.zeros((idx.size, 9))
    v[:, :3] = 1.0 + idx[:, None] * 0.1 + step
    v[:, 3:] = 0.01 * (idx[:, None] + np.arange(6)) / (1 + step)
    return v


tr, te = np.arange(lo, hi), np.arange(tlo, thi)
if slow_sync > 0 and r == 0:
    _fsync = os.fsync

    def _slow_fsync(fd):
        time.sleep(slow_sync)
        _fsync(fd)

    os.fsync = _slow_fsync  # hpcflow.atomic's fsync before the rename
w = CheckpointWriter(out, {"flow": {"steps": steps}}, every=2, static={"train/weights": (tr, tr * 1.5)},
                     n_rows={"train/weights": N}, block_rows=4)  # several blocks per dataset
with pcomm.abort_on_error(c):
    try:
        for step in range(1, steps + 1):
            if step == sig_at and r == R - 1:
                os.kill(os.getpid(), signal.SIGTERM)
            view = SimpleNamespace(step=step, sigma_train=[1.0 / (k + 1) for k in range(step + 1)],
                                   sigma_test=[2.0] * (step + 1), dt=[0.5] * step, rejections=[(1, 1.0)],
                                   test_held=3, best=0.5, since_best=1, stopped="", n_train=N, n_test=M,
                                   per_rank={"step_seconds": 0.1 * (r + 1), "comm_bytes": 8.0 * r},
                                   train_rows=lambda s=step: (tr, v_of(tr, s)),
                                   test_rows=lambda s=step: (te, v_of(te, s) * 2))
            w(view)
        w.close("finished")
        if slow_sync > 0:
            res = load_resume(out, comm=c)
            print(f"rank {r}: read step {res.step} status {res.status}", flush=True)
    except Preempted as exc:
        for repeat in (signal.SIGUSR1, signal.SIGTERM):  # the request again (scancel --full delivers it twice)
            os.kill(os.getpid(), repeat)  # ignored by a run that has stopped: it still says so and exits 4
        print(f"rank {r}: preempted: {exc}", flush=True)
        sys.exit(exc.exit_status)
