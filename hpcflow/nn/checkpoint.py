"""Network files: the model (`model.pt` + `model.pt.json`) and the training checkpoint (`checkpoint.pt`).

Both are `torch.save` of dicts holding only tensors and plain values; loading uses `torch.load(...,
weights_only=True)`, which refuses pickled objects. Writers are atomic (hpcflow.atomic) and write on rank 0
of `comm` only. The architecture (MetricMLP.config) lives in `model.pt.json`.

Training checkpoint schema (`FORMAT`, version `VERSION`), written every [checkpoint].every epochs, every
[checkpoint].seconds, on SIGTERM/SIGUSR1, at the end of training and, once the outputs are written, again with
the run's final status:
  format, version      "hpcflow.nn_checkpoint", 4 (3: train.partial.comm_seconds is rank 0's seconds alone: still
                       resumed, the epoch it splits NaN in comm_seconds if begun or resumed on several ranks; 2: also
                       train.rng.torch and train.rng.numpy, the process's global generators, which no run draws
                       from: still resumed, those entries ignored; 1: no `legs` either: still resumed, its epochs
                       one leg of null ranks, wall_seconds and hpcflow_version)
  config               JSON of the validated job (resume refuses a change other than epochs / [checkpoint])
  status               "running" (periodic or signal checkpoint) | "trained" (training done; the width sweep,
                       kernel flow and outputs are still to come: --resume redoes them) | "finished" (the whole
                       run, outputs written) | "stopped" (a tune trial pruned) | "diverged" (outputs written: the
                       main network's last finite state, see below; or the whole training, where a width-sweep or
                       kernel-flow network diverged after it)
  ranks                ranks of the run that wrote it
  legs                 one entry per run (leg) that wrote this checkpoint, first to last: from_step, to_step (epochs
                       done at its start and at its last write, as summary.json's checkpoint_step), ranks,
                       wall_seconds (from its start to its last write), hpcflow_version, status (how it ended as
                       far as its last write says: "preempted", "finished", "stopped", "diverged"; "trained": it
                       was killed after training; "write_failed": it ended at a write the file system refused
                       (exit status 5), the checkpoint its last complete one; "running": killed without a signal,
                       or still running, or ended at a refused write that this record could not be written after
                       either (a full disk)), and with
                       the cosine schedule schedule_epochs ([training].epochs of the leg: the length of the cosine
                       its steps followed; a --resume that changes it makes the run neither length's schedule), and
                       threads (the leg's torch and BLAS threads per rank, rank 0's), blas_kernel (rank 0's BLAS
                       kernel, `hpcflow.provenance.blas_kernel`: OpenBLAS's core type, e.g. "SkylakeX"; null where no
                       library reports one), backend (rank 0's array backend, "numpy" or "cupy",
                       `hpcflow.provenance.array_backend`), git_commit (rank 0's commit of the hpcflow source tree,
                       `hpcflow.provenance.git_commit`; null where git cannot name it; a resume by another commit or
                       hpcflow_version than the last leg's says so in one line) (threads, blas_kernel, backend and
                       git_commit absent from legs written before they were recorded: a resume with other threads or
                       another kernel equals the uninterrupted run to rounding only)
  train.epoch          epochs done (= summary.json's checkpoint_step)
  train.step           optimiser steps done (the learning-rate schedule's position)
  train.position       batches done of epoch `epoch + 1` (0 at an epoch boundary)
  train.model          the network's state dict
  train.optimizer      the optimiser's state dict (Adam moments and step counts, param groups)
  train.epoch_start    only part way into an epoch (position > 0): model and optimizer as train.model and
                       train.optimizer at the start of epoch `epoch + 1`, the state a divergence in that epoch writes
                       (absent from checkpoints written before it was kept)
  train.rng.order      torch.Generator state of the data order at the start of epoch `epoch + 1` (the only random
                       stream of a training: MetricMLP draws its initialisation from its own seed)
  train.partial        loss_sum, loss_count, seconds of the unfinished epoch, and comm_seconds: a list of R values,
                       each rank's seconds in collectives so far in it (a resume at the same R gives each rank its
                       own; at another R, 1 -> R included, that epoch's comm_seconds are NaN)
  train.history        sigma_train, sigma_val (epoch + 1 values), loss, epoch_seconds (epoch values),
                       comm_seconds (epoch, R: each rank's seconds in collectives during the epoch; NaN for
                       epochs trained, wholly or in part, at another rank count before a resume),
                       val_not_positive_definite (epoch + 1 int64 values: validation points, all ranks, where the
                       network's metric is not positive definite; absent from checkpoints written before it was
                       recorded, whose epochs then read -1)
  ntk                  theta (epoch + 1, 9, 9, n, n) float64 and seconds (epoch + 1), when the NTK is tracked

Two runs of the same job at the same R write equal checkpoints but for the wall-clock entries `TIMINGS`. A resume
refuses a checkpoint holding a value no training writes (`check_train_state`: the schema's layout, a history or
ntk.seconds of another dtype than `DTYPES`, NaN or inf but in `MAY_BE_NAN`, a value outside its `RANGES`, `legs`
missing from a version 2 or later file, a leg's text no run writes: `hpcflow.provenance.leg_fault`).

Divergence after a resume: a run whose training diverges writes the state of its last finite epoch (status
"diverged"). A resumed run keeps, as that state, the state it loaded (train.position 0) or the start of the epoch
it loaded part way into (train.epoch_start with the counters, data order and histories loaded), so when it diverges
it writes the files of the uninterrupted run (nn.h5 but its timings, model.pt, the checkpoint's train entries but
the wall-clock ones, summary.json but its timings, legs and resumed entries). The exception: a checkpoint written
part way into an epoch without train.epoch_start (before it was kept) does not hold the epoch-E network that the
uninterrupted run writes on a divergence in epoch E + 1; a run resumed from it that diverges in that same epoch
writes the state it resumed from (finite, train.position > 0) as "diverged", with the uninterrupted run's
histories, NTK and summary (they end at epoch E either way) but not its model.pt, train.model, train.optimizer.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from hpcflow import __version__
from hpcflow.arguments import short_repr
from hpcflow.atomic import WriteDenied, atomic_file
from hpcflow.errors import InputFileError, OutputPathError, WriteFailed
from hpcflow.jobs.torch_file import crc_fault
from hpcflow.nn._torch import require_torch
from hpcflow.nn.files import CHECKPOINT
from hpcflow.nn.model import MetricMLP
from hpcflow.parallel.comm import rank
from hpcflow.provenance import LEG_TEXTS, leg_fault
from hpcflow.value_ranges import first_fault, shown

__all__ = ["CHECKPOINT", "FORMAT", "LEG_KEYS", "MAY_BE_NAN", "RANGES", "READABLE_VERSIONS", "RESTART", "TIMINGS",
           "VERSION", "WRITE_FAILED",
           "TrainingCheckpoint", "check_train_layout", "check_train_state", "earlier_legs", "load_checkpoint",
           "load_model", "save_checkpoint", "save_model"]

torch = require_torch()

FORMAT = "hpcflow.nn_checkpoint"
#: 2: `legs` added (version 1 checkpoints still resume); 3: train.rng.torch and train.rng.numpy dropped (version 2
#: checkpoints still resume: no run drew from those generators); 4: train.partial.comm_seconds one value per rank,
#: not rank 0's alone (version 3 checkpoints still resume: hpcflow.nn.train.partial_comm_seconds)
VERSION = 4
#: versions `load_checkpoint` reads
READABLE_VERSIONS = (1, 2, 3, 4)
#: the entries that differ between two runs of the same job (wall-clock seconds; "legs[]." of every leg)
TIMINGS = ("legs[].wall_seconds", "train.partial.seconds", "train.partial.comm_seconds",
           "train.history.epoch_seconds", "train.history.comm_seconds", "ntk.seconds")
#: keys of each entry of `legs` (those of the flow checkpoint's, hpcflow.checkpoint.LEG_KEYS, and `status`)
LEG_KEYS = ("from_step", "to_step", "ranks", "wall_seconds", "hpcflow_version", "status")


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
    with _denied_said(_config_path(path)), atomic_file(_config_path(path), "w") as fh:
        json.dump(model.config, fh, indent=2, sort_keys=True)
    with _denied_said(path), atomic_file(path) as fh:
        torch.save(model.state_dict(), fh)


#: how to get a model load_model reads
MODEL_FIX = "pass the model.pt of an 'hpcflow nn' run (or of save_model) with the model.pt.json written beside it"


def load_model(path) -> MetricMLP:
    """Rebuild the MetricMLP saved by `save_model` (weights loaded with weights_only=True); one InputFileError
    naming the file when model.pt.json is not a MetricMLP's config, model.pt does not hold that network's tensors,
    or an entry of model.pt fails its CRC-32 (`crc_fault`: a flipped bit would load as other, finite weights)."""
    from hpcflow.errors import UserError

    path = os.fspath(path)
    cfg_path = _config_path(path)
    if not os.path.isfile(path) or not os.path.isfile(cfg_path):
        raise InputFileError(f"{path} or {cfg_path} is missing; pass a checkpoint written by 'hpcflow nn'")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            config = json.load(fh)
        if not isinstance(config, dict):
            raise TypeError(f"a JSON {type(config).__name__}, not an object")
        model = MetricMLP(**config)
    except (OSError, TypeError, ValueError, UserError) as exc:  # a JSONDecodeError is a ValueError
        raise InputFileError(f"{cfg_path} is not the config of a MetricMLP ({' '.join(str(exc).split())}); "
                             f"{MODEL_FIX}") from None
    _refuse_changed(path, what="the model", fix="'hpcflow nn JOB.toml --out DIR --resume' of its finished run writes "
                    "it again from DIR/checkpoint.pt")
    state = _load(path)
    fault = _state_fault(state, model.state_dict())
    if fault is not None:
        raise InputFileError(f"{path} does not hold the network of {cfg_path}: {fault}; {MODEL_FIX}")
    model.load_state_dict(state)
    model.eval()
    return model


def _state_fault(state, want: dict) -> str | None:
    """Why `state` (a loaded model.pt) is not a state dict of the tensors `want`, in a few words, or None."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state dict"
    if state.get("format") == FORMAT:
        return "it is a training checkpoint (checkpoint.pt), not a model"
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        return f"tensors {missing} missing, {extra} not of the network"
    for k, ref in want.items():
        t = state[k]
        if not torch.is_tensor(t) or t.shape != ref.shape:
            got = f"of shape {tuple(t.shape)}" if torch.is_tensor(t) else f"a {type(t).__name__}"
            return f"{k} is {got}, the network's is of shape {tuple(ref.shape)}"
        if t.dtype != ref.dtype:  # loaded as it is, not converted to the dtype the network was saved in
            return f"{k} is {_layout(t)}, not of the network's dtype {str(ref.dtype).removeprefix('torch.')}"
    return None


