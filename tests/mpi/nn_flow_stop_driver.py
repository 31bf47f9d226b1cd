"""`hpcflow nn ...` with SIGTERM delivered inside the kernel flow of the job, for tests/test_nn_legs.py.

Usage: python nn_flow_stop_driver.py STEP RANK nn JOB --out DIR ...
Rank RANK signals itself once step STEP of the kernel flow is done (before anything else looks at that step).
Every step the flow completes is appended to stderr as one line "kernel flow step: S" (the steps the stop
request let it take).
"""

import os
import signal
import sys

from hpcflow import flow as _flow
from hpcflow.cli import main
from hpcflow.parallel.comm import resolve

step, rank = int(sys.argv[1]), int(sys.argv[2])
_orig = _flow.kernel_flow


def _kernel_flow(*args, callback=None, **kwargs):
    def watched(info):
        print(f"kernel flow step: {info['step']}", file=sys.stderr, flush=True)
        if info["step"] == step and resolve().Get_rank() == rank:
            os.kill(os.getpid(), signal.SIGTERM)
        return callback(info) if callback is not None else False

    return _orig(*args, callback=watched, **kwargs)


_flow.kernel_flow = _kernel_flow
sys.exit(main(sys.argv[3:]))
