"""`hpcflow nn ...` with one fault injected after a chosen optimiser step, for tests/test_nn_mpi.py.

Usage: python nn_driver.py MODE EPOCH POSITION RANK nn JOB --out DIR ...
After the step that leaves (epochs done, batches done in the next epoch) = (EPOCH, POSITION) on rank RANK:
MODE "signal" sends SIGTERM to this process (a scheduler's preemption), and again once training has stopped;
MODE "raise" raises RuntimeError.
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.nn import train as _train

mode, epoch, position, rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
_init = _train.Trainer.__init__


def _init_with_fault(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    if self.checkpoint is None:  # only the job's main training (the one that checkpoints)
        return

    def on_step(trainer):
        if (trainer.epoch, trainer.pos, trainer.comm.Get_rank()) == (epoch, position, rank):
            if mode == "signal":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("injected failure")

    self.on_step = on_step


_run = _train.Trainer.run


def _run_then_repeat(self):
    try:
        return _run(self)
    finally:
        if mode == "signal" and self.signalled:  # the request again, as scancel --full delivers it (task and srun):
            os.kill(os.getpid(), signal.SIGTERM)  # a run that has stopped ignores it and still exits 4


_train.Trainer.__init__ = _init_with_fault
_train.Trainer.run = _run_then_repeat
sys.exit(main(sys.argv[5:]))
