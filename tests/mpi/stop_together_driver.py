"""A 2-rank job whose ranks all receive SIGTERM at once (as mpiexec and srun pass one on), for
tests/test_stop_together.py.

Usage: python stop_together_driver.py RECORD
After MPI_Init each rank writes to RECORD.RANK the files under /tmp that its launcher's proxy (its parent) holds
open (MPICH's Hydra: its /tmp/hydra_hwloc_xmlfile_*) and the MPICH shared-memory segments it maps, then both ranks
signal themselves inside `abort_on_error` and `interrupts_end_the_job`.
"""

import os
import signal
import sys
import time

from hpcflow.parallel import comm as pcomm
from hpcflow.stop_signals import interrupts_end_the_job

record = sys.argv[1]
c = pcomm.resolve()
r = c.Get_rank()
held = []
for fd in os.listdir(f"/proc/{os.getppid()}/fd"):
    try:
        held.append(os.readlink(f"/proc/{os.getppid()}/fd/{fd}"))
    except OSError:
        pass
with open(f"{record}.{r}", "w") as fh:
    fh.write("".join(p + "\n" for p in held + pcomm.mapped_segments() if p.startswith(("/tmp/", "/dev/shm/"))))
c.Barrier()
with pcomm.abort_on_error(c), interrupts_end_the_job("stop_together_driver"):
    c.Barrier()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
print("not stopped", flush=True)
