"""`hpcflow run` of a flow job with Ctrl-C pressed twice, for tests/test_ctrl_c.py.

Usage: python ctrl_c_driver.py STEP WHEN run JOB --out DIR ...
The first SIGINT reaches this process in the checkpoint hook of step STEP (a stop request, honoured at that step's
boundary); the second comes WHEN: "step", right after the first, before the boundary; "fsync", while the stop's
checkpoint is being synced to disk (hpcflow.atomic), where an interrupted `hpcflow nn` used to end in a traceback.
signal.raise_signal runs the Python handler before it returns, so each SIGINT is seen where it is sent.
"""

import os
import signal
import sys

from hpcflow import checkpoint
from hpcflow.cli import main

step, when = int(sys.argv[1]), sys.argv[2]
hook, fsync, armed = checkpoint.CheckpointWriter.__call__, os.fsync, []


def pressed_at_step(self, view):
    if view.step == step and not view.final and not armed:
        armed.append(True)
        signal.raise_signal(signal.SIGINT)
        if when == "step":
            signal.raise_signal(signal.SIGINT)
    return hook(self, view)


def pressed_in_fsync(fd):
    if armed and when == "fsync":
        signal.raise_signal(signal.SIGINT)
    return fsync(fd)


checkpoint.CheckpointWriter.__call__ = pressed_at_step
os.fsync = pressed_in_fsync
sys.exit(main(sys.argv[3:]))
