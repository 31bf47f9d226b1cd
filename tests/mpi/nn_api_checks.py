"""Run under mpiexec -n R by tests/test_nn_api_args.py. argv: OUT [MODE[,MODE...]], MODE one of refused (the
default), differ, same; the modes run one after the other in the same world, each as described below.

Every rank calls `train` with sets too small to train on or measure (shards of 1 point over all ranks, a whole set
of 1 point on rank 0 alone) and with batch_size=1; with "differ", with arguments of which the last rank's alone are
refused (a dict for the config, a PointSet for the data, a config changed after its check, a network of another
dtype than the data, an NTK method of `train_with_ntk`, a width of `width_sweep`). Also `sample_shards` with
n_val = 0 on the last rank alone ("refused") and with another seed there ("same"). Each refusal is caught; rank 0
writes every rank's ["ExceptionName: message", marked collective] per case (None: accepted) to OUT/refused_R.json
(differ_R.json). With "same", valid arguments of which
the last rank's network config, TrainConfig, NTK method or sweep widths differ from the others' (rank 0's seed in
one case), or whose whole train set differs (each rank's own rows) or is a Shard on the last rank alone
-> same_R.json.
Then every rank trains one valid epoch on the same communicator (the refusals left no collective unmatched) and
rank 0 adds its sigma_val history.
"""

import json
import os
import sys

import torch

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.nn.data import MetricData
from hpcflow.nn.experiment import sample_shards, train_with_ntk, width_sweep
from hpcflow.nn.model import MetricMLP
from hpcflow.nn.replicas import Shard
from hpcflow.nn.train import TrainConfig, train
from hpcflow.parallel import comm as pcomm

out, modes = sys.argv[1], (sys.argv[2:] or ["refused"])[0].split(",")
c = pcomm.resolve()
R, r = c.Get_size(), c.Get_rank()
last = r == R - 1
X = Hypersurface.fermat(3)
pts = X.sample(60, seed=0)
val_pts = X.sample(30, seed=1)
tr, va = MetricData.from_pointset(pts), MetricData.from_pointset(val_pts)
one_point = Shard(tr[:1], 0, 1) if r == 0 else Shard(tr[:0], 1, 1)  # rank 0 holds the set's only row


def model(dtype="float64", **kw):
    return MetricMLP(10, **{"depth": 1, "width": 4, "seed": 0, "dtype": dtype, **kw})


def changed():
    cfg = TrainConfig(epochs=1, batch_size=20)
    if last:
        cfg.batch_size = 1  # changed after the config was checked
    return cfg


cases = {
    "train_one_point_shards": lambda: train(model(), one_point, va, TrainConfig(epochs=1, batch_size=20), comm=c),
    "val_one_point_shards": lambda: train(model(), tr, one_point, TrainConfig(epochs=1, batch_size=20), comm=c),
    "val_one_point_on_rank_0": lambda: train(model(), tr, va[:1] if r == 0 else va,
                                             TrainConfig(epochs=1, batch_size=20), comm=c),
    "batch_size_1": lambda: train(model(), tr, va, TrainConfig(epochs=1, batch_size=1), comm=c),
    "sample_shards_n_val_on_last_rank": lambda: sample_shards(X, 20, 0 if last else 20, 1, (0, 1), comm=c),
}
def with_ntk(method):
    """One epoch tracking the NTK of 4 train and 4 validation points with `method`."""
    return train_with_ntk(model(), tr, va, TrainConfig(epochs=1, batch_size=20), ntk_train=tr[:4], ntk_test=va[:4],
                          ntk_method=method, comm=c)


def sweep(widths):
    """`width_sweep` over `widths`, one epoch each."""
    return width_sweep(widths, tr, va, {"depth": 1, "activation": "relu", "kind": "multiplicative"},
                       TrainConfig(epochs=1, batch_size=20), width_ref=4, lr_exponent=1.0, ntk_train=tr[:4],
                       ntk_test=va[:4], seed=0, comm=c)


differing = {
    "ntk_method": lambda: with_ntk("bad" if last else "auto"),
    "sweep_width": lambda: sweep([0] if last else [4]),
    "cfg_dict": lambda: train(model(), tr, va, {"epochs": 1} if last else TrainConfig(epochs=1, batch_size=20),
                              comm=c),
    "train_pointset": lambda: train(model(), pts if last else tr, va, TrainConfig(epochs=1, batch_size=20), comm=c),
    "cfg_changed": lambda: train(model(), tr, va, changed(), comm=c),
    "model_dtype": lambda: train(model("float32" if last else "float64"), tr, va, TrainConfig(epochs=1, batch_size=20),
                                 comm=c),
}

def unlike_network(**kw):
    """Train a network whose config on the last rank has `kw` (float32 data for a float32 network)."""
    dtype = kw.pop("dtype", "float64") if last else "float64"
    data = [MetricData.from_pointset(ps, dtype=getattr(torch, dtype)) for ps in (pts, val_pts)]
    return train(model(dtype, **(kw if last else {})), *data, TrainConfig(epochs=1, batch_size=20), comm=c)


def unlike_config(rank, **kw):
    """Train with a TrainConfig that has `kw` on rank `rank` only."""
    return train(model(), tr, va, TrainConfig(**{"epochs": 1, "batch_size": 20, **(kw if r == rank else {})}),
                 comm=c)


unlike = {
    **{f"network_{k}": (lambda kv=kv: unlike_network(**kv)) for k, kv in (
        ("width", {"width": 8}), ("depth", {"depth": 2}), ("activation", {"activation": "gelu"}),
        ("kind", {"kind": "additive"}), ("features", {"features": "reim_abs2"}), ("dtype", {"dtype": "float32"}))},
    **{f"config_{k}": (lambda kv=kv: unlike_config(R - 1, **kv)) for k, kv in (
        ("lr", {"lr": 2e-3}), ("batch_size", {"batch_size": 30}), ("epochs", {"epochs": 2}),
        ("loss", {"loss": "ultralocal"}), ("lr_schedule", {"lr_schedule": "cosine"}),
        ("optimizer", {"optimizer": "sgd"}), ("detach_kappa", {"detach_kappa": True}))},
    "config_seed_on_rank_0": lambda: unlike_config(0, seed=1),
    "ntk_method": lambda: with_ntk("jacobian" if last else "layerwise"),
    "sweep_widths": lambda: sweep([4, 8] if last else [4]),
    "sample_shards_seed": lambda: sample_shards(X, 20, 20, 2 if last else 1, (0, 1), comm=c),
    # each rank's own 20 rows passed as a whole set; the validation set as a Shard on the last rank alone
    "train_rows_of_each_rank": lambda: train(model(), tr[20 * r:20 * (r + 1)], va, TrainConfig(epochs=1, batch_size=20),
                                             comm=c),
    "val_shard_on_last_rank": lambda: train(model(), tr, Shard(va[10:], 10, 30) if last else va,
                                            TrainConfig(epochs=1, batch_size=20), comm=c),
}
for mode in modes:
    mine = {}
    for name, call in {"refused": cases, "differ": differing, "same": unlike}[mode].items():
        try:
            call()
            mine[name] = None
        except (TypeError, ValueError, ConfigError) as exc:
            mine[name] = [f"{type(exc).__name__}: {exc}", getattr(exc, "collective", False)]
    mine["valid_sigma_val"] = train(model(), tr, va, TrainConfig(epochs=1, batch_size=20), comm=c).sigma_val
    every = c.allgather(mine)
    if r == 0:
        with open(os.path.join(out, f"{mode}_{R}.json"), "w") as fh:
            json.dump(every, fh)
