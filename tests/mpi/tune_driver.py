"""`hpcflow tune ...` whose first trial raises on one rank only (or on every rank), before that rank's flow, for
tests/test_tune_study.py.

Usage: python tune_driver.py RANK [--record-delay S] tune JOB --trials N --out DIR ...   (RANK: a rank number, or
"all")
The other ranks enter the trial's flow (and its collectives) as usual: a rank-local internal error (MemoryError
on the rank with the largest cluster, a node-local I/O error) must end the worker, not leave its ranks waiting.
With "all", every rank raises at once (an error of the trial's own code, the same on every rank).
--record-delay S: rank 0 sleeps S seconds before it records the error in the storage (a slow shared file system).
"""

import sys
import time

from hpcflow.cli import main
from hpcflow.experiments import flow_job
from hpcflow.tune import study

rank = None if sys.argv[1] == "all" else int(sys.argv[1])
args = sys.argv[2:]
if args[0] == "--record-delay":
    delay, args = float(args[1]), args[2:]
    _record_error = study.record_error

    def _slow_record_error(trial, exc):
        time.sleep(delay)
        _record_error(trial, exc)

    study.record_error = _slow_record_error  # called by rank 0 only (the rank that holds the trial)
_run = flow_job.run


def _run_with_fault(cfg, outdir, *, comm=None, **kwargs):
    if comm is not None and rank in (None, comm.Get_rank()) and outdir.endswith("0000"):
        raise RuntimeError(f"injected failure on rank {comm.Get_rank()}")
    return _run(cfg, outdir, comm=comm, **kwargs)


flow_job.run = _run_with_fault
sys.exit(main(args))
