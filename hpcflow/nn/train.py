"""Training loop: Adam (or SGD) on mini-batches of the σ / ultra-local loss, validation σ every epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.nn._torch import require_torch
from hpcflow.nn.loss import metric_loss

torch = require_torch()

OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 1000
    lr: float = 1e-3
    loss: str = "sigma"
    detach_kappa: bool = False  # see hpcflow.nn.loss: κ from the batch, differentiated
    optimizer: str = "adam"
    lr_decay: float = 1.0  # learning rate multiplied by this after every epoch (exponential schedule)
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
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    return cls(model.parameters(), lr=cfg.lr)


def train(model, train_data, val_data, cfg: TrainConfig, *, on_epoch=None, log=None) -> History:
    """Train `model` for cfg.epochs epochs; `on_epoch(epoch, model)` runs at epoch 0 and after each epoch."""
    gen = torch.Generator().manual_seed(int(cfg.seed))
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=float(cfg.lr_decay))
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
            opt.zero_grad(set_to_none=True)
            loss = metric_loss(model(batch.x, batch.gfs), batch.omega2, batch.weights, loss=cfg.loss,
                               detach_kappa=cfg.detach_kappa)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        sched.step()
        hist.epoch_seconds.append(time.perf_counter() - t0)
        hist.loss.append(total / count)
        model.eval()
        record(epoch)
    return hist
