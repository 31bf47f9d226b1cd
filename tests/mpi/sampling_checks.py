"""Run under mpiexec -n R by tests/test_distributed_sampling.py: sampling and row moves against their definitions.

argv: REFERENCE.npz (the block-by-block reference sets "free" and "chart"). Rank 0 prints one JSON line.
"""

import json
import sys

import numpy as np

from hpcflow.geometry import Hypersurface
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share
from hpcflow.parallel.redistribute import rows_to_owners

FIELDS = ("points", "weights", "omega2", "g_fs", "chart", "jacobian")
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
ref = np.load(sys.argv[1])
X = Hypersurface.fermat(3)
out = {"rank": r, "size": R, "mismatch": [], "counters": {}}
cases = {"free": dict(seed=11, chart=None), "chart": dict(seed=12, chart=(0, 1))}
for name, kw in cases.items():
    n = int(ref[f"{name}_n"])
    for threads in (1, 2):
        for layout in ("share", "root", "all"):
            ps = X.sample(n, threads=threads, layout=layout, **kw)
            lo, hi = share(n, R, r) if layout == "share" else (0, n) if layout == "all" or r == 0 else (0, 0)
            for f in FIELDS:
                a, b = getattr(ps, f), ref[f"{name}_{f}"][lo:hi]
                if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                    out["mismatch"].append([name, threads, layout, f])
            if ps.n_dropped != int(ref[f"{name}_dropped"]):
                out["mismatch"].append([name, threads, layout, "n_dropped"])
    from hpcflow.geometry.sampling import sample_points

    out["counters"][name] = sample_points(X, n, chart=kw["chart"], seed=kw["seed"], threads=1, layout="share")[1]
    # without Jacobians (the flows' point sets): every other field bitwise the same share, fewer bytes moved
    ps, cnt = sample_points(X, n, chart=kw["chart"], seed=kw["seed"], threads=1, layout="share", jacobian=False)
    lo, hi = share(n, R, r)
    if ps.jacobian is not None or any(getattr(ps, f).tobytes() != ref[f"{name}_{f}"][lo:hi].tobytes()
                                      for f in FIELDS[:-1]):
        out["mismatch"].append([name, 1, "share", "jacobian=False"])
    out["counters"][name + "_no_jacobian"] = cnt

# fewer points than ranks (empty shares): the first 2 points of seed 11 are the prefix of its larger sample
tiny = X.sample(2, seed=11, layout="share")
lo, hi = share(2, R, r)
for f in FIELDS:
    if getattr(tiny, f).tobytes() != ref[f"free_{f}"][lo:hi].tobytes() or len(getattr(tiny, f)) != hi - lo:
        out["mismatch"].append(["tiny", 1, "share", f])

# seed=None (the default): one fresh entropy, rank 0's, for every rank; this rank's share of that one draw
fresh = X.sample(40, layout="share")
out["fresh_seed"], out["fresh_points"] = fresh.seed, fresh.points.view(np.float64).tolist()

# rows_to_owners: rank r holds global rows r, r+R, ...; owners get contiguous, uneven ranges (rank 0 none at R > 1)
m = 37
idx = np.arange(r, m, R)
bounds = np.array([0] + [m * (q + 1) ** 2 // R**2 for q in range(R)]) if R > 1 else np.array([0, m])
bounds[1] = 0 if R > 1 else bounds[1]
got_idx, (x, z, k) = rows_to_owners(idx, [idx * 1.5, np.stack([idx + 1j * idx, -idx + 0j], 1), idx[:, None] * [1, 2]],
                                    bounds, comm=c)
want = np.arange(bounds[r], bounds[r + 1])
out["moved_ok"] = bool(np.array_equal(got_idx, want) and np.array_equal(x, want * 1.5)
                       and np.array_equal(z, np.stack([want + 1j * want, -want + 0j], 1))
                       and np.array_equal(k, want[:, None] * [1, 2]) and z.dtype == np.complex128)
everyone = c.gather(out, root=0)
for o in everyone if r == 0 else []:
    print(json.dumps(o), flush=True)
