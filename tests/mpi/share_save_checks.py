"""Run under mpiexec -n R by tests/test_pointset_share_save.py: PointSet.save of each rank's rows of a set, then load.

argv: OUT. Each case saves one file OUT/<case>.h5 from every rank's rows (rank order) and loads it on every rank;
every rank writes OUT/rank_<r>.json: its rank, and per case the rows of the draw its part held (PointSet.drawn) and the
seed and drawn rows of the set it loaded back (or the load's error).
"""

import json
import os
import sys

import numpy as np
from mpi4py import MPI

from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.parallel import comm as pcomm

c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
out_dir = sys.argv[1]
X = Hypersurface.fermat(3)


def split(n):
    """This rank's slice of rows 0..n-1 in R contiguous parts (the first rank's the shortest)."""
    cut = [n * k // R for k in range(R + 1)]
    return slice(cut[r], cut[r + 1])


share = X.sample(40, seed=0, layout="share")
whole = X.sample(30, seed=5)
cases = {
    # a share's rows selected by weight: rows of the 40-point draw scattered over the ranks
    "share_selected": share[share.weights < np.median(share.weights)],
    "share_head": share[:3],
    # rows r of a set every rank holds whole (layout "all"): together the whole draw
    "whole_split": whole[split(30)],
    # every rank's part reversed: the draw's rows in another order
    "whole_split_reversed": whole[split(30)][::-1],
    # a chart's draw in shares, every other row
    "chart_share": X.sample(30, seed=2, chart=(0, 1), layout="share")[::2],
    # layout "root": every row on rank 0, none elsewhere
    "root_tail": X.sample(30, seed=3, layout="root")[5:],
    # each rank's rows of its own draw (seed r, 20 + 5 r points): at R > 1 rows of no one draw
    "own_draws": X.sample(20 + 5 * r, seed=r, comm=MPI.COMM_SELF)[2:12],
}
got = {"rank": r}
for name, ps in cases.items():
    path = os.path.join(out_dir, f"{name}.h5")
    ps.save(path, force=True)
    mine = None if ps.drawn is None else [int(ps.drawn[0]), ps.drawn[1].tolist()]
    try:
        back = PointSet.load(path)
        loaded = [back.seed, None if back.drawn is None else [int(back.drawn[0]), back.drawn[1].tolist()],
                  len(back)]
    except Exception as exc:  # the file that save wrote is one load refuses
        loaded = f"{type(exc).__name__}: {exc}"
    got[name] = {"mine": mine, "len": len(ps), "loaded": loaded}
with open(os.path.join(out_dir, f"rank_{r}.json"), "w") as fh:
    json.dump(got, fh)
