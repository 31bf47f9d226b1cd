"""Training loop: Adam (or SGD) on mini-batches of the σ / ultra-local loss, validation σ every epoch.

Data parallel over the ranks of `comm` (hpcflow.nn.replicas): the data order is one global permutation of the
train points per epoch (the same on every rank, from one seeded generator), global batch b is positions
[bB, (b+1)B) of it (the last one ends at the last point: one point left over joins it, `data.batch_count`), each
rank computes the gradient of the rows of that batch it holds, and one Allreduce gives every rank the global batch's
gradient, so the run is the same for every R up to summation order.
`Trainer.state_dict()` captures everything a bitwise resume needs (hpcflow.nn.checkpoint documents it).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np

from hpcflow.arguments import api_bool, api_hook, api_integer, api_number, int_text, short_repr
from hpcflow.errors import RESUME_HINT, ConfigError, Preempted
from hpcflow.experiments.common import MIN_POINTS
from hpcflow.geometry.hermitian import is_positive_definite, unpack
from hpcflow.jobs.schema import MAX_STEPS, SEED_MAX, Field
from hpcflow.nn._torch import optim_without_dynamo, require_torch
from hpcflow.nn.data import (ALL_WEIGHTS_ZERO, batch_count, batch_starts, check_fields, check_metric_data, rows_fault,
                             weighted)
from hpcflow.nn.fast_step import ManualGradient, optimizer_step
from hpcflow.nn.fused_loss import fused_metric_loss
from hpcflow.nn.loss import LOSSES, metric_loss
from hpcflow.nn.loss import eta as metric_eta
from hpcflow.nn.rates import RATE_FIELDS, SCHEDULES, UNUSED_BY, other_schedule, schedule_fault, unused_rate
from hpcflow.nn.replicas import GradientReducer, Shard, TimedComm, check_replicas, global_sigma, keep_shares
from hpcflow.nn.replicas import as_shard as whole_shard
from hpcflow.parallel.comm import abort_on_error as ends_the_job_on_error
from hpcflow.parallel.comm import arguments_together, raise_together, resolve
from hpcflow.parallel.decompose import share
from hpcflow.progress import progress
from hpcflow.stop_signals import install, restore

torch = require_torch()

OPTIMIZERS = ("adam", "sgd")
#: why sets and batches need MIN_POINTS points
FEW_POINTS = "σ (eq. B.11) of one point is 0 for any metric (κ is the weighted mean of η over the same points)"

#: the values TrainConfig accepts: those of the job file's [training] keys (hpcflow.nn.job.SCHEMA, a layer above
#: this one; tests/test_nn_api_args.py checks that the two accept and refuse the same values); the learning-rate
#: keys are the same Fields (hpcflow.nn.rates)
FIELDS = {
    "epochs": Field(int, lo=0, hi=MAX_STEPS),
    "batch_size": Field(int, lo=MIN_POINTS, help=f"{FEW_POINTS}: no gradient"),
    "lr": RATE_FIELDS["lr"],
    "loss": Field(str, choices=LOSSES),
    "detach_kappa": Field(bool),
    "optimizer": Field(str, choices=OPTIMIZERS),
    **{k: RATE_FIELDS[k] for k in ("lr_decay", "lr_schedule", "lr_min", "lr_warmup")},
    "seed": Field(int, lo=0, hi=SEED_MAX),
    "check_replicas": Field(bool),
    "manual_step": Field(bool),
}


def _want(field: Field) -> str:
    """What a value of `field` must be, in words: "an integer >= 2 (why)", "a finite number in (0, 1e+06]"..."""
    if field.choices is not None:
        return "one of " + ", ".join(repr(c) for c in field.choices)
    if field.type is bool:
        return "True or False"
    fmt = int_text if field.type is int else "{:g}".format
    kind = "an integer" if field.type is int else "a finite number"
    if field.hi is None:  # (every integer is bounded by 2**62 anyway: api_integer)
        text = f"{kind} {'>' if field.lo_open else '>='} {fmt(field.lo)}"
    else:
        text = f"{kind} in {'(' if field.lo_open else '['}{fmt(field.lo)}, {fmt(field.hi)}]"
    return text + (f" ({field.help})" if field.help else "")


def api_value(name: str, value, field: Field):
    """`value` of the TrainConfig field `name` checked against `field` and converted (1e3 -> 1000 for an integer,
    NumPy scalars -> Python): TypeError for a value of another type, ValueError for one outside the field's range or
    choices, naming the field, the value and what to pass."""
    want, where = _want(field), f"TrainConfig: {name}"
    if field.type is int:
        return api_integer(where, value, want, lo=field.lo, hi=field.hi)
    if field.type is float:
        return api_number(where, value, want, lo=field.lo, lo_open=field.lo_open, hi=field.hi)
    if not isinstance(value, (bool, np.bool_) if field.type is bool else field.type):
        raise TypeError(f"{where}={short_repr(value)} is invalid; pass {want}")
    if field.choices is not None and value not in field.choices:
        raise ValueError(f"{where}={short_repr(value)} is invalid; pass {want}")
    return bool(value) if field.type is bool else value


@dataclass
class TrainConfig:
    """Training settings; every value is checked (and converted) when the config is made, as the job file's
    [training] keys are (FIELDS, `check`): a TypeError or ValueError names the first bad one and the fix."""

    epochs: int = 50
    batch_size: int = 1000
    lr: float = 1e-3
    loss: str = "sigma"
    detach_kappa: bool = False  # see hpcflow.nn.loss: κ from the batch, differentiated
    optimizer: str = "adam"
    lr_decay: float = 1.0  # learning rate multiplied by this after every epoch (exponential schedule)
    # or "cosine": lr_min + (lr - lr_min)(1 + cos(π s/(S - 1)))/2 at step s = 0 .. S - 1 of all S (lr at the first,
    # lr_min at the last; S = 1: lr)
    lr_schedule: str = "exponential"
    lr_min: float = 0.0  # cosine schedule's final learning rate
    lr_warmup: float = 0.0  # epochs of linear warmup: the schedule's rate times min(1, (step + 1)/warmup steps)
    seed: int = 0
    check_replicas: bool = False  # compare parameter checksums of all ranks after every epoch (debug)
    manual_step: bool = True  # hpcflow.nn.fast_step where it applies (same results to rounding); False: autograd

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Check every field (FIELDS) and the schedule as a whole, converting values in place; the trainer checks
        again, so a field changed after the config was made is refused too."""
        for name, spec in FIELDS.items():
            setattr(self, name, api_value(name, getattr(self, name), spec))
        unused = unused_rate(self.__dict__)
        if unused is not None:  # (the job file's [training] refuses it too, `hpcflow.nn.job.check`)
            s = self.lr_schedule
            raise ValueError(f"TrainConfig: {unused}={getattr(self, unused)!r} does not apply to lr_schedule={s!r} "
                             f"({UNUSED_BY[s][1]}); leave it at its default {RATE_FIELDS[unused].default!r}, or pass "
                             f"lr_schedule={other_schedule(s)!r}")
        fault = schedule_fault(self.__dict__)
        if fault is not None:
            raise ValueError(f"TrainConfig: {' '.join(fault)}")