def _load(path, *, damaged: str | None = None):
    """torch.load(path) of tensors and plain values only; InputFileError naming the file otherwise. `damaged` (what
    to do then) says of a file torch cannot read through (truncated, empty, not a torch file) that it is damaged: one
    of ours that a killed copy or a full disk cut short, not a file of other objects (UnpicklingError: the weights-only
    loader refused what it holds) or one this process may not open."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:  # the file is sound as far as anyone knows: this process may not open it
        raise InputFileError(f"{path} cannot be read ({exc.strerror or 'permission denied'}); give this user read "
                             f"access to it (chmod u+r {path}), then run again") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable / non-tensor file
        refused = type(exc).__name__ == "UnpicklingError"  # the weights-only loader's refusal of an object
        if damaged is not None and not refused and not isinstance(exc, IsADirectoryError):
            raise InputFileError(f"{path} cannot be read through ({type(exc).__name__}: truncated or not a torch "
                                 f"file); the checkpoint is damaged, {damaged}") from None
        raise InputFileError(f"{path} is not a tensor-only state dict ({type(exc).__name__}); "
                             "pass a file written by 'hpcflow nn'") from None


@contextmanager
def _denied_said(path: str):
    """A PermissionError of the write of `path` in the block (one `atomic_file` has not said as WriteDenied already)
    raised as WriteDenied naming it, its directory the one to make writable."""
    try:
        yield
    except WriteFailed:
        raise
    except PermissionError as exc:
        raise WriteDenied(exc.errno, exc.strerror or os.strerror(exc.errno), path) from exc


def save_checkpoint(path, state: dict, *, comm=None) -> None:
    """Write a training checkpoint (the schema above) atomically, on rank 0 only; WriteDenied where the directory
    refuses it."""
    if rank(comm) != 0:
        return
    path = os.fspath(path)
    with _denied_said(path), atomic_file(path) as fh:
        torch.save({"format": FORMAT, "version": VERSION, **state}, fh)


#: legs[].status of a leg that ended with a write the file system refused (exit status 5: disk full, quota, a file
#: size limit, permissions), the checkpoint its last complete one (`TrainingCheckpoint.write_failed`)
WRITE_FAILED = "write_failed"

#: what to do with a checkpoint that cannot be resumed
RESTART = "start the run again with --force (replaces it) or use a new --out"


def check_train_state(state: dict, path, *, batches: int, limits: dict | None = None) -> None:
    """Refuse (InputFileError naming the entry) a training checkpoint whose entries do not have the schema above:
    counters in range for `batches` batches per epoch (train.step = epoch * batches + position), histories as long
    as the epochs done, one partial comm_seconds per rank; NaN or inf where a training writes finite values; a value
    outside the range a training writes there (`RANGES`; `limits`: {name: (the job key, its value)} of the bounds
    "n_train" and "n_val", those bounds unchecked where not given): a negative Adam second moment, σ, loss, count
    or timing, a count of validation points other than -1 (not recorded) or 0..n_val. Such a value, given to the
    optimiser, diverged the resumed training at its first step and overwrote a finished run's outputs."""
    _entries_checked(_check_train_state, path, state, batches)
    for part in ("train", "ntk"):
        bad = _non_finite(state.get(part, {}), part)
        if bad is not None:
            raise InputFileError(f"{path}: entry {bad} holds a non-finite value (NaN or inf), where a training writes "
                                 f"only finite ones; the checkpoint is damaged, {RESTART}")
    _check_ranges(state, path, limits or {})


