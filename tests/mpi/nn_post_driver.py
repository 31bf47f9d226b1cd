"""`hpcflow nn ...` with SIGTERM delivered after training, for tests/test_nn_post_training_stop.py.

Usage: python nn_post_driver.py PHASE RANK nn JOB --out DIR ...
PHASE "sweep": rank RANK sends SIGTERM to itself as the width sweep trains its first width; "kernel_flow": as the
kernel flow starts. Once the command has returned, every rank signals itself again (scancel --full delivers a
request twice): a run that honoured the first request ignores the repeat and still exits with its status.
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.nn import experiment as _ex
from hpcflow.parallel.comm import resolve

phase, rank = sys.argv[1], int(sys.argv[2])
name = {"sweep": "width_sweep", "kernel_flow": "ntk_kernel_flow"}[phase]
_orig = getattr(_ex, name)
sent = []


def _with_signal(*args, **kwargs):
    if not sent and resolve().Get_rank() == rank:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)
    return _orig(*args, **kwargs)


setattr(_ex, name, _with_signal)
status = main(sys.argv[3:])
if sent or status == 4:
    os.kill(os.getpid(), signal.SIGTERM)
sys.exit(status)
