"""Run under mpiexec -n R by tests/test_parallel.py: collectives of hpcflow.parallel against their definitions."""

import json
import math
import os
import sys
import time

import numpy as np

from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share
from hpcflow.parallel.reduce import allgatherv, any_true, exact_sum, max_value

c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
rng = np.random.default_rng(7)
x = rng.standard_normal(1001) * np.exp(rng.uniform(-20, 20, 1001))  # the same global data on every rank
lo, hi = share(x.size, R, r)
out = {"rank": r, "size": R, "sum": exact_sum(x[lo:hi]), "fsum": math.fsum(x.tolist()),
       "mpi_loaded": "mpi4py.MPI" in sys.modules}
if out["mpi_loaded"]:  # the provenance of a launched run: the loaded library's own version, its first line first
    from mpi4py import MPI

    from hpcflow.provenance import mpi_library

    out["mpi_library"] = [mpi_library(), " ".join(MPI.Get_library_version().splitlines()[0].split())]
# uneven rows, one rank possibly empty: rank k holds k rows of 3 columns
local = np.full((r, 3), float(r))
g = allgatherv(local)
out["gathered_ok"] = bool(g.shape == (R * (R - 1) // 2, 3)
                          and all((g[k * (k - 1) // 2:k * (k + 1) // 2] == k).all() for k in range(R)))
out["any"] = any_true(r == R - 1)
out["none"] = any_true(False)
out["max"] = max_value(float(r))
# threads per rank: SLURM_CPUS_PER_TASK of an `sbatch -c 64` task that mpiexec runs 1-3 ranks in (the ranks share
# its CPUs), then HPCFLOW_THREADS on rank 0 only (collective whatever the variables: no rank may return early)
os.environ.pop("HPCFLOW_THREADS", None)
os.environ["SLURM_CPUS_PER_TASK"] = "64"
out["slurm_threads"] = pcomm.threads_per_rank(c)
if r == 0:
    os.environ["HPCFLOW_THREADS"] = "1"
out["mixed_threads"] = pcomm.threads_per_rank(c)
# a barrier that gives up: every rank arrives, the last one late (the others wait for it); then, on a duplicate
# of its own, the last rank stays away and the others give up after their wait
with pcomm.duplicate(c) as d:
    if r == R - 1:
        time.sleep(0.3)
    t0 = time.monotonic()
    out["arrived"] = [pcomm.arrive_within(c if d is None else d, 30.0), time.monotonic() - t0]
away = c.Dup() if R > 1 else None
if away is not None and r < R - 1:
    t0 = time.monotonic()
    out["gave_up"] = [pcomm.arrive_within(away, 0.5), time.monotonic() - t0]
everyone = c.gather(out, root=0)  # one writer: lines of several ranks could interleave
for o in everyone if r == 0 else []:
    print(json.dumps(o), flush=True)
c.Barrier()
if len(sys.argv) > 1 and sys.argv[1] == "raise":
    # the failing rank waits 0.5 s, not ABORT_WAIT (3 s), for the others, which sit in a collective and never come;
    # that wait itself, default or given, is tests/test_abort_mpi.py's
    with pcomm.abort_on_error(wait=0.5):
        if r == R - 1:
            print(f"rank {r} printed before failing")  # block-buffered on a pipe: lost unless flushed before Abort
            raise RuntimeError("injected failure")
        c.Barrier()  # the other ranks wait in a collective