#: the per-epoch series of a History (what a checkpoint and nn.h5 history/ hold)
SERIES = ("sigma_train", "sigma_val", "loss", "epoch_seconds", "comm_seconds", "val_not_positive_definite")
#: the series that count (int64 in a checkpoint and nn.h5; the others float64)
COUNTS = ("val_not_positive_definite",)


@dataclass
class History:
    """Per-epoch record; index 0 is before training (the initial network). `diverged`: None, or why training
    stopped early for a numerical reason (`Trainer.diverged`); the series then end at the last epoch recorded."""

    sigma_train: list = field(default_factory=list)  # (epochs+1,) σ on all train points
    sigma_val: list = field(default_factory=list)  # (epochs+1,) σ on the held-out points
    loss: list = field(default_factory=list)  # (epochs,) Σ n_b L_b / Σ n_b: batch losses weighted by their points
    epoch_seconds: list = field(default_factory=list)  # (epochs,) seconds of the optimiser steps (not σ, NTK, writes)
    comm_seconds: list = field(default_factory=list)  # (epochs, R) seconds each rank spent in the epoch's collectives
    # (epochs+1,) validation points (all ranks) where the metric is not positive definite: σ there uses signed det g
    val_not_positive_definite: list = field(default_factory=list)
    diverged: str | None = None
    ranks: int = 1  # R: the columns of comm_seconds, also before the first epoch (shape (0, R))

    def series(self) -> dict:
        """{name: list} of the per-epoch series (`SERIES`)."""
        return {k: getattr(self, k) for k in SERIES}

    def arrays(self) -> dict:
        out = {k: np.asarray(v, dtype=np.int64 if k in COUNTS else np.float64) for k, v in self.series().items()}
        out["comm_seconds"] = out["comm_seconds"].reshape(-1, self.ranks)  # (E, R), E = 0 included
        return out


@torch.no_grad()
def predict(model, data, *, chunk: int = 65536):
    """Packed metrics g (N, m²) of the model on `data`, evaluated in chunks."""
    return torch.cat([model(data.x[s:s + chunk], data.gfs[s:s + chunk]) for s in range(0, len(data), chunk)])


