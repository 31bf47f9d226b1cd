"""Training loop: Adam (or SGD) on mini-batches of the σ / ultra-local loss, validation σ every epoch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.nn._torch import require_torch
from hpcflow.nn.fused_loss import fused_metric_loss
from hpcflow.nn.loss import metric_loss

torch = require_torch()

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("exponential", "cosine")


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 1000
    lr: float = 1e-3
    loss: str = "sigma"
    detach_kappa: bool = False  # see hpcflow.nn.loss: κ from the batch, differentiated
    optimizer: str = "adam"
    lr_decay: float = 1.0  # learning rate multiplied by this after every epoch (exponential schedule)
    lr_schedule: str = "exponential"  # or "cosine": lr_min + (lr - lr_min)(1 + cos(π s/S))/2 over all S steps
    lr_min: float = 0.0  # cosine schedule's final learning rate
    seed: int = 0


@dataclass
class History:
    """Per-epoch record; index 0 is before training (the initial network)."""

    sigma_train: list = field(default_factory=list)  # (epochs+1,) σ on all train points
    sigma_val: list = field(default_factory=list)  # (epochs+1,) σ on the held-out points
    loss: list = field(default_factory=list)  # (epochs,) mean batch loss
    epoch_seconds: list = field(default_factory=list)  # (epochs,) training time only

    def arrays(self) -> dict:
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.__dict__.items()}


@torch.no_grad()
def predict(model, data, *, chunk: int = 65536):
    """Packed metrics g (N, m²) of the model on `data`, evaluated in chunks."""
    return torch.cat([model(data.x[s:s + chunk], data.gfs[s:s + chunk]) for s in range(0, len(data), chunk)])


@torch.no_grad()
def evaluate_sigma(model, data) -> float:
    """σ measure (eq. B.11) of the model's metric on all points of `data` (κ from these points)."""
    return float(metric_loss(predict(model, data), data.omega2, data.weights, loss="sigma"))


def make_optimizer(model, cfg: TrainConfig):
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer = {cfg.optimizer!r} is not one of {OPTIMIZERS}; use 'adam' or 'sgd'")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    try:  # the fused kernel: one call per step instead of ~10 small ops per parameter tensor (same update)
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):  # a torch or device without fused Adam
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def batch_loss(model, batch, cfg: TrainConfig):
    """Training loss of one batch; 3x3 metrics take the closed-form backward of hpcflow.nn.fused_loss."""
    if batch.gfs.shape[-1] == 9:
        return fused_metric_loss(model.raw(batch.x), batch.gfs, batch.omega2, batch.weights, kind=model.kind,
                                 loss=cfg.loss, detach_kappa=cfg.detach_kappa)
    return metric_loss(model(batch.x, batch.gfs), batch.omega2, batch.weights, loss=cfg.loss,
                       detach_kappa=cfg.detach_kappa)


def learning_rate(cfg: TrainConfig, step: int, epoch: int, total_steps: int) -> float:
    """Learning rate of optimiser step `step` (0-based) in epoch `epoch` (0-based) of a `total_steps` run."""
    if cfg.lr_schedule == "exponential":
        return cfg.lr * cfg.lr_decay ** epoch
    if cfg.lr_schedule == "cosine":
        frac = step / max(total_steps - 1, 1)
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * frac))
    raise ConfigError(f"lr_schedule = {cfg.lr_schedule!r} is not one of {SCHEDULES}; use 'exponential' or 'cosine'")


def train(model, train_data, val_data, cfg: TrainConfig, *, on_epoch=None, log=None) -> History:
    """Train `model` for cfg.epochs epochs; `on_epoch(epoch, model)` runs at epoch 0 and after each epoch."""
    gen = torch.Generator().manual_seed(int(cfg.seed))
    opt = make_optimizer(model, cfg)
    learning_rate(cfg, 0, 0, 1)  # validate the schedule before any work
    steps_per_epoch = -(-len(train_data) // cfg.batch_size)
    total_steps, step = steps_per_epoch * cfg.epochs, 0
    hist = History()

    def record(epoch):
        hist.sigma_train.append(evaluate_sigma(model, train_data))
        hist.sigma_val.append(evaluate_sigma(model, val_data))
        if on_epoch is not None:
            on_epoch(epoch, model)
        if log is not None:
            log(f"epoch {epoch:4d}  sigma_train {hist.sigma_train[-1]:.5f}  sigma_val {hist.sigma_val[-1]:.5f}")

    record(0)
    for epoch in range(1, cfg.epochs + 1):
        t0, total, count = time.perf_counter(), 0.0, 0
        model.train()
        for batch in train_data.batches(cfg.batch_size, gen):
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, epoch - 1, total_steps)
            step += 1
            opt.zero_grad(set_to_none=True)
            loss = batch_loss(model, batch, cfg)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        hist.epoch_seconds.append(time.perf_counter() - t0)
        hist.loss.append(total / count)
        model.eval()
        record(epoch)
    return hist