class Range(NamedTuple):
    """The values a training writes in one entry of its checkpoint (`RANGES`): >= lo, or `sentinel` (a value below lo
    that says "not recorded"); whole numbers where `whole`; at most the bound `hi` names (a key of
    `check_train_state`'s limits) where given. NaN is refused before (`_non_finite`, but for `MAY_BE_NAN`)."""

    what: str
    lo: float = 0.0
    whole: bool = False
    hi: str | None = None
    sentinel: float | None = None


#: The natural range of every number of a training checkpoint that a resume continues from or copies into its
#: outputs, as the trainer writes it (the schema above; docs/outputs.md): entry -> Range, "{}" where an optimiser
#: parameter's index or a leg's goes. Null legs values (a version 1 checkpoint's) are not bounded. A bound (`hi`) is
#: a job's key ([geometry] n_train, n_val), never another entry, so the order the entries are checked in is free.
RANGES = {
    **{f"train.history.{k}": Range(f"{what} (>= 0)") for k, what in (
        ("sigma_train", "σ of the train points"), ("sigma_val", "σ of the validation points"),
        ("loss", "an epoch's batch losses' mean weighted by their points"),
        ("epoch_seconds", "an epoch's wall seconds"),
        ("comm_seconds", "a rank's seconds in collectives in an epoch (or NaN: another rank count)"))},
    "train.history.val_not_positive_definite": Range("a count of validation points, 0 to [geometry].n_val (-1: an "
                                                     "epoch of a checkpoint written before it was counted)",
                                                     whole=True, hi="n_val", sentinel=-1),
    "train.partial.loss_sum": Range("the unfinished epoch's batch losses times their points (>= 0)"),
    "train.partial.loss_count": Range("the points of the unfinished epoch's batches, 0 to [geometry].n_train",
                                      whole=True, hi="n_train"),
    "train.partial.seconds": Range("the unfinished epoch's wall seconds (>= 0)"),
    "train.partial.comm_seconds": Range("each rank's seconds in collectives so far in the epoch (>= 0, or NaN)"),
    **{f"{part}.optimizer.state.{{}}.exp_avg_sq": Range("Adam's running mean of squared gradients (>= 0)")
       for part in ("train", "train.epoch_start")},
    "ntk.seconds": Range("the seconds of an epoch's NTK (>= 0)"),
    "legs[{}].from_step": Range("the epochs done when a leg started", whole=True),
    "legs[{}].to_step": Range("the epochs done at a leg's last write", whole=True),
    "legs[{}].ranks": Range("a leg's rank count (>= 1)", lo=1, whole=True),
    "legs[{}].wall_seconds": Range("a leg's wall seconds (>= 0)"),
    "legs[{}].threads": Range("a leg's threads per rank (>= 1)", lo=1, whole=True),
}