def as_shard(data, *, comm=None, name: str = "data") -> Shard:
    """A Shard as is; a set every rank holds whole: this rank's share of it (all of it on one rank); collective,
    a set that differs between ranks is refused by every rank (`replicas.keep_shares`)."""
    return keep_shares({name: data}, comm=comm)[name]


@torch.no_grad()
def evaluate_sigma(model, data, *, comm=None) -> float:
    """σ measure (eq. B.11) of the model's metric on all points of `data` over all ranks (κ from these points).
    `data`: MetricData (MetricData.from_pointset of a PointSet), or this rank's Shard of it, of >= MIN_POINTS points
    over all ranks, checked as `train` checks its sets (TypeError / ValueError naming data.field, the first bad row
    and the fix, raised by every rank together)."""
    return evaluate(model, data, comm=comm, count=False)[0]


@torch.no_grad()
def evaluate(model, data, *, comm=None, count: bool = True) -> tuple[float, int | None]:
    """(σ as `evaluate_sigma`, the number of points of `data` over all ranks where the model's metric is not
    positive definite: σ uses the signed η = det g / |Ω|² there; None without `count`) from one evaluation of the
    network; `data` checked as `evaluate_sigma` says."""
    c = resolve(comm)
    arguments_together(lambda: _check_model(model) or checked_data(model, {"data": data}, c.Get_rank(), c.Get_size()),
                       comm=c)
    shard = as_shard(data, comm=c)
    refuse_unweighted({"data": shard}, c)
    return _evaluate(model, shard, c, count)


def _evaluate(model, shard: Shard, c, count: bool) -> tuple[float, int | None]:
    """`evaluate` of this rank's Shard of checked data."""
    d = shard.data
    v = predict(model, d) if len(d) else d.gfs[:0]
    eta = metric_eta(v, d.omega2) if len(d) else d.omega2[:0]
    sigma = global_sigma(eta.to("cpu", torch.float64).numpy(), d.weights.to("cpu", torch.float64).numpy(), comm=c)
    if not count:
        return sigma, None
    bad = int(np.count_nonzero(~is_positive_definite(unpack(v.to("cpu", torch.float64).numpy()))))
    return sigma, bad if c.Get_size() == 1 else int(c.allreduce(bad))  # (an integer sum: exact in any order)


def make_optimizer(model, cfg: TrainConfig):
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer = {cfg.optimizer!r} is not one of {OPTIMIZERS}; use 'adam' or 'sgd'")
    optim_without_dynamo()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    try:  # the fused kernel: one call per step instead of ~10 small ops per parameter tensor (same update)
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):  # a torch or device without fused Adam
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def batch_loss(model, batch, cfg: TrainConfig, *, comm=None):
    """Training loss of one batch (this rank's part of it under `comm`); 3x3 metrics take the closed-form
    backward of hpcflow.nn.fused_loss."""
    if batch.gfs.shape[-1] == 9:
        return fused_metric_loss(model.raw(batch.x), batch.gfs, batch.omega2, batch.weights, kind=model.kind,
                                 loss=cfg.loss, detach_kappa=cfg.detach_kappa, comm=comm)
    if comm is not None and comm.Get_size() > 1:
        raise ConfigError("data-parallel training needs 3x3 metrics (dim = 3); run on one rank")
    return metric_loss(model(batch.x, batch.gfs), batch.omega2, batch.weights, loss=cfg.loss,
                       detach_kappa=cfg.detach_kappa)


def learning_rate(cfg: TrainConfig, step: int, epoch: int, total_steps: int) -> float:
    """Learning rate of optimiser step `step` (0-based) in epoch `epoch` (0-based) of a `total_steps` run."""
    warm = 1.0
    if cfg.lr_warmup > 0:  # S_w = lr_warmup epochs of steps
        warm = min(1.0, (step + 1) / (cfg.lr_warmup * total_steps / max(cfg.epochs, 1)))
    if cfg.lr_schedule == "exponential":
        return warm * cfg.lr * cfg.lr_decay ** epoch
    if cfg.lr_schedule == "cosine":
        frac = step / max(total_steps - 1, 1)
        return warm * (cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * frac)))
    raise ConfigError(f"lr_schedule = {cfg.lr_schedule!r} is not one of {SCHEDULES}; use 'exponential' or 'cosine'")


