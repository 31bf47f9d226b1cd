"""Run under mpiexec -n 2 by tests/test_abort_mpi.py: rank 0 leaves (`comm.leave`, wait WAIT) while rank 1 is
still busy for LATE seconds, so rank 0's MPI Finalize waits for it; rank 0 writes its pid to PIDFILE first.

Usage: leave_checks.py PIDFILE WAIT LATE
"""

import os
import sys
import time

from hpcflow.parallel import comm as pcomm

pidfile, wait, late = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
c = pcomm.resolve()
if c.Get_rank() == 0:
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
c.Barrier()
if c.Get_rank() == 1:
    time.sleep(late)
pcomm.leave(3, wait=wait)