def _ranged(state: dict) -> list:
    """(RANGES key, entry name, its values) of every entry of `state` that `RANGES` bounds and it holds (entries
    not tensors or numbers where the schema has them are refused elsewhere)."""
    train, out = state["train"], []
    for group in ("history", "partial"):
        out += [(f"train.{group}.{k}", f"train.{group}.{k}", v) for k, v in train[group].items()
                if f"train.{group}.{k}" in RANGES]
    for part, where in ((train, "train"), (train.get("epoch_start"), "train.epoch_start")):
        opt = part.get("optimizer") if isinstance(part, dict) else None
        moments = opt.get("state") if isinstance(opt, dict) else None
        for pid, entries in moments.items() if isinstance(moments, dict) else ():
            if isinstance(entries, dict) and "exp_avg_sq" in entries:
                out.append((f"{where}.optimizer.state.{{}}.exp_avg_sq", f"{where}.optimizer.state.{pid}.exp_avg_sq",
                            entries["exp_avg_sq"]))
    ntk = state.get("ntk") or {}
    if "seconds" in ntk:
        out.append(("ntk.seconds", "ntk.seconds", ntk["seconds"]))
    for i, leg in enumerate(state.get("legs", [])):
        out += [(f"legs[{{}}].{k}", f"legs[{i}].{k}", v) for k, v in leg.items()
                if f"legs[{{}}].{k}" in RANGES and v is not None]
    return out


