"""Run under mpiexec -n R by tests/test_abort_mpi.py: ranks raising inside `abort_on_error`.

Usage: abort_checks.py MODE SKEW [WAIT]. MODE "all": every rank raises a RuntimeError; "user": every rank a
UserError; "mixed": rank 0 a UserError, the others a RuntimeError; "one": the last rank raises while the others
wait in a barrier. Rank 0 raises SKEW seconds after the others (the rank that reads the input is often the slower
one), its stdout line printed just before (block-buffered on a pipe: flushed by `abort_on_error` or lost).
WAIT: the `wait=` of `abort_on_error` (default its own).
"""

import sys
import time

from hpcflow.errors import UserError
from hpcflow.parallel import comm as pcomm

mode, skew = sys.argv[1], float(sys.argv[2])
wait = {"wait": float(sys.argv[3])} if len(sys.argv) > 3 else {}
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
c.Barrier()
with pcomm.abort_on_error(c, **wait):
    if mode == "one":
        if r == R - 1:
            raise RuntimeError(f"injected failure on rank {r}")
        c.Barrier()  # the other ranks wait in a collective
    if r == 0:
        time.sleep(skew)
    print(f"rank {r} printed before failing")
    if mode == "user" or (mode == "mixed" and r == 0):
        raise UserError(f"injected bad input on rank {r}")
    raise RuntimeError(f"injected failure on rank {r}")
