"""Run under mpiexec -n R by tests/test_distance_scaling_memory.py. argv: N QUERIES METHOD.

Runs one size of the distance_scaling kind (`neighbour_distances`: the Fermat quintic, all charts, seed 0) and
prints, on rank 0, one JSON line: every rank's peak resident bytes at the end.
"""

import json
import sys

from hpcflow.experiments.distance_scaling import neighbour_distances
from hpcflow.geometry import Hypersurface
from hpcflow.parallel import comm as pcomm
from hpcflow.resources import peak_rss

n, queries, method = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = pcomm.resolve()
neighbour_distances(Hypersurface.fermat(3), n, 0, {"method": method, "queries": queries, "workers": 1}, comm=c)
peaks = c.allgather(peak_rss()) if c.Get_size() > 1 else [peak_rss()]
if c.Get_rank() == 0:
    print(json.dumps(peaks))
