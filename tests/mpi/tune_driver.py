"""`hpcflow tune ...` whose first trial raises on one rank only, before that rank's flow, for tests/test_tune_study.py.

Usage: python tune_driver.py RANK tune JOB --trials N --out DIR ...
The other ranks enter the trial's flow (and its collectives) as usual: a rank-local internal error (MemoryError
on the rank with the largest cluster, a node-local I/O error) must end the worker, not leave its ranks waiting.
"""

import sys

from hpcflow.cli import main
from hpcflow.experiments import flow_job

rank = int(sys.argv[1])
_run = flow_job.run


def _run_with_fault(cfg, outdir, *, comm=None, **kwargs):
    if comm is not None and comm.Get_rank() == rank and outdir.endswith("0000"):
        raise RuntimeError(f"injected failure on rank {rank}")
    return _run(cfg, outdir, comm=comm, **kwargs)


flow_job.run = _run_with_fault
sys.exit(main(sys.argv[2:]))
