"""`hpcflow run ...` with SIGTERM sent by one rank to itself at a chosen flow step, for tests/test_flow_legs.py and
tests/test_last_step_stop.py.

Usage: python flow_stop_driver.py STEP RANK[:SIG] run JOB --out DIR ...
When the checkpoint writer sees step STEP on rank RANK (not its final call), that rank signals itself with SIG
(default SIGTERM; a scheduler's preemption): the run writes the checkpoint of that step and exits with status 4 on
every rank, unless the flow ends at that step anyway.
"""

import os
import signal
import sys

from hpcflow import checkpoint as _ckpt
from hpcflow.cli import main

step = int(sys.argv[1])
rank, _, name = sys.argv[2].partition(":")
rank, sig = int(rank), getattr(signal, name or "SIGTERM")
_call = _ckpt.CheckpointWriter.__call__


def _call_with_signal(self, view):
    if view.step == step and self.rank == rank and not view.final:
        os.kill(os.getpid(), sig)
    return _call(self, view)


_ckpt.CheckpointWriter.__call__ = _call_with_signal
sys.exit(main(sys.argv[3:]))
