"""`hpcflow run ...` with SIGTERM sent by one rank to itself at a chosen flow step, for tests/test_flow_legs.py.

Usage: python flow_stop_driver.py STEP RANK run JOB --out DIR ...
When the checkpoint writer sees step STEP on rank RANK, that rank signals itself (a scheduler's preemption): the
run writes the checkpoint of that step and exits with status 4 on every rank.
"""

import os
import signal
import sys

from hpcflow import checkpoint as _ckpt
from hpcflow.cli import main

step, rank = int(sys.argv[1]), int(sys.argv[2])
_call = _ckpt.CheckpointWriter.__call__


def _call_with_signal(self, view):
    if view.step == step and self.rank == rank:
        os.kill(os.getpid(), signal.SIGTERM)
    return _call(self, view)


_ckpt.CheckpointWriter.__call__ = _call_with_signal
sys.exit(main(sys.argv[3:]))
