"""Run under mpiexec -n R by tests/test_nn_data_checks.py. argv: OUT.

Every rank calls `train` (and `evaluate_sigma`) with sets of which one row is bad: in a whole set every rank holds
(each rank checks its share, so one rank alone finds it), in each rank's own rows passed as Shards (rank 0's), or
with every weight 0 over all ranks while each rank's share alone has rows. Each refusal is caught; rank 0 writes every
rank's ["ExceptionName: message", marked collective] per case (None: accepted) to OUT/data_R.json, with the
sigma_val history of one valid epoch trained on the same communicator after the refusals, and that of a set whose
weights are 0 on rank 0's share alone (accepted: the weighted means are over all ranks).
"""

import json
import os
import sys

from hpcflow.geometry import Hypersurface
from hpcflow.nn.data import MetricData
from hpcflow.nn.model import MetricMLP
from hpcflow.nn.replicas import Shard
from hpcflow.nn.train import TrainConfig, evaluate_sigma, train
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: the shared helper's module
from metric_data import changed  # noqa: E402

out = sys.argv[1]
c = pcomm.resolve()
R, r = c.Get_size(), c.Get_rank()
X = Hypersurface.fermat(3)
tr, va = MetricData.from_pointset(X.sample(60, seed=0)), MetricData.from_pointset(X.sample(30, seed=1))
cfg = TrainConfig(epochs=1, batch_size=20)


def model():
    return MetricMLP(10, depth=1, width=4, seed=0)


def own_rows(d):
    """This rank's share of `d` as a Shard."""
    lo, hi = share(len(d), R, r)
    return Shard(d[lo:hi], lo, len(d))


zero_weights = changed(va, "weights", slice(None), 0.0)
zero_on_rank_0 = changed(tr, "weights", slice(*share(len(tr), R, 0)), 0.0)
cases = {
    "whole_set_weight_in_last_share": lambda: train(model(), changed(tr, "weights", 45, -1.0), va, cfg, comm=c),
    "shard_x_of_rank_0": lambda: train(model(), own_rows(changed(tr, "x", (3, 0), float("nan"))), va, cfg, comm=c),
    "val_weights_all_zero": lambda: train(model(), tr, zero_weights, cfg, comm=c),
    "val_shards_weights_all_zero": lambda: train(model(), tr, own_rows(zero_weights), cfg, comm=c),
    "evaluate_omega2_in_last_share": lambda: evaluate_sigma(model(), changed(va, "omega2", 29, 0.0), comm=c),
    "evaluate_empty": lambda: evaluate_sigma(model(), va[:0], comm=c),
}
mine = {}
for name, call in cases.items():
    try:
        call()
        mine[name] = None
    except (TypeError, ValueError) as exc:
        mine[name] = [f"{type(exc).__name__}: {exc}", getattr(exc, "collective", False)]
mine["valid_sigma_val"] = train(model(), tr, va, cfg, comm=c).sigma_val
mine["zero_on_rank_0_sigma_val"] = train(model(), zero_on_rank_0, va, cfg, comm=c).sigma_val
every = c.allgather(mine)
if r == 0:
    with open(os.path.join(out, f"data_{R}.json"), "w") as fh:
        json.dump(every, fh)
