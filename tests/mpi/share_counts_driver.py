"""Run under mpiexec -n R by tests/test_pointset_share_counts.py: saves of layout "share" draws, then counts.

argv: OUT. Writes OUT/share.h5 (the shares of X.sample(1000, seed=0) together), OUT/chart.h5 (those of a draw in
chart (0, 1)) and OUT/sub.h5 (every other row of each share); rank 0 prints `probe files: N` (the write probe files,
`hpcflow.jobs.output.PROBE`, that every rank's save of share.h5 created, over all ranks).
"""

import os
import sys

from hpcflow.geometry import Hypersurface
from hpcflow.jobs import output
from hpcflow.parallel.comm import resolve

out = sys.argv[1]
X = Hypersurface.fermat(3)
c = resolve(None)
share = X.sample(1000, seed=0, layout="share")

made = []
real_open = os.open


def counting_open(path, flags, *args, **kwargs):  # (as tests/mpi/probe_count_driver.py counts them)
    if flags & os.O_CREAT and os.path.basename(os.fspath(path)).startswith(output.PROBE):
        made.append(os.fspath(path))
    return real_open(path, flags, *args, **kwargs)


os.open = counting_open
share.save(os.path.join(out, "share.h5"), force=True)
os.open = real_open
total = c.allreduce(len(made))
X.sample(600, seed=4, chart=(0, 1), layout="share").save(os.path.join(out, "chart.h5"), force=True)
share[::2].save(os.path.join(out, "sub.h5"), force=True)
if c.Get_rank() == 0:
    print(f"probe files: {total}", flush=True)