def checked_data(model, sets: dict, rank: int, size: int) -> None:
    """Each of `sets` ({name: MetricData, or a Shard of it}) as `check_fields` and the model's `check_inputs` (a
    MetricMLP: data of another width or dtype) take it (O(1)), with >= MIN_POINTS points over all ranks, then the
    values of this rank's rows (`rows_fault`: O(N / R)): a Shard's own rows, or this rank's `decompose.share` of a
    set every rank holds whole; a row is named by its index in the set of all ranks. TypeError / ValueError naming
    the set, its field, the first bad row and the fix; no collective (`arguments_together` makes every rank refuse
    with the lowest failing rank's, whose rows come first)."""
    for name, d in sets.items():
        check_metric_data(name, d.data if isinstance(d, Shard) else d)
    for name, d in sets.items():
        check_fields(name, d.data if isinstance(d, Shard) else d)
    few = too_few_points(sets)
    if few is not None:
        raise ValueError(few)
    check = getattr(model, "check_inputs", None)
    for d in sets.values() if check is not None else ():
        d = d.data if isinstance(d, Shard) else d
        check(d.x, d.gfs)
    for name, d in sets.items():
        if isinstance(d, Shard):
            rows, first = d.data, d.lo
        else:
            first, hi = share(len(d), size, rank)
            rows = d[first:hi]
        fault = rows_fault(rows, first)
        if fault is not None:
            raise ValueError(f"{name}: {fault}")


def refuse_unweighted(shards: dict, c) -> None:
    """ValueError, raised by every rank together, for a set ({name: Shard}, checked by `checked_data`) whose
    weights are 0 on all its points over the ranks: κ and σ are weighted means (0/0). One allgather at R > 1."""
    mine = [weighted(s.data) for s in shards.values()]
    every = [mine] if c.Get_size() == 1 else c.allgather(mine)
    for k, name in enumerate(shards):
        have = [m[k] for m in every if m[k] is not None]
        if have and not any(have):
            raise_together(ValueError(f"{name}: {ALL_WEIGHTS_ZERO}"), comm=c)


def check_arguments(train_data, val_data, cfg) -> None:
    """TypeError / ValueError naming the first bad argument of `train` / `Trainer`, before any work or collective:
    data that are not MetricData (or a Shard of it), a cfg that is not a valid TrainConfig."""
    for name, d in (("train_data", train_data), ("val_data", val_data)):
        check_metric_data(name, d.data if isinstance(d, Shard) else d)
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg is a {type(cfg).__name__}, not a TrainConfig; pass TrainConfig(epochs=..., "
                        "batch_size=..., lr=...) (hpcflow.nn.train)")
    cfg.check()


#: what a set of too few points would give, by its name (`too_few_points`)
FEW_POINTS_GIVE = {"train_data": "training would not move the network", "val_data": "sigma_val would be 0",
                   "data": "sigma would be 0 (0/0 for no point)"}


def too_few_points(sets: dict) -> str | None:
    """Why a set ({name: MetricData or Shard}) of fewer than MIN_POINTS points (over all ranks: Shard.n) cannot be
    trained on or measured (σ of one point is 0 by construction), or None."""
    for name, d in sets.items():
        n = whole_shard(d).n
        if n < MIN_POINTS:
            return (f"{name} has {n} point{'s' * (n != 1)} (all ranks together); pass >= {MIN_POINTS}: "
                    f"{FEW_POINTS}, so {FEW_POINTS_GIVE[name]}")
    return None


#: what each hook of `Trainer` is called with, said where a hook that is not callable is refused
HOOKS = (("on_epoch", "a function on_epoch(epoch, model)"), ("on_step", "a function on_step(trainer)"),
         ("log", "a function log(line: str), e.g. print"), ("should_stop", "a function should_stop(trainer) -> bool"),
         ("checkpoint", "a function checkpoint(trainer, reason)"))


def checked_sets(model, train_data, val_data, cfg, hooks=None, rank: int = 0, size: int = 1) -> None:
    """The model (a torch.nn.Module), the hooks ({name: None or callable}, `HOOKS`), `check_arguments`, then
    `checked_data` of the train and validation sets (Shards, or whole sets; rank `rank` of `size`): their fields, point
    counts and the model's `check_inputs`, then the values of this rank's rows; no collective."""
    _check_model(model)
    for name, want in HOOKS:
        api_hook(name, (hooks or {}).get(name), want)
    check_arguments(train_data, val_data, cfg)
    checked_data(model, {"train_data": train_data, "val_data": val_data}, rank, size)


def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model={short_repr(model)} is not a network; pass a torch.nn.Module, e.g. "
                        "hpcflow.nn.model.MetricMLP(n_in)")


def same_settings(model, cfg: TrainConfig) -> dict:
    """{name: value} that every rank must share (`arguments_together`'s `same`): the network's class and `config`
    (width, depth, activation, kind, features, dtype, ...) and every TrainConfig field; ranks that differ would mix
    gradients of other layouts in one Allreduce (or wait in it for ever) or step their replicas apart."""
    net = type(model).__name__
    config = getattr(model, "config", None)
    config = config if isinstance(config, dict) else {}
    keys = sorted(config)  # the class and the key set first: the per-key entries then line up on every rank
    return {"network": net, f"{net} config keys": keys, **{f"{net}.{k}": config[k] for k in keys},
            **{f"TrainConfig.{k}": getattr(cfg, k) for k in FIELDS}}