def _check_ranges(state: dict, path, limits: dict) -> None:
    """Refuse (InputFileError naming the entry, its first bad value and where, and what a training writes there) a
    value of `state` outside its `RANGES`."""
    for key, name, value in _ranged(state):
        rng = RANGES[key]
        try:
            raw = value.detach().cpu().numpy() if torch.is_tensor(value) else value
            complex_ = np.iscomplexobj(raw)
            v = None if complex_ else np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # not numbers: the schema's checks refuse it
        if complex_:  # (a cast to float64 would drop the imaginary part)
            raise InputFileError(f"{path}: entry {name} = {short_repr(value)} is not real, where a training writes "
                                 f"{rng.what}; the checkpoint is damaged, {RESTART}")
        fault = first_fault(v, lo=rng.lo, whole=rng.whole, sentinel=rng.sentinel,
                            hi=limits[rng.hi] if rng.hi is not None and rng.hi in limits else None)
        if fault is not None:  # (NaN, where allowed, fails no comparison)
            why, at = fault
            where = name + (f"[{', '.join(map(str, at))}]" if v.ndim else "")
            raise InputFileError(f"{path}: entry {where} = {shown(float(v[at]))} is {why}, where a training writes "
                                 f"{rng.what}; the checkpoint is damaged, {RESTART}")


def check_train_layout(state: dict, path, *, network, ntk_shape) -> None:
    """Refuse (InputFileError naming the entry) a checkpoint, already through `check_train_state`, whose tensors do
    not fit the job: train.model and the optimiser's per-parameter state with the names, shapes and dtypes of
    `network`'s parameters (the job's network, e.g. built on torch's meta device), ntk.theta of shape
    (epoch + 1, *ntk_shape) and ntk.seconds of epoch + 1 values (ntk_shape None: no NTK tracked). A tensor of
    another shape failed only after the points were sampled, or ran: fused Adam read past a short moment (SIGSEGV),
    a short theta went into nn.h5 beside a longer history."""
    _entries_checked(_check_layout, path, state, network, ntk_shape)


def _entries_checked(check, path, *args) -> None:
    """check(*args), its KeyError ... IndexError (naming an entry) as one InputFileError naming `path`."""
    try:
        check(*args)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InputFileError(f"{path}: entry {entry_named(exc)} is missing or malformed; the checkpoint is damaged, "
                             f"{RESTART}") from None


def _entry(table: dict, name: str, key: str):
    """table[key], where `table` is entry `name` of the checkpoint: a missing key is a KeyError naming the whole entry
    (train.rng.order, not 'order')."""
    if key not in table:
        raise KeyError(f"{name}.{key}")
    return table[key]


