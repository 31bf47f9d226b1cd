"""A 2-rank job that ends by MPI Abort, for tests/test_abort_shm.py.

Usage: python shm_abort_driver.py MODE RECORD
After MPI_Init each rank writes the paths of the MPICH shared-memory segments it maps (/proc/self/maps) to
RECORD.RANK, then rank 1 waits in a barrier that rank 0 never enters while rank 0:
MODE "error": raises RuntimeError in `abort_on_error` (the job ends by Abort with status 1, an internal error);
MODE "write": raises WriteFailed (ENOSPC) there (Abort with status 5);
MODE "stop": receives SIGTERM in `interrupts_end_the_job` (Abort with status 143).
"""

import errno
import os
import signal
import sys
import time

from hpcflow.errors import WriteFailed
from hpcflow.parallel import comm as pcomm
from hpcflow.stop_signals import interrupts_end_the_job

mode, record = sys.argv[1], sys.argv[2]
c = pcomm.resolve()
r = c.Get_rank()
with open(f"{record}.{r}", "w") as fh:
    fh.write("".join(line + "\n" for line in pcomm.mapped_segments()))
c.Barrier()  # every rank's record is written before any Abort
with pcomm.abort_on_error(c, wait=0.5), interrupts_end_the_job("shm_abort_driver"):
    if r:
        c.Barrier()
    elif mode == "error":
        raise RuntimeError("internal error")
    elif mode == "write":
        raise WriteFailed(errno.ENOSPC, os.strerror(errno.ENOSPC), "out/file")
    else:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
print("not aborted", flush=True)