def partial_comm_seconds(saved, size: int, *, position: int) -> list:
    """Each of `size` ranks' seconds in collectives of the unfinished epoch, from a checkpoint's
    train.partial.comm_seconds and train.position: 0 for every rank at an epoch boundary (position 0: nothing timed
    yet, on any rank count); part way into an epoch the values saved where they are one per rank of this run (version
    4: one per rank of the run that wrote it, so its length is that run's R), else NaN for every rank: the epoch was
    begun on another R, whose partial seconds are not this run's ranks' (a 1-rank part's zeros included: its seconds
    are known, the other ranks' are not). Versions 1-3 hold rank 0's alone, one number: 0 there is a 1-rank part (one
    rank times no collectives), known only to a run on one rank; any other number was written on several ranks."""
    values = [float(v) for v in saved] if isinstance(saved, (list, tuple)) else [float(saved)]
    if not position:
        return [0.0] * size
    if not isinstance(saved, (list, tuple)):
        return [0.0] if size == 1 and values == [0.0] else [math.nan] * size
    if len(values) == size:
        return values
    return [math.nan] * size


class Trainer:
    """One training run of `model`, resumable from `state_dict()` at any step boundary.

    checkpoint(trainer, reason) is called (on every rank) every `every` epochs, when `seconds` have passed
    since the last one (decided at a step boundary), on SIGTERM/SIGUSR1 (then Preempted is raised on every
    rank; not at the end of the last epoch, where nothing is left to stop: `signalled` stays set for the caller)
    and at the end (reason "end"). should_stop(trainer), called on every rank after each epoch's σ, ends
    the run early when it returns True before the last epoch (the same on every rank; reason "stopped", no "end").
    After `run()`, `diverged` is None or a one-line reason, `stopped` whether should_stop ended it, and
    `last_finite` the state_dict() of the last epoch whose σ and loss were finite (kept when `checkpoint` is set; a
    resumed run starts from the state loaded: hpcflow.nn.checkpoint says what a resume part way into an epoch keeps).
    """

    def __init__(self, model, train_data, val_data, cfg: TrainConfig, *, comm=None, on_epoch=None, log=None,
                 on_step=None, checkpoint=None, every: int = 0, seconds: float = 0.0, should_stop=None):
        c = resolve(comm)
        # the ranks' arguments may differ: all refuse; then whole sets must be the same on every rank
        hooks = {"on_epoch": on_epoch, "on_step": on_step, "log": log, "should_stop": should_stop,
                 "checkpoint": checkpoint}
        arguments_together(lambda: checked_sets(model, train_data, val_data, cfg, hooks, c.Get_rank(), c.Get_size()),
                           comm=c, same=lambda: same_settings(model, cfg))
        shards = keep_shares({"train_data": train_data, "val_data": val_data}, comm=c)
        refuse_unweighted(shards, c)
        self.train_shard, self.val = shards["train_data"], shards["val_data"]
        self.comm = TimedComm(c) if c.Get_size() > 1 else c  # every collective of the run is timed
        self.model, self.cfg = model, cfg
        self.on_epoch, self.log, self.on_step, self.should_stop = on_epoch, log, on_step, should_stop
        self.checkpoint, self.every, self.seconds = checkpoint, int(every or 0), float(seconds or 0.0)
        self.opt = make_optimizer(model, cfg)
        self.reducer = GradientReducer(model, comm=self.comm, extra=3)  # loss, signal flag, timer flag
        self.manual = self.fast_step = None
        if cfg.manual_step:
            if cfg.loss in LOSSES and self.train_shard.data.gfs.shape[-1] == 9:
                self.manual = ManualGradient.build(model, self.reducer.params, self.reducer.views, loss=cfg.loss,
                                                   detach_kappa=cfg.detach_kappa)
            self.fast_step = optimizer_step(self.opt)
        self.gen = torch.Generator().manual_seed(int(cfg.seed))
        self.order_state = self.gen.get_state()
        self.epoch, self.step, self.pos = 0, 0, 0
        self.loss_sum, self.loss_count, self.partial_seconds, self.partial_comm = 0.0, 0, 0.0, 0.0
        self.partial_comm_ranks = [0.0] * self.comm.Get_size()  # each rank's partial_comm at the last mid-epoch save
        self.hist = History(ranks=self.comm.Get_size())
        self.diverged, self.last_finite, self.stopped = None, None, False
        self._loaded_start = None  # the checkpoint's epoch_start, when one part way into an epoch holds it
        self.signalled = False
        self._last_ckpt = time.monotonic()

    # ---- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and plain values only (torch.load(..., weights_only=True) reads it back); part way into an epoch
        (position > 0) with a last finite state kept, also that epoch's start ("epoch_start": model, optimizer), so
        that a resumed run that diverges in the epoch writes what the uninterrupted run writes."""
        st = self._state()
        start = self.last_finite
        if self.pos and start is not None and start["epoch"] == self.epoch and not start["position"]:
            st["epoch_start"] = {"model": start["model"], "optimizer": start["optimizer"]}
        return st

    def _state(self) -> dict:
        return {
            "epoch": self.epoch, "step": self.step, "position": self.pos,
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.opt.state_dict()),
            # the run draws only from this generator (MetricMLP seeds its own init): the process's global torch and
            # NumPy generators, seeded at random at import, are not part of the state
            "rng": {"order": (self.order_state if self.pos else self.gen.get_state()).clone()},
            "partial": {"loss_sum": self.loss_sum, "loss_count": self.loss_count, "seconds": self.partial_seconds,
                        "comm_seconds": list(self.partial_comm_ranks)},
            "history": {k: torch.from_numpy(v) for k, v in self.hist.arrays().items()},
        }

    def load_state_dict(self, st: dict) -> None:
        self._loaded_start = st.get("epoch_start")
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.epoch, self.step, self.pos = int(st["epoch"]), int(st["step"]), int(st["position"])
        self.gen.set_state(st["rng"]["order"])
        self.order_state = st["rng"]["order"].clone()  # a version 1-2 checkpoint's global states are not used
        p = st["partial"]
        self.loss_sum, self.loss_count = float(p["loss_sum"]), int(p["loss_count"])
        size = self.comm.Get_size()
        self.partial_comm_ranks = partial_comm_seconds(p.get("comm_seconds", 0.0), size, position=self.pos)
        self.partial_seconds = float(p["seconds"])
        self.partial_comm = self.partial_comm_ranks[self.comm.Get_rank()]
        for k, v in st["history"].items():
            setattr(self.hist, k, v.tolist())
        for k in COUNTS:  # a checkpoint written before the count was recorded: -1, not counted, for its epochs
            if k not in st["history"]:
                setattr(self.hist, k, [-1] * len(self.hist.sigma_val))
        # resumed at another R: per-rank rows unknown. Every row has the last leg's width (each such resume blanks
        # all rows), so none recorded at this R survived a leg between; analysis.histories.per_rank_note says so
        if any(len(row) != size for row in self.hist.comm_seconds):
            self.hist.comm_seconds = [[math.nan] * size for _ in self.hist.comm_seconds]

    # ---- the loop ---------------------------------------------------------------------------------------
    def _epoch_order(self):
        """This epoch's global permutation -> (this rank's rows in that order, row bounds of each batch)."""
        tr, bsz = self.train_shard, self.cfg.batch_size
        self.order_state = self.gen.get_state()
        perm = torch.randperm(tr.n, generator=self.gen, device="cpu")
        mine = (perm >= tr.lo) & (perm < tr.hi)
        local = perm[mine] - tr.lo
        n_batches = batch_count(tr.n, bsz)  # (a last batch of one row joins the one before)
        batch_of = torch.clamp(torch.nonzero(mine).squeeze(1) // bsz, max=n_batches - 1)
        per_batch = torch.bincount(batch_of, minlength=n_batches)
        bounds = [0] + torch.cumsum(per_batch, 0).tolist()
        return tr.data[local.to(tr.data.x.device)], bounds, n_batches

    def _record(self) -> None:
        self.hist.sigma_train.append(_evaluate(self.model, self.train_shard, self.comm, False)[0])
        sigma_val, not_pd = _evaluate(self.model, self.val, self.comm, True)
        self.hist.sigma_val.append(sigma_val)
        self.hist.val_not_positive_definite.append(not_pd)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch, self.model)
        if self.log is not None:
            self.log(f"epoch {self.epoch:4d}  sigma_train {self.hist.sigma_train[-1]:.5f}  "
                     f"sigma_val {self.hist.sigma_val[-1]:.5f}")

    def _finite_epoch(self) -> bool:
        h = self.hist
        bad = [f"{k} = {v[-1]}" for k, v in (("sigma_val", h.sigma_val), ("sigma_train", h.sigma_train),
                                             ("loss", h.loss)) if v and not math.isfinite(v[-1])]
        if bad:
            self.diverged = f"epoch {self.epoch}: {', '.join(bad)}"
        return not bad

    def _snapshot(self) -> None:
        """Keep the state of this (finite) epoch boundary, for a divergence later; only for checkpointed runs."""
        if self.checkpoint is not None:
            self.last_finite = self._state()

    def _resumed_snapshot(self) -> None:
        """The last finite state of a resumed run: the state loaded, or, part way into an epoch, that epoch's start
        where the checkpoint holds it (epoch_start: its network and optimiser; the counters, data order and
        histories are those of the state loaded, the unfinished epoch's partial sums zero)."""
        self._snapshot()
        start = self._loaded_start
        if self.last_finite is None or not self.pos or start is None:
            return
        self.last_finite.update(
            step=self.step - self.pos, position=0, model=start["model"], optimizer=start["optimizer"],
            partial={"loss_sum": 0.0, "loss_count": 0, "seconds": 0.0, "comm_seconds": [0.0] * self.comm.Get_size()})

    def _comm_seconds(self) -> float:
        return getattr(self.comm, "seconds", 0.0)

    def _timer_due(self) -> bool:
        return self.seconds > 0 and self.comm.Get_rank() == 0 and time.monotonic() - self._last_ckpt >= self.seconds

    def _stop_flags(self) -> tuple[bool, bool]:
        """(a stop signal reached any rank, rank 0's checkpoint timer is due): one Allreduce under MPI."""
        flags = np.array([self.signalled, self._timer_due()], dtype=np.int64)
        if self.comm.Get_size() > 1:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        return bool(flags[0]), bool(flags[1])

    def _save(self, reason: str) -> None:
        if self.checkpoint is not None:
            self.checkpoint(self, reason)
        self._last_ckpt = time.monotonic()

    def _handler(self, signum, frame):  # noqa: ARG002
        self.signalled = True

    def at_last_step(self) -> bool:
        """Whether the optimiser step just taken is the training's last (the last batch of its last epoch)."""
        return self.epoch == self.cfg.epochs - 1 and self.pos == batch_count(self.train_shard.n, self.cfg.batch_size)

    def run(self) -> History:
        if self.pos and self.epoch >= self.cfg.epochs:  # the network is part way into an epoch it would not finish
            raise ValueError(f"Trainer: the state loaded stopped {self.pos} batch{'es' * (self.pos != 1)} into epoch "
                             f"{self.epoch + 1}, but cfg.epochs = {self.cfg.epochs}; pass epochs >= {self.epoch + 1} "
                             "to finish that epoch")
        handlers = install(self._handler) if self.checkpoint is not None else {}
        self.bar = progress(total=self.cfg.epochs, initial=self.epoch, desc="training", unit="epoch", comm=self.comm)
        try:
            self._run()
            self.hist.diverged = self.diverged
        finally:
            self.bar.close()
            restore(handlers, stopping=self.signalled)  # a repeat of an honoured stop request is ignored
        return self.hist

    def _run(self) -> None:
        cfg, model = self.cfg, self.model
        starts = batch_starts(self.train_shard.n, cfg.batch_size)  # global positions: each batch's size
        total_steps = (len(starts) - 1) * cfg.epochs
        if not self.hist.sigma_val:
            self._record()
            if not self._finite_epoch():
                return
            self._snapshot()
        elif self.last_finite is None:  # resumed: the state loaded is finite (refused otherwise)
            self._resumed_snapshot()
        flags = self.reducer.extra
        while self.epoch < cfg.epochs:
            shuffled, bounds, n_batches = self._epoch_order()
            model.train()
            t0, c0 = time.perf_counter(), self._comm_seconds()
            for b in range(self.pos, n_batches):
                lr = learning_rate(cfg, self.step, self.epoch, total_steps)
                batch = shuffled[bounds[b]:bounds[b + 1]]
                if self.manual is not None:  # gradients written into the reducer's buffer
                    flags[0] = self.manual(batch, comm=self.comm)
                else:
                    self.reducer.zero()
                    loss = batch_loss(model, batch, cfg, comm=self.comm)
                    loss.backward()
                    flags[0] = loss.detach()
                flags[1] = float(self.signalled)
                flags[2] = float(self._timer_due())
                self.reducer.reduce()
                loss_b, stop, timer = flags.tolist()
                stop, timer = stop > 0, timer > 0
                if self.fast_step is not None:
                    self.fast_step(lr)
                else:
                    for group in self.opt.param_groups:
                        group["lr"] = lr
                    self.opt.step()
                self.step, self.pos = self.step + 1, b + 1
                size_b = starts[b + 1] - starts[b]
                self.loss_sum, self.loss_count = self.loss_sum + loss_b * size_b, self.loss_count + size_b
                if self.on_step is not None:
                    self.on_step(self)
                if not math.isfinite(loss_b):
                    self.diverged = f"epoch {self.epoch + 1}, step {self.step}: batch loss = {loss_b}"
                    return
                if (stop or timer) and self.pos < n_batches:
                    self.partial_seconds += time.perf_counter() - t0
                    self.partial_comm += self._comm_seconds() - c0
                    self.partial_comm_ranks = self.comm.allgather(self.partial_comm)  # rank 0 writes every rank's
                    self._save("signal" if stop else "seconds")
                    t0, c0 = time.perf_counter(), self._comm_seconds()
                    if stop:
                        raise Preempted(f"signal received: checkpoint written after epoch {self.epoch} + "
                                        f"{self.pos} batches; {RESUME_HINT}")
            self.hist.epoch_seconds.append(self.partial_seconds + time.perf_counter() - t0)
            self.hist.comm_seconds.append(self.comm.allgather(self.partial_comm + self._comm_seconds() - c0))
            self.hist.loss.append(self.loss_sum / max(self.loss_count, 1))
            self.epoch, self.pos = self.epoch + 1, 0
            self.bar.update(1)
            self.loss_sum, self.loss_count, self.partial_seconds, self.partial_comm = 0.0, 0, 0.0, 0.0
            self.partial_comm_ranks = [0.0] * self.comm.Get_size()
            model.eval()
            self._record()
            if cfg.check_replicas:
                check_replicas(model, comm=self.comm)
            if not self._finite_epoch():
                return
            self._snapshot()
            if self.should_stop is not None and self.should_stop(self) and self.epoch < cfg.epochs:
                self.stopped = True
                self._save("stopped")
                return
            stop, timer = self._stop_flags()
            stop = stop and self.epoch < cfg.epochs  # after the last epoch nothing is left to stop: "end" below
            if stop or (self.every and self.epoch % self.every == 0 and self.epoch < cfg.epochs) or timer:
                self._save("signal" if stop else "every")
                if stop:
                    raise Preempted(f"signal received: checkpoint written after epoch {self.epoch}; {RESUME_HINT}")
        self._save("end")


#: what `train`'s guard at R > 1 lets through to the caller untouched, as in one process: a Ctrl-C (mpiexec forwards it
#: to every rank), a stop request (`hpcflow.stop_signals.Stopped`, a KeyboardInterrupt), exits, a generator's close;
#: only an Exception ends the job
PASSED_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


def train(model, train_data, val_data, cfg: TrainConfig, *, on_epoch=None, log=None, comm=None,
          on_step=None, abort_on_error=True) -> History:
    """Train `model` for cfg.epochs epochs; `on_epoch(epoch, model)` runs at epoch 0 and after each epoch,
    `on_step(trainer)` after each optimiser step (on every rank).
    A σ or batch loss that is not finite ends the training there: the History's `diverged` says why (else None).

    Under `comm` (R > 1) every rank calls this with its Shard of the points (or the whole sets, of which it
    keeps its share) and a network and cfg of the same settings (`same_settings`; every rank refuses others); the
    history is global and the same on every rank.

    The sets are checked once, before any step, as kernel_flow checks its point sets (`checked_data`, O(N / R) per
    rank: each rank reads its own rows): MetricData fields of one real dtype with one row per point, x and gfs
    finite, gfs positive definite, omega2 > 0 and weights >= 0 with one > 0 over the ranks; a bad row is one
    ValueError naming the set, the field, the row and the fix, raised by every rank together.

    An exception raised during the training (a callback's, an error of the training itself): on one rank it ends
    the training there and propagates. At R > 1, with `abort_on_error` (the default), it ends the job: the raising
    rank prints its traceback to stderr, tagged with its rank, and the world is aborted
    (`hpcflow.parallel.comm.abort_on_error`; after up to a few seconds' wait for ranks that raise too, every rank
    ends with status 1), since the other ranks would wait for it in the training's next collective for ever.
    `abort_on_error=False` lets it propagate on the raising rank alone, for callers that make every rank raise
    together themselves. Arguments refused before the training (by every rank together) always propagate, and so do
    a KeyboardInterrupt (Ctrl-C, or a `Stopped` stop request), SystemExit and GeneratorExit (`PASSED_THROUGH`).
    """
    c = resolve(comm)
    arguments_together(lambda: api_bool("abort_on_error", abort_on_error), comm=c,
                       same=lambda: {"abort_on_error": bool(abort_on_error)})
    trainer = Trainer(model, train_data, val_data, cfg, comm=c, on_epoch=on_epoch, log=log, on_step=on_step)
    if not (abort_on_error and c.Get_size() > 1):
        return trainer.run()
    passed = None
    with ends_the_job_on_error(c):
        try:
            return trainer.run()
        except PASSED_THROUGH as exc:  # not the world's end: past the guard, untouched
            passed = exc
    raise passed