def entry_named(exc: BaseException) -> str:
    """The entry a check's exception names: a KeyError's key as written (train.rng, not 'rng'), else its message."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def _same_layout(name: str, t, ref) -> None:
    """ValueError naming entry `name` unless tensor `t` has the shape and dtype of `ref`."""
    if not torch.is_tensor(t):
        raise TypeError(f"{name} (not a tensor)")
    if t.shape != ref.shape or t.dtype != ref.dtype:
        raise ValueError(f"{name} ({_layout(t)}, where the job's network has {_layout(ref)})")


def _real_number(v) -> bool:
    """Whether `v` is one real number: an int or a float (no bool), or a real tensor of one element."""
    if torch.is_tensor(v):
        return v.numel() == 1 and not (v.is_complex() or v.dtype == torch.bool)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _layout(t) -> str:
    return f"{str(t.dtype).removeprefix('torch.')} of shape {tuple(t.shape)}"


def _check_layout(state: dict, network, ntk_shape) -> None:
    train = state["train"]
    _check_network_state(train, "train", network)
    if "epoch_start" in train:
        _check_network_state(train["epoch_start"], "train.epoch_start", network)
    if ntk_shape is None:
        return
    n = train["epoch"] + 1
    theta, seconds = state["ntk"]["theta"], state["ntk"]["seconds"]
    if not torch.is_tensor(theta) or tuple(theta.shape) != (n, *ntk_shape) or theta.dtype != torch.float64:
        got = _layout(theta) if torch.is_tensor(theta) else type(theta).__name__
        raise ValueError(f"ntk.theta ({got}, not float64 of shape {(n, *ntk_shape)}: epoch 0..{n - 1} of "
                         f"{ntk_shape[-1]} NTK points)")
    if not torch.is_tensor(seconds) or tuple(seconds.shape) != (n,):
        raise ValueError(f"ntk.seconds (not {n} values for {n - 1} epochs)")


def _check_network_state(part: dict, where: str, network) -> None:
    """ValueError naming the entry unless `part`'s model and optimizer (at `where`) fit `network`'s parameters."""
    want = network.state_dict()
    if sorted(part["model"]) != sorted(want):
        raise ValueError(f"{where}.model (tensors {sorted(part['model'])}, where the job's network has {sorted(want)})")
    for k, ref in want.items():
        _same_layout(f"{where}.model.{k}", part["model"][k], ref)
    params = list(network.parameters())
    opt = part["optimizer"]
    groups = opt.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               for g in groups):
        raise ValueError(f"{where}.optimizer.param_groups = {short_repr(groups)} (not a list of parameter groups)")
    if not isinstance(opt.get("state"), dict) or not all(isinstance(e, dict) for e in opt["state"].values()):
        raise ValueError(f"{where}.optimizer.state (not the moments of each parameter)")
    ids = [i for group in groups for i in group["params"]]
    if ids != list(range(len(params))):
        raise ValueError(f"{where}.optimizer.param_groups (parameters {ids}, not 0..{len(params) - 1})")
    for pid, entries in opt["state"].items():
        if pid not in ids:
            raise ValueError(f"{where}.optimizer.state.{pid} (no such parameter)")
        for k, v in entries.items():
            name = f"{where}.optimizer.state.{pid}.{k}"
            if k == "step":
                if not (torch.is_tensor(v) and _real_number(v) and float(v) >= 0):
                    raise ValueError(f"{name} (not one step count >= 0)")
            elif v is not None:
                _same_layout(name, v, params[pid])


#: entries that may hold NaN: the per-rank seconds of epochs trained, wholly or in part, at another rank count
MAY_BE_NAN = ("train.history.comm_seconds", "train.partial.comm_seconds")


def _non_finite(obj, name: str) -> str | None:
    """The dotted name of the first float (tensor or number) under `obj` that holds NaN or inf, else None (one pass
    over the tensors: the model, the optimiser's moments, the histories, the NTK)."""
    if name in MAY_BE_NAN:
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif torch.is_tensor(obj):
        finite = not (obj.is_floating_point() or obj.is_complex()) or bool(torch.isfinite(obj).all())
        return None if finite else name
    else:
        return None if not isinstance(obj, float) or math.isfinite(obj) else name
    return next((bad for k, v in items if (bad := _non_finite(v, f"{name}.{k}")) is not None), None)


#: the dtype of each history and of ntk.seconds (ntk.theta's is checked with its shape): a training writes float64 (the
#: counts int64) whatever the network's dtype (its own tensors, train.model and the optimiser's moments, are checked
#: against the job's network: `check_train_layout`)
DTYPES = {**{f"train.history.{k}": torch.float64 for k in ("sigma_train", "sigma_val", "loss", "epoch_seconds",
                                                            "comm_seconds")},
          "train.history.val_not_positive_definite": torch.int64, "ntk.seconds": torch.float64}

#: the values of a checkpoint's `status` (the schema above)
STATUSES = ("running", "trained", "finished", "stopped", "diverged")


def _check_train_state(state: dict, batches: int) -> None:
    if state.get("status") not in STATUSES:
        raise ValueError(f"status = {state.get('status')!r} (not one of {', '.join(STATUSES)})")
    ranks = state.get("ranks", 1)  # (absent from no version's checkpoints; a missing one is not refused here)
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks = {ranks!r} (not a count of ranks)")
    train = state["train"]
    if not isinstance(train, dict):
        raise TypeError("train")
    counts = {k: _entry(train, "train", k) for k in ("epoch", "step", "position")}
    for k, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"train.{k} = {v!r}")
    if counts["position"] >= batches:
        raise ValueError(f"train.position = {counts['position']} (the job has {batches} batches per epoch)")
    steps = counts["epoch"] * batches + counts["position"]  # the learning-rate schedule's position
    if counts["step"] != steps:
        raise ValueError(f"train.step = {counts['step']} (epoch {counts['epoch']} + {counts['position']} batches of "
                         f"{batches} make {steps} steps)")
    for k in ("model", "optimizer", "rng", "partial", "history"):
        if not isinstance(_entry(train, "train", k), dict):
            raise TypeError(f"train.{k}")
    start = train.get("epoch_start")  # (only part way into an epoch, and not in checkpoints written before it)
    if start is not None and not (counts["position"] and isinstance(start, dict)
                                  and all(isinstance(start.get(k), dict) for k in ("model", "optimizer"))):
        raise ValueError("train.epoch_start (not the model and optimizer of the epoch's start, part way into it)")
    if not torch.is_tensor(_entry(train["rng"], "train.rng", "order")):
        raise TypeError("train.rng.order")
    try:  # the data order's CPU generator takes it (its state has one size and dtype; resume sets it after sampling)
        torch.Generator().set_state(train["rng"]["order"])
    except (RuntimeError, TypeError):
        raise ValueError("train.rng.order (not a state of the data order's generator)") from None
    for k in ("loss_sum", "loss_count", "seconds"):
        v = _entry(train["partial"], "train.partial", k)
        if not _real_number(v):
            raise ValueError(f"train.partial.{k} = {short_repr(v)} (not a number)")
    comm = train["partial"].get("comm_seconds", 0.0)  # (versions 1-3: one number)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in
               (comm if isinstance(comm, list) and comm else [comm])):
        raise ValueError("train.partial.comm_seconds (neither seconds nor a list of seconds per rank)")
    if state.get("version") == VERSION and not (isinstance(comm, list) and len(comm) == ranks):
        got = f"{len(comm)} values" if isinstance(comm, list) else "one number"
        raise ValueError(f"train.partial.comm_seconds ({got}, not one per rank of ranks = {ranks})")
    epoch, hist = counts["epoch"], train["history"]
    for k, n in (("sigma_train", epoch + 1), ("sigma_val", epoch + 1), ("loss", epoch), ("epoch_seconds", epoch),
                 ("comm_seconds", epoch)):
        dims = (1, 2) if k == "comm_seconds" else (1,)  # (comm_seconds: (epoch, R), each rank its column)
        if not torch.is_tensor(_entry(hist, "train.history", k)) or hist[k].dim() not in dims or len(hist[k]) != n:
            raise ValueError(f"train.history.{k} (not {n} values for {epoch} epochs)")
        if k == "comm_seconds" and hist[k].dim() == 2 and hist[k].shape[1] != ranks:  # (E, R)
            raise ValueError(f"train.history.comm_seconds ({hist[k].shape[1]} columns, not one per rank of ranks = "
                             f"{ranks})")
    counts = hist.get("val_not_positive_definite")  # (absent from checkpoints written before it was recorded)
    if counts is not None and (not torch.is_tensor(counts) or counts.dim() != 1 or len(counts) != epoch + 1):
        raise ValueError(f"train.history.val_not_positive_definite (not {epoch + 1} values for {epoch} epochs)")
    if not isinstance(state.get("ntk", {}), dict):
        raise TypeError("ntk")
    held = {f"train.history.{k}": v for k, v in hist.items()}
    held["ntk.seconds"] = (state.get("ntk") or {}).get("seconds")
    for name, want in DTYPES.items():  # a float32 history was resumed to outputs that were not the run's
        if torch.is_tensor(held.get(name)) and held[name].dtype != want:
            raise ValueError(f"{name} ({_layout(held[name])}, where a training writes "
                             f"{str(want).removeprefix('torch.')})")
    version = state.get("version")
    if "legs" not in state and not (isinstance(version, int) and version == 1):  # (only version 1 lacks it)
        raise KeyError("legs")
    legs = state.get("legs", [])
    if not isinstance(legs, list) or not all(isinstance(g, dict) and set(LEG_KEYS) <= set(g) for g in legs):
        raise ValueError(f"legs (not a list of {{{', '.join(LEG_KEYS)}}})")
    numbers = [key.split(".", 1)[1] for key in RANGES if key.startswith("legs[{}].")]
    for i, g in enumerate(legs):
        fault = leg_fault(g)
        if fault is not None:
            bad, why = fault
            raise ValueError(f"legs[{i}].{bad} = {short_repr(g[bad])} ({why}: {LEG_TEXTS[bad]})")
        bad = next((k for k in numbers if g.get(k) is not None and not _real_number(g[k])), None)
        if bad is not None:  # (null: not recorded, a version 1 checkpoint's)
            raise ValueError(f"legs[{i}].{bad} = {short_repr(g[bad])} (not a number)")


