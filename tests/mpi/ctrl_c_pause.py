"""`python -m hpcflow ARGS...` (run as the program runs it: runpy, sys.argv) whose work waits for its first Ctrl-C once
the progress line of step (flow) or epoch (network) N is out, for tests/test_ctrl_c.py: the SIGINT the test sends once
it has seen that line then lands mid-run however late it comes. The rest of the run takes about a second on busy
cores; a test process held up that long saw the run finish (status 0) before its SIGINT arrived.

Usage: python ctrl_c_pause.py step|epoch N ARGS...
"step": the flow waits in the checkpoint hook of step N + 1 (the progress line of step N is out by then), and stops
at that step's boundary; "epoch": the training waits as epoch N + 1 begins (the line of epoch N is out), and stops
after its first batch. Each rank waits for the SIGINT it gets itself (mpiexec forwards it to every rank); a run never
signalled goes on after WAIT seconds.
"""

import runpy
import sys
import time

from hpcflow import checkpoint, stop_signals

#: seconds a rank waits at most for its Ctrl-C (the test sends it within a minute, or fails)
WAIT = 120.0

where, n = sys.argv[1], int(sys.argv[2])
waited = []


def until_ctrl_c():
    """Wait until this process's first SIGINT has been taken as a stop request (its handler ran)."""
    waited.append(True)
    deadline = time.monotonic() + WAIT
    while not stop_signals._asked and time.monotonic() < deadline:
        time.sleep(0.01)  # the handler runs here, between two sleeps


if where == "step":
    hook = checkpoint.CheckpointWriter.__call__

    def at_step(self, view):
        if not waited and view.step > n and not view.final:
            until_ctrl_c()
        return hook(self, view)

    checkpoint.CheckpointWriter.__call__ = at_step
else:  # (torch is imported for a network job only)
    from hpcflow.nn import train

    epoch_order = train.Trainer._epoch_order

    def at_epoch(self):
        if not waited and self.epoch >= n:
            until_ctrl_c()
        return epoch_order(self)

    train.Trainer._epoch_order = at_epoch
sys.argv = ["hpcflow", *sys.argv[3:]]
runpy.run_module("hpcflow", run_name="__main__", alter_sys=True)
