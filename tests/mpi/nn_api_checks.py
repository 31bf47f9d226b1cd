"""Run under mpiexec -n R by tests/test_nn_api_args.py. argv: OUT.

Every rank calls `train` with sets too small to train on or measure (shards of 1 point over all ranks, a whole set
of 1 point on rank 0 alone) and with batch_size=1, catching each refusal; rank 0 writes every rank's
"ExceptionName: message" per case (None: accepted) to OUT/refused_R.json. Then every rank trains one valid epoch on
the same communicator (the refusals left no collective unmatched) and rank 0 adds its sigma_val history.
"""

import json
import os
import sys

from hpcflow.geometry import Hypersurface
from hpcflow.nn.data import MetricData
from hpcflow.nn.model import MetricMLP
from hpcflow.nn.replicas import Shard
from hpcflow.nn.train import TrainConfig, train
from hpcflow.parallel import comm as pcomm

out = sys.argv[1]
c = pcomm.resolve()
R, r = c.Get_size(), c.Get_rank()
X = Hypersurface.fermat(3)
tr, va = MetricData.from_pointset(X.sample(60, seed=0)), MetricData.from_pointset(X.sample(30, seed=1))
one_point = Shard(tr[:1], 0, 1) if r == 0 else Shard(tr[:0], 1, 1)  # rank 0 holds the set's only row


def model():
    return MetricMLP(10, depth=1, width=4, seed=0)


cases = {
    "train_one_point_shards": lambda: train(model(), one_point, va, TrainConfig(epochs=1, batch_size=20), comm=c),
    "val_one_point_shards": lambda: train(model(), tr, one_point, TrainConfig(epochs=1, batch_size=20), comm=c),
    "val_one_point_on_rank_0": lambda: train(model(), tr, va[:1] if r == 0 else va,
                                             TrainConfig(epochs=1, batch_size=20), comm=c),
    "batch_size_1": lambda: train(model(), tr, va, TrainConfig(epochs=1, batch_size=1), comm=c),
}
mine = {}
for name, call in cases.items():
    try:
        call()
        mine[name] = None
    except (TypeError, ValueError) as exc:
        mine[name] = f"{type(exc).__name__}: {exc}"
mine["valid_sigma_val"] = train(model(), tr, va, TrainConfig(epochs=1, batch_size=20), comm=c).sigma_val
every = c.allgather(mine)
if r == 0:
    with open(os.path.join(out, f"refused_{R}.json"), "w") as fh:
        json.dump(every, fh)
