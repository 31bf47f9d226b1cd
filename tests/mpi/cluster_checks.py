"""Run under mpiexec -n R by tests/test_distributed_cluster.py: distributed blocks against the serial flow_blocks.

Rank 0 prints one JSON line per rank.
"""

import json

import numpy as np

from hpcflow.cluster import flow_blocks
from hpcflow.cluster.distributed import distributed_blocks
from hpcflow.experiments.common import sample_train_test_shares
from hpcflow.geometry import Hypersurface
from hpcflow.parallel import comm as pcomm

c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
X = Hypersurface.fermat(3)
cases = {"batched": dict(method="batched", n_clusters=5, batch_size=150, seed=3, halo_cutoff=0.3),
         "paper": dict(method="batched", n_clusters=5, batch_size=150, seed=3, halo_cutoff=0.3, merge="paper"),
         "full": dict(method="full", n_clusters=4, halo_cutoff=None)}
train_all, test_all = X.sample(600, seed=1, chart=(0, 1)), X.sample(200, seed=2, chart=(0, 1))
train, test = X.sample(600, seed=1, chart=(0, 1), layout="share"), X.sample(200, seed=2, chart=(0, 1), layout="share")
out = {"rank": r, "size": R}
for name, kw in cases.items():
    ref = flow_blocks(train_all.points, test_all.points, **kw)  # the single-process definition
    d = distributed_blocks(train.points, test.points, **kw)
    same = len(ref) == len(d.blocks) and all(
        np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.test_idx, b.test_idx)
        and np.array_equal(a.source_idx, b.source_idx) and np.array_equal(a.test_source_idx, b.test_source_idx)
        for a, b in zip(ref, d.blocks))
    rows = d.source_rows()
    fetched = d.fetch_train(train.weights, rows)
    fetched_test = d.fetch_test(test.g_fs, d.test_rows())
    out[name] = {"blocks_equal": bool(same), "owner": d.owner.tolist(), "cost": d.cost.tolist(),
                 "counters": {k: v for k, v in d.counters.items() if "seconds" not in k},
                 "fetch_ok": bool(fetched.tobytes() == train_all.weights[rows].tobytes()
                                  and fetched_test.tobytes() == test_all.g_fs[d.test_rows()].tobytes()),
                 "train_rows": d.train_rows().tolist(), "labels": d.labels.tolist()}
# the flow job's train/test shares are the rows of the same sets
geo = {"manifold": "fermat", "dim": 3, "psi": 0.0, "chart": [0, 1], "n_train": 600, "n_test": 200, "seed": 1}
_, tr, te, cnt = sample_train_test_shares(geo)
out["shares_ok"] = bool(tr.points.tobytes() == train.points.tobytes() and te.g_fs.tobytes() == test.g_fs.tobytes()
                        and cnt["points_owned"] == len(train) + len(test))
everyone = c.gather(out, root=0)
for o in everyone if r == 0 else []:
    print(json.dumps(o), flush=True)