def load_checkpoint(path) -> dict:
    """Read a training checkpoint (weights_only=True); InputFileError naming the file if it is not one or an entry of
    it fails its CRC-32 (`crc_fault`), or naming the folder of a killed --force run's set-aside files where the file
    is missing beside one."""
    from hpcflow.jobs.output import refuse_no_checkpoint

    path = os.fspath(path)
    refuse_no_checkpoint(os.path.dirname(path), os.path.basename(path), command="hpcflow nn")
    _refuse_changed(path, what="the checkpoint", fix=RESTART)
    state = _load(path, damaged=RESTART)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputFileError(f"{path} is not an hpcflow network checkpoint (format {FORMAT}); run without --resume")
    version = state.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version in READABLE_VERSIONS):
        raise InputFileError(f"{path} is a network checkpoint of version {short_repr(version)}, which this hpcflow "
                             f"({__version__}) does not read (versions {READABLE_VERSIONS}); resume it with the "
                             f"hpcflow that wrote it, or {RESTART}")
    if "config" in state and not isinstance(state["config"], str):  # (its JSON is read by `job.check_same_job`)
        raise InputFileError(f"{path}: entry config = {short_repr(state['config'])} is not a string (the JSON of the "
                             f"job); the checkpoint is damaged, {RESTART}")
    return state


def _refuse_changed(path: str, *, what: str, fix: str) -> None:
    """InputFileError naming `path` and its entry (`what` is damaged, then `fix`) when an entry fails its CRC-32."""
    changed = crc_fault(path)
    if changed is not None:
        raise InputFileError(f"{path}: its entry {changed} fails its CRC-32 check (bytes changed since it was written: "
                             f"a disk or copy error); {what} is damaged, {fix}")


def earlier_legs(state: dict | None) -> list:
    """The legs before a run that continues checkpoint `state` ([] for a new run); a version 1 checkpoint's epochs
    become one leg whose ranks, wall_seconds and hpcflow_version are unknown (null)."""
    if state is None:
        return []
    if "legs" in state:
        return [dict(g) for g in state["legs"]]
    return [{"from_step": 0, "to_step": int(state["train"]["epoch"]), "ranks": None, "wall_seconds": None,
             "hpcflow_version": None, "status": str(state.get("status"))}]


