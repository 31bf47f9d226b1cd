"""`hpcflow ARGS` (hpcflow.cli.main) on every rank, counting the write probe files (`hpcflow.jobs.output.PROBE`)
created by each; rank 0 then prints `probe files: N`, N the count over all ranks, and the command's status.

Usage: mpiexec -n R python probe_count_driver.py ARGS...
"""

import os
import sys

from hpcflow.cli import main
from hpcflow.jobs.output import PROBE
from hpcflow.parallel.comm import resolve

made = []
real_open = os.open


def counting_open(path, flags, *args, **kwargs):
    if flags & os.O_CREAT and os.path.basename(os.fspath(path)).startswith(PROBE):
        made.append(os.fspath(path))
    return real_open(path, flags, *args, **kwargs)


os.open = counting_open
status = main(sys.argv[1:])
os.open = real_open
comm = resolve(None)
total = comm.allreduce(len(made))
if comm.Get_rank() == 0:
    print(f"probe files: {total} status {status}", flush=True)
sys.exit(status)
