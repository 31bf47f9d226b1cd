"""Run under mpiexec -n R by tests/test_abort_mpi.py: ranks raising inside `abort_on_error`.

Usage: abort_checks.py MODE SKEW [WAIT]. MODE "all": every rank raises a RuntimeError; "user": every rank a
UserError; "mixed": rank 0 a UserError, the others a RuntimeError; "one": the last rank raises while the others
wait in a barrier; "slow-exit": as "all", and the last rank is slow on its way out: each flush of its stderr
after it failed takes SLOW_FLUSH seconds, each begun and ended one recorded as a line "begin"/"end" in the file
named by ABORT_FLUSHES (a rank killed by the launcher leaves a "begin" without its "end"). Rank 0 raises SKEW seconds after the others (the rank that reads the input is often the slower
one), its stdout line printed just before (block-buffered on a pipe: flushed by `abort_on_error` or lost).
WAIT: the `wait=` of `abort_on_error` (default its own).
"""

import os
import sys
import time

from hpcflow.errors import UserError
from hpcflow.parallel import comm as pcomm

#: seconds each stderr flush of the slow rank takes in mode "slow-exit"
SLOW_FLUSH = 0.5


class SlowStderr:
    """sys.stderr whose flushes take SLOW_FLUSH seconds, each recorded before and after (mode "slow-exit")."""

    def __init__(self, stream, record: str):
        self.stream, self.record = stream, record

    def write(self, text):
        return self.stream.write(text)

    def flush(self):
        self._note("begin")
        self.stream.flush()
        time.sleep(SLOW_FLUSH)
        self._note("end")

    def _note(self, word):
        with open(self.record, "a") as f:
            f.write(word + "\n")

    def __getattr__(self, name):
        return getattr(self.stream, name)


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
    if mode == "slow-exit" and r == R - 1:
        sys.stderr = SlowStderr(sys.stderr, os.environ["ABORT_FLUSHES"])
    print(f"rank {r} printed before failing")
    if mode == "user" or (mode == "mixed" and r == 0):
        raise UserError(f"injected bad input on rank {r}")
    raise RuntimeError(f"injected failure on rank {r}")