class TrainingCheckpoint:
    """DIR/checkpoint.pt of one run (leg): every write carries the earlier legs and this one, timed from `started`
    (a time.perf_counter() value) to the write. Collective: call on every rank (rank 0 writes); `legs` is the
    record as last written, on every rank. `job_text` (the saved job) goes to DIR/job.toml right after this run's
    first write, so a run killed without a signal still says which job and --set values its checkpoint continues.
    `schedule_epochs` (the cosine schedule's length, [training].epochs) and `threads` (rank 0's torch and BLAS threads)
    go into this leg's entry when given, and its BLAS kernel (`hpcflow.provenance.blas_kernel`), array backend
    (`hpcflow.provenance.array_backend`) and the commit of its hpcflow (`hpcflow.provenance.git_commit`, null outside
    a git checkout) always (rank 0's are written)."""

    def __init__(self, path, resume: dict | None = None, *, started: float, comm=None, job_text: str | None = None,
                 schedule_epochs: int | None = None, threads: int | None = None):
        from hpcflow.parallel.comm import resolve
        from hpcflow.provenance import array_backend, blas_kernel, git_commit

        self.path, self.comm, self.started = os.fspath(path), resolve(comm), started
        self.schedule_epochs = schedule_epochs  # the cosine schedule's length of this leg (None: not cosine)
        self.threads = threads  # threads per rank of this leg (None: not recorded)
        self.blas_kernel = blas_kernel()  # this leg's BLAS kernel (rank 0's is written)
        self.backend = array_backend()  # this leg's array backend, numpy or cupy (rank 0's is written)
        self.git_commit = git_commit() if self.comm.Get_rank() == 0 else None  # this leg's commit (rank 0's written)
        self.job_text = job_text
        self.first = 0 if resume is None else int(resume["train"]["epoch"])
        self.legs = earlier_legs(resume)
        self._earlier = len(self.legs)
        self.epoch = None  # epochs done at the last write (None: nothing written by this leg)

    def _legs_at(self, epoch: int, ended: str) -> list:
        mine = {"from_step": self.first, "to_step": int(epoch), "ranks": self.comm.Get_size(),
                "wall_seconds": time.perf_counter() - self.started, "hpcflow_version": __version__,
                "status": ended}
        if self.schedule_epochs is not None:
            mine["schedule_epochs"] = int(self.schedule_epochs)
        if self.threads is not None:
            mine["threads"] = int(self.threads)
        mine["blas_kernel"] = self.blas_kernel
        mine["backend"] = self.backend
        mine["git_commit"] = self.git_commit
        return self.legs[:self._earlier] + [mine]

    def save(self, epoch: int, state, *, status: str, ended: str | None = None) -> None:
        """Write `state` (config, ranks, train, ntk: a dict on rank 0, else unused) with `status`; this leg's entry
        says `ended` (default: `status`)."""
        legs = self._legs_at(epoch, status if ended is None else ended)
        if rank(self.comm) == 0:
            save_checkpoint(self.path, {**state, "status": status, "legs": legs}, comm=self.comm)
        self.legs, self.epoch = legs, int(epoch)  # as written: a refused write leaves the file, and these, as they were
        if self.job_text is not None:  # this run's first checkpoint is in place: the job it continues beside it
            from hpcflow.jobs.output import write_text

            write_text(os.path.join(os.path.dirname(self.path), "job.toml"), self.job_text, comm=self.comm)
            self.job_text = None

    def write_failed(self) -> bool:
        """After a write the file system refused (WriteFailed, exit status 5) on this rank: rewrite the last
        checkpoint as it is, this leg ending as WRITE_FAILED (`restamp`), so that its legs say how the leg ended, not
        "running" or "trained" (killed). True where written; False where this leg has written none, where this is not
        rank 0 (which alone writes: no collective is entered, the other ranks are ended by the failure) or where that
        write is refused too (a full disk: the leg then keeps the status of its last write, as after a SIGKILL)."""
        if self.epoch is None or rank(self.comm) != 0:
            return False
        try:
            self.restamp(ended=WRITE_FAILED)
        except (OSError, InputFileError):  # (WriteFailed is an OSError) not written either: the file stays whole
            return False
        return True

    def restamp(self, *, status: str | None = None, ended: str) -> None:
        """Rewrite the last checkpoint as it is (the training state read back from the file) with this leg timed
        to now, ending as `ended`, and `status` when given; nothing when this leg has not written one."""
        if self.epoch is None:
            return
        state = _load(self.path) if rank(self.comm) == 0 else None
        keep = state["status"] if state is not None else None
        self.save(self.epoch, state, status=keep if status is None else status, ended=ended)
