"""Network files: the model (`model.pt` + `model.pt.json`) and the training checkpoint (`checkpoint.pt`).

Both are `torch.save` of dicts holding only tensors and plain values; loading uses `torch.load(...,
weights_only=True)`, which refuses pickled objects. Writers are atomic (hpcflow.atomic) and write on rank 0
of `comm` only. The architecture (MetricMLP.config) lives in `model.pt.json`.

Training checkpoint schema (`FORMAT`, version `VERSION`), written every [checkpoint].every epochs, every
[checkpoint].seconds, on SIGTERM/SIGUSR1 and at the end:
  format, version      "hpcflow.nn_checkpoint", 1
  config               JSON of the validated job (resume refuses a change other than epochs / [checkpoint])
  status               "running" (periodic or signal checkpoint) | "finished" (training done; the width sweep,
                       kernel flow and outputs follow: the run is complete when summary.json says "finished")
                       | "stopped" | "diverged"
  ranks                ranks of the run that wrote it
  train.epoch          epochs done (= summary.json's checkpoint_step)
  train.step           optimiser steps done (the learning-rate schedule's position)
  train.position       batches done of epoch `epoch + 1` (0 at an epoch boundary)
  train.model          the network's state dict
  train.optimizer      the optimiser's state dict (Adam moments and step counts, param groups)
  train.rng.order      torch.Generator state of the data order at the start of epoch `epoch + 1`
  train.rng.torch      torch's global RNG state; train.rng.numpy: NumPy's legacy global MT19937 state
                       (keys int64, pos, has_gauss, cached_gaussian)
  train.partial        loss_sum, loss_count, seconds, comm_seconds of the unfinished epoch
  train.history        sigma_train, sigma_val (epoch + 1 values), loss, epoch_seconds (epoch values),
                       comm_seconds (epoch, R: each rank's seconds in collectives during the epoch; NaN for
                       epochs trained at another rank count before a resume)
  ntk                  theta (epoch + 1, 9, 9, n, n) float64 and seconds (epoch + 1), when the NTK is tracked
"""

from __future__ import annotations

import json
import os

from hpcflow.atomic import atomic_file
from hpcflow.errors import InputFileError, OutputPathError
from hpcflow.nn._torch import require_torch
from hpcflow.nn.model import MetricMLP
from hpcflow.parallel.comm import rank

torch = require_torch()

FORMAT = "hpcflow.nn_checkpoint"
VERSION = 1
#: the training checkpoint's name in a run directory
CHECKPOINT = "checkpoint.pt"


def _config_path(path: str) -> str:
    return path + ".json"


def save_model(path, model, *, force: bool = False, comm=None) -> None:
    """Write model.state_dict() to `path` and its config to `path`.json atomically (rank 0 only); no overwrite
    unless force."""
    path = os.fspath(path)
    for p in (path, _config_path(path)):
        if os.path.exists(p) and not force:
            raise OutputPathError(f"{p} exists; choose another path or pass --force to overwrite it")
    if rank(comm) != 0:
        return
    with atomic_file(_config_path(path), "w") as fh:
        json.dump(model.config, fh, indent=2, sort_keys=True)
    with atomic_file(path) as fh:
        torch.save(model.state_dict(), fh)


def load_model(path) -> MetricMLP:
    """Rebuild the MetricMLP saved by `save_model` (weights loaded with weights_only=True)."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not os.path.isfile(_config_path(path)):
        raise InputFileError(f"{path} or {_config_path(path)} is missing; pass a checkpoint written by 'hpcflow nn'")
    with open(_config_path(path), encoding="utf-8") as fh:
        config = json.load(fh)
    state = _load(path)
    model = MetricMLP(**config)
    model.load_state_dict(state)
    model.eval()
    return model


def _load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable / non-tensor file
        raise InputFileError(f"{path} is not a tensor-only state dict ({type(exc).__name__}); "
                             "pass a file written by 'hpcflow nn'") from None


def save_checkpoint(path, state: dict, *, comm=None) -> None:
    """Write a training checkpoint (the schema above) atomically, on rank 0 only."""
    if rank(comm) != 0:
        return
    with atomic_file(os.fspath(path)) as fh:
        torch.save({"format": FORMAT, "version": VERSION, **state}, fh)


#: what to do with a checkpoint that cannot be resumed
RESTART = "start the run again with --force (replaces it) or use a new --out"


def check_train_state(state: dict, path, *, batches: int) -> None:
    """Refuse (InputFileError naming the entry) a training checkpoint whose entries do not have the schema above:
    counters in range for `batches` batches per epoch, histories as long as the epochs done."""
    try:
        _check_train_state(state, batches)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InputFileError(f"{path}: entry {exc} is missing or malformed; the checkpoint is damaged, "
                             f"{RESTART}") from None


def _check_train_state(state: dict, batches: int) -> None:
    train = state["train"]
    if not isinstance(train, dict):
        raise TypeError("train")
    counts = {k: train[k] for k in ("epoch", "step", "position")}
    for k, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"train.{k} = {v!r}")
    if counts["position"] >= batches:
        raise ValueError(f"train.position = {counts['position']} (the job has {batches} batches per epoch)")
    for k in ("model", "optimizer", "rng", "partial", "history"):
        if not isinstance(train[k], dict):
            raise TypeError(f"train.{k}")
    for k in ("order", "torch"):
        if not torch.is_tensor(train["rng"][k]):
            raise TypeError(f"train.rng.{k}")
    train["rng"]["numpy"]  # present (KeyError otherwise)
    for k in ("loss_sum", "loss_count", "seconds"):
        float(train["partial"][k])
    epoch, hist = counts["epoch"], train["history"]
    for k, n in (("sigma_train", epoch + 1), ("sigma_val", epoch + 1), ("loss", epoch), ("epoch_seconds", epoch),
                 ("comm_seconds", epoch)):
        if not torch.is_tensor(hist[k]) or len(hist[k]) != n:
            raise ValueError(f"train.history.{k} (not {n} values for {epoch} epochs)")
    if not isinstance(state.get("ntk", {}), dict):
        raise TypeError("ntk")


def load_checkpoint(path) -> dict:
    """Read a training checkpoint (weights_only=True); InputFileError naming the file if it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(f"{path} not found: --resume needs the directory of an earlier 'hpcflow nn' run; "
                             "run without --resume")
    state = _load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        raise InputFileError(f"{path} is not an hpcflow network checkpoint (format {FORMAT} v{VERSION}); "
                             "run without --resume")
    return state
