"""Job kind "nn" (`hpcflow nn JOB.toml --out DIR [--resume]`): train a metric network, data parallel over the
MPI ranks, track its metric-NTK (Fig. 4), optionally a width sweep and the kernel flow with the epoch-0 NTK.
Writes DIR/checkpoint.pt (hpcflow.nn.checkpoint: status "trained" at the end of training, the run's final status
once the outputs are written; `legs`: one entry per run), DIR/nn.h5, DIR/model.pt(.json) and DIR/summary.json last
(status "finished" | "diverged" | "preempted", checkpoint_step = epochs done, legs, wall_seconds_total), all on
rank 0.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import sys
import time
from contextlib import contextmanager

import numpy as np

from hpcflow.errors import ConfigError, InputFileError
from hpcflow.experiments.common import enough_points, finish  # enough_points: σ (eq. B.11) of one point is 0
from hpcflow.jobs.schema import (JOB_SECTION, MANIFOLD_FIELDS, MAX_BATCHES_FIELD, MAX_DIM, MAX_STEPS, MAX_THREADS,
                                 SEED_MAX, Field, batches_said, chart_pair, named_keys, refuse_inapplicable, shown,
                                 without)
from hpcflow.jobs.schema import with_defaults as schema_defaults
from hpcflow.jobs.toml_out import set_arg
from hpcflow.nn.h5schema import SCHEMA_VERSION as NN_H5_SCHEMA_VERSION
from hpcflow.nn.h5schema import fault as nn_h5_fault
from hpcflow.nn.rates import (LR_MAX, LR_MIN, RATE_FIELDS, UNUSED_BY, other_schedule, schedule_fault, sweep_fault,
                              unused_rate)

LOG_PREFIX = "hpcflow nn:"
#: below this many rows per rank and step, a step's fixed costs (~0.1-0.3 ms, two collectives) outweigh the
#: halved rows: 2 ranks ran the paper's batch of 64 at 0.6x one process, and batch 768 at 1.0-1.3x
#: (BENCHMARKS.md, "Finite networks under MPI")
FEW_ROWS_PER_RANK = 256


def few_rows_note(batch: int, ranks: int) -> str | None:
    """The note for a global batch of `batch` rows split over `ranks` ranks into fewer than FEW_ROWS_PER_RANK rows
    per rank and step (their mean: a rank's rows of a batch are its shard's), or None (one rank, or enough rows)."""
    if ranks <= 1 or batch / ranks >= FEW_ROWS_PER_RANK:
        return None
    rows = f"{batch / ranks:.3g}"
    return (f"batch_size = {batch} over {ranks} ranks is {rows} row{'' if rows == '1' else 's'} per rank "
            f"and step; below {FEW_ROWS_PER_RANK} a step's fixed costs dominate and ranks barely speed training up "
            "(BENCHMARKS.md); a larger batch, or one process per job (hpcflow tune --array), uses the cores better")


def _chart(v):
    return None if v == [] or chart_pair(v) is None else "must be [] (all charts) or [I, J] with I != J, both >= 0"


def _distinct(v):
    twice = sorted({w for w in v if v.count(w) > 1})
    return None if not twice else (f"repeats width {', '.join(map(str, twice))} (the same network would train twice); "
                                   "list each width once")


#: widest layer accepted (a 3x2^20 MLP has ~2e12 parameters; memory is checked by hpcflow.resources)
MAX_WIDTH = 2**20

SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {
        **MANIFOLD_FIELDS,
        "chart": Field(list, [], items=int, check=_chart, lo=0, hi=MAX_DIM + 1,
                       help="[] = points in all charts, or one chart [I, J]"),
        "max_batches": MAX_BATCHES_FIELD,
        "n_train": Field(int, 100_000, lo=0, check=enough_points, help="train points"),
        "n_val": Field(int, 10_000, lo=0, check=enough_points, help="held-out validation points (seed + 1)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed of the train points"),
    },
    "model": {
        "kind": Field(str, "multiplicative", choices=("multiplicative", "additive"),
                      help="g = g_FS + g_FS ⊙ NN(x) or g = g_FS + NN(x)"),
        "depth": Field(int, 3, lo=1, hi=1000, help="hidden layers"),
        "width": Field(int, 64, lo=1, hi=MAX_WIDTH, help="units per hidden layer"),
        "activation": Field(str, "relu", choices=("relu", "gelu")),
        "dtype": Field(str, "float64", choices=("float64", "float32")),
        "features": Field(str, "reim", choices=("reim", "reim_abs2"),
                          help="first-layer inputs: (Re z, Im z) (the paper's), or with |z_k|^2 appended"),
        "init": Field(str, "torch", choices=("torch", "he"),
                      help="hidden layers: PyTorch's default, or He (N(0, 2/fan_in), zero bias)"),
        "output_scale": Field(float, 0.1, lo=0, lo_open=True, hi=1e6,
                              help="last-layer init times this (1 = PyTorch default; < 1 starts near g_FS)"),
    },
    "training": {
        "epochs": Field(int, 50, lo=0, hi=MAX_STEPS),
        "batch_size": Field(int, 1000, lo=2, help="global batch (>= 2: κ is the batch's mean of η, so one point's "
                                                  "loss is 0; so a last batch of one point joins the one before)"),
        **RATE_FIELDS,
        "optimizer": Field(str, "adam", choices=("adam", "sgd")),
        "loss": Field(str, "sigma", choices=("sigma", "ultralocal"), help="eq. B.11 or eq. B.14"),
        "detach_kappa": Field(bool, False, help="treat the batch κ as a constant in the network's gradient "
                                                "([kernel_flow] differentiates κ all the same)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="initialisation and batch-order seed"),
        "threads": Field(int, 0, lo=0, hi=MAX_THREADS, help="torch and BLAS threads of the training and the NTK's "
                         "spectra (0 = the rank's CPUs)"),
        "device": Field(str, "auto", choices=("auto", "cpu", "cuda"), help="auto = cuda when torch sees a GPU"),
        "check_replicas": Field(bool, False, help="under MPI: compare the ranks' parameter checksums every epoch"),
    },
    "ntk": {
        "enabled": Field(bool, True, help="track the empirical metric-NTK every epoch"),
        "n_train_points": Field(int, 10, lo=1, hi=10_000),
        "n_test_points": Field(int, 10, lo=1, hi=10_000),
        "method": Field(str, "auto", choices=("auto", "jacobian", "layerwise")),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed choosing the fixed NTK points"),
    },
    "width_sweep": {
        "widths": Field(list, [], items=int, lo=1, hi=MAX_WIDTH, check=_distinct,
                        help="hidden widths to train ([] = no sweep)"),
        "lr": Field(float, None, lo=LR_MIN, hi=LR_MAX, help="lr at width_ref (default: the [training] lr)"),
        "width_ref": Field(int, 64, lo=1, hi=MAX_WIDTH, help="width at which the lr is `lr`"),
        "lr_exponent": Field(float, 1.0, lo=-10.0, hi=10.0, help="lr(width) = lr * (width_ref/width)^lr_exponent"),
        "epochs": Field(int, 10, lo=1, hi=MAX_STEPS),
        "n_train": Field(int, 5000, lo=0, check=enough_points, help="first n_train train points are used"),
        "optimizer": Field(str, "adam", choices=("adam", "sgd")),
    },
    "checkpoint": {
        "every": Field(int, 0, lo=0, hi=MAX_STEPS, help="write DIR/checkpoint.pt every this many epochs (0 = never)"),
        "seconds": Field(float, 0.0, lo=0.0, hi=1e9,
                         help="write DIR/checkpoint.pt also when this many seconds passed since the last one; "
                              "0 = never"),
    },
    "kernel_flow": {
        "enabled": Field(bool, False, help="flow eq. 3.5 with the network's epoch-0 NTK as fixed kernel"),
        "n_train": Field(int, 500, lo=0, check=enough_points, help="first n_train train points"),
        "n_test": Field(int, 500, lo=0, check=enough_points, help="first n_test validation points"),
        "dt": Field(float, 1e-3, lo=0, lo_open=True, hi=1e12),
        "steps": Field(int, 50, lo=1, hi=MAX_STEPS),
        "tile": Field(int, 256, lo=1, hi=2**20),
    },
}


def check(cfg: dict, source: str = "job") -> None:
    """Cross-field checks, run by hpcflow.jobs.registry.load before any work (torch must be installed; it is
    imported only to ask for a GPU, device = 'cuda', where the job's GPU is not checked elsewhere: --check, a job
    queued to another node)."""
    from hpcflow.backend import gpu_needed_here
    from hpcflow.nn._torch import refuse_without_torch

    refuse_without_torch()
    if gpu_needed_here() and gpu_missing(cfg):
        from hpcflow.nn._torch import CUDA_BUILD_HINT, cpu_only_build

        build = cpu_only_build()
        if build is not None:  # no GPU node helps: the fix is another torch
            raise ConfigError(f"{source}: [training].device = 'cuda' but this torch ({build}) is a CPU-only build, "
                              f"which sees no GPU on any node; {CUDA_BUILD_HINT}, or use 'auto' or 'cpu'")
        raise ConfigError(f"{source}: [training].device = 'cuda' but torch sees no GPU; use 'auto' or 'cpu', or run "
                          "it on a GPU node")
    geo = cfg["geometry"]
    if geo["chart"] and max(geo["chart"]) > geo["dim"] + 1:
        raise ConfigError(f"{source}: [geometry].chart = {geo['chart']} needs indices <= {geo['dim'] + 1} "
                          f"([geometry].dim = {geo['dim']}); change it")
    if geo["dim"] != 3:
        raise ConfigError(f"{source}: [geometry].dim = {geo['dim']}: the networks output 9 = 3x3 components; "
                          "use dim = 3")
    _check_schedule(cfg, source)
    # sections that are switched off are not cross-checked
    limits = []
    if cfg["ntk"]["enabled"]:
        limits += [("ntk", "n_train_points", "n_train"), ("ntk", "n_test_points", "n_val")]
    if cfg["width_sweep"]["widths"]:
        limits += [("width_sweep", "n_train", "n_train")]
    if cfg["kernel_flow"]["enabled"]:
        limits += [("kernel_flow", "n_train", "n_train"), ("kernel_flow", "n_test", "n_val")]
    for sec, key, sampled in limits:
        if cfg[sec][key] > geo[sampled]:
            raise ConfigError(f"{source}: [{sec}].{key} = {cfg[sec][key]} exceeds the {geo[sampled]} sampled points "
                              f"([geometry].{sampled}); lower it")


def gpu_missing(cfg: dict) -> bool:
    """[training].device = 'cuda' where torch sees no GPU (a run here refuses it; --check says it)."""
    from hpcflow.nn._torch import cuda_available

    return cfg["training"]["device"] == "cuda" and not cuda_available()


def device_note(cfg: dict) -> str:
    """The torch device a run here would train on, for --check's line; a 'cuda' that torch sees no GPU for is said,
    not refused, so a GPU job can be checked on a login node. 'auto' is named with its rule: --check of a fresh --out
    never imports torch (~2 s) but to ask for a GPU that [training].device names."""
    device = cfg["training"]["device"]
    if device == "auto":
        return "torch device auto (cuda where torch sees a GPU, else cpu)"
    if device == "cuda" and gpu_missing(cfg):
        from hpcflow.nn._torch import CUDA_BUILD_HINT, cpu_only_build

        build = cpu_only_build()
        if build is not None:
            return f"torch device cuda, but this torch ({build}) is a CPU-only build, no GPU node's: {CUDA_BUILD_HINT}"
        return "torch device cuda, but torch sees no GPU on this node: run it on a GPU node"
    return f"torch device {device}"


def _check_schedule(cfg: dict, source: str) -> None:
    """A rate key the schedule does not read (lr_decay of the cosine, lr_min of the exponential schedule) is refused
    where given another value than its default (it would be ignored); every learning rate the run will use (per
    epoch, per sweep width) lies in [LR_MIN, LR_MAX]."""
    tr, ws = cfg["training"], cfg["width_sweep"]
    if unused_rate(tr) is not None:
        s = tr["lr_schedule"]
        refuse_inapplicable(cfg, "training", SCHEMA["training"], (UNUSED_BY[s][0],),
                            f"lr_schedule = {shown(s)} ({UNUSED_BY[s][1]})",
                            f"set lr_schedule = {shown(other_schedule(s))}", source)
    fault = schedule_fault(tr)
    if fault is not None:
        raise ConfigError(f"{source}: [training].{fault[0]} {named_keys(fault[1], 'training', SCHEMA['training'])}")
    sweep = {**tr, "lr": tr["lr"] if ws["lr"] is None else ws["lr"], "epochs": ws["epochs"]}  # its TrainConfig's
    fault = sweep_fault(sweep, ws["widths"], ws["width_ref"], ws["lr_exponent"], exponent="[width_sweep].lr_exponent")
    if fault is not None:  # its epochs its own, the rest of its schedule [training]'s (its lr, said bare: a width's)
        fault = named_keys(named_keys(fault, "width_sweep", ("epochs",)), "training", set(tr) - {"epochs", "lr"})
        raise ConfigError(f"{source}: [width_sweep] (trained with the [training] schedule) {fault}")


#: sections that apply only where their switch turns them on: section -> (its switch, whether it is on in a cfg, the
#: switch's value when off, as said). Their other keys are accepted but unused where it is off, not refused as keys of
#: no effect are elsewhere (`check`): `hpcflow tune` may search them beside the switch (hpcflow.tune.space.SWITCHED),
#: and a trial that draws it off still sets them. `unused_keys_note` says so.
SWITCHED = {
    "ntk": ("enabled", lambda cfg: cfg["ntk"]["enabled"], "false"),
    "width_sweep": ("widths", lambda cfg: bool(cfg["width_sweep"]["widths"]), "[] (no sweep)"),
    "kernel_flow": ("enabled", lambda cfg: cfg["kernel_flow"]["enabled"], "false"),
}


def unused_keys(raw: dict, cfg: dict) -> list:
    """[(section, [key, ...]), ...] of the keys of a SWITCHED section that the job (`raw`: the file with its --set
    values applied, before defaults) gives a value other than the default while the section's switch (in `cfg`, the
    validated job) is off: they have no effect. A key at its default is left out (it changes nothing; DIR/job.toml
    writes every key)."""
    out = []
    for section, (switch, on, _) in SWITCHED.items():
        given = raw.get(section) if isinstance(raw, dict) else None
        if on(cfg) or not isinstance(given, dict):
            continue
        keys = [k for k in SCHEMA[section] if k != switch and k in given and given[k] is not None
                and cfg[section][k] != SCHEMA[section][k].default]
        if keys:
            out.append((section, keys))
    return out


def unused_keys_note(raw: dict, cfg: dict) -> str | None:
    """One line (without the command's prefix) naming the keys `unused_keys` finds and why they are not used, e.g.
    "note: [kernel_flow] steps = 7 is not used: [kernel_flow].enabled = false"; None where there are none."""
    parts = []
    for section, keys in unused_keys(raw, cfg):
        switch, _, off = SWITCHED[section]
        given = ", ".join(f"{k} = {shown(cfg[section][k])}" for k in keys)
        parts.append(f"[{section}] {given} {'is' if len(keys) == 1 else 'are'} not used: [{section}].{switch} = {off}")
    return "note: " + "; ".join(parts) if parts else None


#: job keys a resumed run may change (all others must equal the checkpoint's): the epochs, the checkpoint settings,
#: and those that do not change the run's results but for rounding: the replica checksum (a debug check), the torch
#: and BLAS threads (summation order: the resume says so in one line, as for another HPCFLOW_THREADS), the sampler's
#: cap on its batches (a sampling that ends gives the same points whatever it is) and the text of [job].description;
#: the saved job.toml, summary.json and checkpoint.pt record the new values
RESUMABLE_CHANGES = (("training", "epochs"), ("training", "threads"), ("training", "check_replicas"),
                     ("geometry", "max_batches"), ("checkpoint", None), ("job", "description"))


def changes_said(changes) -> str:
    """(section, key) pairs in words, each section's keys together in their order, a key None as its whole table:
    (("a", "x"), ("a", "y"), ("b", None), ("c", "z")) -> "[a].x and y, [b] and [c].z"."""
    keys = {}
    for section, key in changes:
        keys.setdefault(section, []).append(key)
    parts = [f"[{section}]" if names == [None] else f"[{section}].{_listed(names)}" for section, names in keys.items()]
    return _listed(parts)


def _listed(words: list) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


#: RESUMABLE_CHANGES in words (the refusal of any other change)
RESUMABLE_SAID = changes_said(RESUMABLE_CHANGES)


def resume_key(cfg: dict) -> str:
    """The job as JSON without the keys a resume may change (RESUMABLE_CHANGES)."""
    return json.dumps(without(cfg, RESUMABLE_CHANGES), sort_keys=True)


def with_defaults(saved: dict) -> dict:
    """A checkpoint's job completed with this schema's later keys (`schema.with_defaults`)."""
    return schema_defaults(saved, SCHEMA)


def effective(cfg: dict) -> dict:
    """A validated nn job `cfg` with the keys whose unset value means a documented one given that value, so that
    jobs that train alike compare equal (--resume): [width_sweep].lr unset = the [training] lr; the rate key its
    schedule does not read (`rates.UNUSED_BY`: a checkpoint's job may hold a value there, accepted before it was
    refused) at its default."""
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in cfg.items()}
    sweep, training = out.get("width_sweep"), out.get("training")
    if isinstance(sweep, dict) and sweep.get("lr") is None and isinstance(training, dict):
        sweep["lr"] = training.get("lr")
    unused = UNUSED_BY.get(training.get("lr_schedule")) if isinstance(training, dict) else None
    if unused is not None and unused[0] in training:
        training[unused[0]] = RATE_FIELDS[unused[0]].default
    return out


def check_resume(cfg: dict, state: dict, path: str, *, nn_h5_redone: bool = False) -> None:
    """Refuse (ConfigError, before any work) a job that differs from the checkpoint's other than in what a resume
    may change (RESUMABLE_CHANGES), or asks for fewer epochs than it has done (or, part way into an epoch, than it
    has begun); InputFileError when its config is not a job or, the job being the checkpoint's, its training entries
    do not have the schema (`checkpoint.check_train_state`). The keys are compared first: the counters are checked
    against the batches per epoch of [geometry].n_train and [training].batch_size, which are then the checkpoint's
    own (a job that changes them is told so, not that its healthy checkpoint is damaged). InputFileError when the
    run is finished, the job asks for no more epochs and its nn.h5 cannot be read or lacks what a run writes
    (`nn_h5_fault`: a resume that adds nothing would leave it damaged), unless `nn_h5_redone` (`hpcflow nn
    --resume`, which redoes what follows training to write it again)."""
    from hpcflow.nn.checkpoint import RESTART, check_train_state
    from hpcflow.nn.data import batch_count

    check_same_job(cfg, state, path)
    n_train, batch_size = cfg["geometry"]["n_train"], cfg["training"]["batch_size"]
    if _one_point_batches(state, n_train, batch_size):
        raise InputFileError(f"{path}: written by an hpcflow that trained the one point left after "
                             f"{n_train // batch_size} batches ([geometry].n_train = {n_train}, [training].batch_size "
                             f"= {batch_size}) as a batch of its own; this one adds it to the batch before, so the run "
                             f"cannot go on as it began: {RESTART}")
    check_train_state(state, path, batches=batch_count(n_train, batch_size),
                      limits={"n_train": ("[geometry].n_train", n_train),
                              "n_val": ("[geometry].n_val", cfg["geometry"]["n_val"])})
    done, pos, epochs = int(state["train"]["epoch"]), int(state["train"]["position"]), cfg["training"]["epochs"]
    if pos and epochs <= done:  # its network is that of `pos` batches into epoch done + 1, not of epoch `done`
        raise ConfigError(f"{path}: [training].epochs = {epochs} would not finish epoch {done + 1}, which the "
                          f"checkpoint stopped {_counted(pos, 'batch', 'batches')} into; resume with --set "
                          f"training.epochs=N, N >= {done + 1}")
    if epochs < done:
        raise ConfigError(f"{path}: [training].epochs = {epochs} is below the {_counted(done, 'epoch', 'epochs')} the "
                          f"checkpoint holds; resume with --set training.epochs=N, N >= {done}")
    nn_h5 = os.path.join(os.path.dirname(path), "nn.h5")
    if not nn_h5_redone and state.get("status") == "finished" and epochs == done and os.path.isfile(nn_h5):
        fault = nn_h5_fault(nn_h5, state=state)  # unreadable, not what a run writes, or not this checkpoint's
        if fault is not None:
            raise InputFileError(f"{nn_h5}: {fault} in a finished run, which --resume leaves as it is; rerun the job "
                                 f"with --force: {_force_line(os.path.dirname(os.path.abspath(path)))}")


def _force_line(run_dir: str) -> str:
    """`hpcflow nn DIR/job.toml --out DIR --force` of run directory `run_dir` (JOB where it holds no job.toml), one
    line to paste (`hpcflow.jobs.shell.shell_line`)."""
    from hpcflow.jobs.shell import shell_line

    job = os.path.join(run_dir, "job.toml")
    return shell_line(["hpcflow", "nn", job if os.path.isfile(job) else "JOB", "--out", run_dir, "--force"])


def _counted(n: int, one: str, many: str) -> str:
    """'1 batch', '2 batches'."""
    return f"{n} {one if n == 1 else many}"


def _trainings(cfg: dict) -> list:
    """The trainings of a run in batches of [training].batch_size, as (the key of its point count, that count): the
    network's, then the width sweep's (one per width, on the same points) and the kernel flow network's where the
    job asks for them."""
    out = [("[geometry].n_train", cfg["geometry"]["n_train"])]
    if cfg["width_sweep"]["widths"]:
        out.append(("[width_sweep].n_train", cfg["width_sweep"]["n_train"]))
    if cfg["kernel_flow"]["enabled"]:
        out.append(("[kernel_flow].n_train", cfg["kernel_flow"]["n_train"]))
    return out


def _one_point_batches(state: dict, n_train: int, batch_size: int) -> bool:
    """Whether checkpoint `state`'s counters (train.epoch, step, position) are those of a training whose epochs ended
    in a batch of one point (n_train % batch_size = 1: before `data.batch_count` added it to the batch before) and
    not those of this one's batches; at epoch 0 before that batch the two trainings are the same."""
    from hpcflow.nn.data import batch_count

    train = state.get("train")
    counts = [train.get(k) for k in ("epoch", "step", "position")] if isinstance(train, dict) else []
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts) or len(counts) != 3:
        return False
    (epoch, step, pos), old, new = counts, -(-n_train // batch_size), batch_count(n_train, batch_size)
    return old != new and step == epoch * old + pos and (step != epoch * new + pos or pos >= new)


def model_fault(outdir: str, state: dict | None = None, cfg: dict | None = None) -> str | None:
    """Why DIR/model.pt and model.pt.json of a finished run cannot be used, in a few words: either is missing or
    cannot be read through, or an entry of model.pt fails its CRC-32 (damaged), or, given its checkpoint `state` and
    job `cfg`, they are not the network the run saved there (train.model: its tensors' names, dtypes, shapes and
    bits; the network's config); None when they load and are that network. A file that is not a regular readable one
    (a directory, no read permission) is refused as `checkpoint.load_model` says (InputFileError): rewriting would
    not mend it."""
    from hpcflow.nn.checkpoint import load_model

    path = os.path.join(outdir, "model.pt")
    missing = [os.path.basename(p) for p in (path, path + ".json") if not os.path.lexists(p)]
    if missing:
        return f"{' and '.join(missing)} missing"
    saved = None if state is None else state["train"]["model"]
    other = None if saved is None else _other_network(path, saved, values=False)  # (load_model refuses it)
    if other is not None:
        return other
    try:
        net = load_model(path)
    except InputFileError:
        if not all(os.path.isfile(p) and os.access(p, os.R_OK) for p in (path, path + ".json")):
            raise
        return "model.pt or model.pt.json damaged"
    if saved is None:
        return None
    other = _other_network(path, saved, values=True)
    if other is None and cfg is not None and _config_text(net.config) != _config_text(
            checkpoint_layout(cfg)["network"].config):
        other = "model.pt.json is not the config of the run's network"
    return other


def _config_text(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


def _other_network(path: str, saved: dict, *, values: bool) -> str | None:
    """Why the tensors of model.pt `path` are not `saved` (a checkpoint's train.model), in a few words: other names,
    a dtype or shape (and, `values`, other bits) than the network the run saved; None when they are those (or model.pt
    cannot be read: `checkpoint.load_model` says why)."""
    import torch

    from hpcflow.nn.checkpoint import _layout

    try:
        got = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - unreadable: load_model's refusal says why
        return None
    if not isinstance(got, dict):
        return None
    said = "model.pt is not the network of checkpoint.pt's train.model"
    if sorted(got) != sorted(saved):
        return f"{said} (tensors {sorted(got)}, not {sorted(saved)})"
    for k, want in saved.items():
        t = got[k]
        if not torch.is_tensor(t):
            return None
        if t.dtype != want.dtype or t.shape != want.shape:
            return f"{said} ({k}: {_layout(t)}, not {_layout(want)})"
        if values and _bits(t) != _bits(want):
            return f"{said} ({k}: other values)"
    return None


def _bits(t) -> bytes:
    """The bytes of tensor `t`'s values (bitwise: -0.0 and 0.0, or two NaNs of other payloads, differ)."""
    return t.detach().cpu().contiguous().numpy().tobytes()


def restore_model(cfg: dict, state: dict, outdir: str, *, comm=None) -> None:
    """Rewrite DIR/model.pt and model.pt.json (rank 0) from the network of a finished run's checkpoint `state`
    (train.model: the network the run saved there)."""
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.checkpoint import save_model
    from hpcflow.nn.features import point_features

    n_in = point_features(np.zeros((1, cfg["geometry"]["dim"] + 2), dtype=complex)).shape[1]
    net = ex.build_model(n_in, cfg["model"], cfg["training"]["seed"])
    net.load_state_dict(state["train"]["model"])
    save_model(os.path.join(outdir, "model.pt"), net, force=True, comm=comm)


def _unset_in_both(a: dict, b: dict, section: str, key: str) -> bool:
    """Whether `key` of `section` is unset (None) in both raw jobs: its effective value then follows another key's
    (`effective`), which a refusal names instead."""
    return all(isinstance(c.get(section), dict) and c[section].get(key) is None for c in (a, b))


def check_same_job(cfg: dict, state: dict, path: str) -> None:
    """Refuse (ConfigError) a job whose keys differ from the checkpoint's `config` other than in what a resume may
    change (RESUMABLE_CHANGES), naming them and the --set that restores them; InputFileError when that config is not
    a job. The effective values are compared (`effective`): a key unset and set to the value it means are no
    change."""
    from hpcflow.nn.checkpoint import RESTART, entry_named

    try:
        try:
            old = json.loads(state["config"])
        except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested deeper than the parser follows
            raise ValueError(f"config (not JSON: {exc})") from None
        if not isinstance(old, dict):
            raise TypeError("config (not a JSON object)")
        raw_old = with_defaults(old)
        old = effective(raw_old)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputFileError(f"{path}: entry {entry_named(exc)} is missing or malformed; the checkpoint is damaged, "
                             f"{RESTART}") from None
    raw_cfg, cfg = cfg, effective(cfg)  # a key unset and the same key set to what unset means are one job
    if resume_key(old) != resume_key(cfg):
        a, b = json.loads(resume_key(old)), json.loads(resume_key(cfg))
        diff = sorted((sec, k) for sec in set(a) | set(b) for k in set(a.get(sec, {})) | set(b.get(sec, {}))
                      if a.get(sec, {}).get(k) != b.get(sec, {}).get(k)
                      and not _unset_in_both(raw_old, raw_cfg, sec, k))  # it follows a key named beside it
        restore = " ".join(set_arg(sec, k, a.get(sec, {}).get(k)) for sec, k in diff)
        raise ConfigError(f"{path}: the job differs from the checkpoint's in "
                          f"{', '.join(f'[{sec}].{k}' for sec, k in diff)}; --resume may change only "
                          f"{RESUMABLE_SAID}: resume with {restore} (or start a new --out)")


def checkpoint_layout(cfg: dict) -> dict:
    """What the job's checkpoint tensors must fit (`checkpoint.check_train_layout`'s keywords): the job's network
    on torch's meta device (its parameters' names, shapes and dtypes, without memory or values) and the NTK's shape
    per epoch over the probe points (None: not tracked)."""
    from hpcflow.nn import experiment as ex
    from hpcflow.nn._torch import require_torch
    from hpcflow.nn.features import point_features

    n_in = point_features(np.zeros((1, cfg["geometry"]["dim"] + 2), dtype=complex)).shape[1]
    with require_torch().device("meta"):
        net = ex.build_model(n_in, cfg["model"], cfg["training"]["seed"])
    ncfg = cfg["ntk"]
    m, points = net.config["n_out"], ncfg["n_train_points"] + ncfg["n_test_points"]
    return {"network": net, "ntk_shape": (m, m, points, points) if ncfg["enabled"] else None}


def run(cfg: dict, outdir: str, *, log=print, comm=None, resume: dict | None = None, info: dict | None = None,
        job_text: str | None = None, on_epoch=None, log_prefix: str = LOG_PREFIX) -> dict:
    """Train the network (NTK every epoch), then the optional width sweep and NTK kernel flow; write outputs.

    Data parallel over `comm`; `resume` is a checkpoint (hpcflow.nn.checkpoint) to continue. Writes (rank 0)
    DIR/checkpoint.pt as configured, then DIR/nn.h5, DIR/model.pt(.json) and DIR/summary.json last. A
    non-finite σ or loss writes everything up to the last finite epoch and raises NumericalStop; SIGTERM/SIGUSR1
    are handled throughout: during training the checkpoint is written, after it (after every optimiser step of the
    sweep's and the kernel flow network's trainings and every step of the kernel flow, between sweep widths and
    phases) summary.json (status "preempted") and job.toml are, then Preempted is raised on every rank; once only
    the outputs are left to write (from the end of the last epoch where no sweep or kernel flow follows) a request
    has nothing left to stop: the run finishes and passes it on (`StopRequests`). `job_text` (the saved job) goes to
    DIR/job.toml beside the first checkpoint and again just before
    summary.json. on_epoch(epoch, sigma_train, sigma_val, val_not_positive_definite) (the histories so far; every
    rank) returning True stops training after that epoch: status "stopped", outputs written, no width sweep or
    kernel flow (an Optuna trial pruned by hpcflow.tune). `log_prefix` begins every line it prints: the command that runs it (`hpcflow run` of
    an nn job passes its own).
    """
    from hpcflow.parallel.comm import resolve

    check(cfg)
    t0 = time.perf_counter()
    c = resolve(comm)
    root = c.Get_rank() == 0
    say = (lambda s: log(f"{log_prefix} {s}")) if root else (lambda s: None)  # noqa: E731
    n_train, ranks = cfg["geometry"]["n_train"], c.Get_size()
    batch = min(cfg["training"]["batch_size"], n_train)  # the rows of a step (one batch of them all when larger)
    if root and cfg["training"]["batch_size"] > n_train:
        print(f"{log_prefix} note: [training].batch_size = {cfg['training']['batch_size']} exceeds [geometry].n_train "
              f"= {n_train}: every step's batch is the whole train set ({n_train} points, one step per epoch)",
              file=sys.stderr)
    for key, n in _trainings(cfg) if root else ():
        rows = min(cfg["training"]["batch_size"], n)
        if n % rows == 1:  # (data.batch_count)
            batches = f"{n // rows} batch{'es' * (n >= 2 * rows)}"
            print(f"{log_prefix} note: {key} = {n} leaves one point after {batches} of [training].batch_size = {rows}: "
                  f"it joins the last of them ({rows + 1} points), since σ of one point is 0 (no gradient)",
                  file=sys.stderr)
    few = few_rows_note(batch, ranks) if root else None
    if few is not None:
        print(f"{log_prefix} note: {few}", file=sys.stderr)
    ctx = {}  # a refused write is recorded in checkpoint.pt's legs; stop requests are honoured, never fatal
    with StopRequests(c, prefix=log_prefix) as stops, _write_failures_recorded(ctx):
        ctx.update(_prepare(cfg, c, log_prefix))
        ctx["job_text"], ctx["stops"], ctx["t0"] = job_text, stops, t0
        if resume is not None and root:
            _threads_note(resume, ctx["threads"], log_prefix, job_threads=cfg["training"]["threads"])
            _ranks_note(resume, c.Get_size(), log_prefix)
            _code_note(resume, log_prefix)
        base = {**(info or {}), "kind": "nn", "ranks": c.Get_size(), "config": cfg, "threads": ctx["threads"],
                "device": str(ctx["device"]), "n_train": cfg["geometry"]["n_train"],
                "n_val": cfg["geometry"]["n_val"]}
        summary, data = _train_main(cfg, ctx, say, outdir, resume, base, t0, on_epoch)
        if root:
            _warn_not_positive_definite(summary, log_prefix)
        status = summary["status"]
        if status == "finished":  # (a request once only the outputs are left to write has nothing to stop)
            if cfg["width_sweep"]["widths"]:
                _stop_point(ctx, outdir, summary, "after training")
                summary["width_sweep"] = _width_sweep(cfg, ctx, data, say, outdir, summary)
            if cfg["kernel_flow"]["enabled"]:
                _stop_point(ctx, outdir, summary, "before the kernel flow" if cfg["width_sweep"]["widths"] else
                            "after training")
                summary["kernel_flow"] = _kernel_flow_vs_network(cfg, ctx, data, say, outdir, summary)
            stopped = _diverged_after_training(summary)
            if stopped:  # every output is written, then exit status 3
                status, summary["stopped"] = "diverged", stopped
        _write_outputs(outdir, cfg, ctx, data, summary, status, t0)
    finish(summary, outdir)
    if status == "stopped":
        say(f"stopped after epoch {summary['epochs']} of {cfg['training']['epochs']}")
    say(f"sigma_val {summary['sigma_val_initial']:.4f} -> {summary['sigma_val_final']:.4f}")
    return summary


@contextmanager
def _write_failures_recorded(ctx: dict):
    """A write the file system refused in the block (WriteFailed, exit status 5) is recorded in the legs of the run's
    checkpoint.pt where it can be (`TrainingCheckpoint.write_failed`: this leg "write_failed"), then raised."""
    from hpcflow.errors import WriteFailed

    try:
        yield
    except WriteFailed:
        if ctx.get("checkpoint") is not None:
            ctx["checkpoint"].write_failed()
        raise


def _threads_note(resume: dict, threads: int, prefix: str = LOG_PREFIX, *, job_threads: int = 0) -> None:
    """One line on stderr when this leg runs another number of threads per rank or another BLAS kernel than the last
    leg of checkpoint `resume` (its legs[].threads, legs[].blas_kernel; nothing where they are not recorded): the sums
    per thread of torch and BLAS, and another kernel's products, then round otherwise, so the run equals the
    uninterrupted one to rounding only, not bit for bit. Where the job sets [training].threads (`job_threads` > 0),
    which HPCFLOW_THREADS does not override, the fix named is that key's --set."""
    from hpcflow.checkpoint import threads_note
    from hpcflow.nn.checkpoint import earlier_legs

    note = threads_note(earlier_legs(resume), threads, prefix,  # (the flow's resume says it alike)
                        setting="--set training.threads" if job_threads else "HPCFLOW_THREADS")
    if note:
        print(note, file=sys.stderr)


def _ranks_note(resume: dict, ranks: int, prefix: str = LOG_PREFIX) -> None:
    """One line on stderr when this leg runs at another rank count than the last leg of checkpoint `resume` (its
    legs[].ranks; nothing where it is not recorded): the gradients' and σ's sums over the ranks' shards then round
    otherwise, so the run equals the uninterrupted one to rounding only, not bit for bit; the fix named is that leg's
    rank count."""
    from hpcflow.nn.checkpoint import earlier_legs

    legs = earlier_legs(resume)
    before = legs[-1].get("ranks") if legs else None
    if not isinstance(before, int) or isinstance(before, bool) or before == ranks:
        return
    print(f"{prefix} note: {_counted(ranks, 'rank', 'ranks')}, where the checkpoint's last leg ran {before}: the run "
          "continues equal to the uninterrupted one to rounding (the sums over the ranks' shards round otherwise), "
          f"not bit for bit ({_counted(before, 'rank', 'ranks')}, as that leg ran, resumes it bit for bit)",
          file=sys.stderr)


def _code_note(resume: dict, prefix: str = LOG_PREFIX) -> None:
    """One line on stderr when this leg runs another hpcflow (git commit or version) than the last leg of checkpoint
    `resume` (its legs[].git_commit, legs[].hpcflow_version; nothing where either side is not known): the epochs from
    the resumed one on come from other code, whose numerics may differ."""
    from hpcflow.checkpoint import code_note
    from hpcflow.nn.checkpoint import earlier_legs
    from hpcflow.provenance import git_commit

    note = code_note(earlier_legs(resume), prefix, git_commit(), unit="epochs")  # (the flow's resume says it alike)
    if note:
        print(note, file=sys.stderr)


def _warn_not_positive_definite(summary: dict, prefix: str = LOG_PREFIX) -> None:
    """One line on stderr when the trained network's metric is not positive definite at validation points."""
    bad = summary.get("val_not_positive_definite_final")
    if bad is not None and bad > 0:  # (-1: epochs of a checkpoint written before the count, not counted)
        print(f"{prefix} the metric is not positive definite at {bad} of {summary['n_val']} validation points "
              f"after epoch {summary['epochs']}; σ there uses the signed det g; lower training.lr (or add "
              "training.lr_warmup) for a metric that stays positive definite (nn.h5 history/val_not_positive_definite "
              "per epoch)", file=sys.stderr)


class StopRequests:
    """SIGTERM/SIGUSR1/SIGINT (hpcflow.stop_signals.SIGNALS) handled for a whole job: the trainer takes them over
    while it trains; outside training a request sets a flag that `requested` (collective) turns into one decision.
    Once the outputs are complete (`written`), a handler put back that would only end the process is one that ignores
    the request (`stop_signals.restore`'s final). A request the job ended normally after (received once only its
    outputs were left to write) is passed on to the SIGTERM handler it replaced where that is a stop request's
    (`stop_signals.requests`: a tune worker's, which then stops before its next trial), as `requests` passes it on.
    Such a request is said in one line on stderr (rank 0, once per run: `outputs_left`), as the outputs (the NTK's
    spectra) may take a while."""

    def __init__(self, comm, *, prefix: str = LOG_PREFIX):
        self.comm, self.signalled, self.written, self._handlers = comm, False, False, {}
        self.prefix, self.root, self.said, self._until = prefix, comm.Get_rank() == 0, False, None

    def __enter__(self):
        from hpcflow.stop_signals import install

        self._handlers = install(self._handler)
        return self

    def __exit__(self, exc_type, exc, tb):
        from hpcflow.errors import Preempted
        from hpcflow.stop_signals import restore

        # a repeat of an honoured request (ours or the trainer's), or one after summary.json, is ignored while the
        # process leaves (a caller's own handler, a tune worker's, is put back as it was)
        handlers, self._handlers = self._handlers, {}
        restore(handlers, stopping=self.signalled or isinstance(exc, Preempted), final=self.written)
        outer = handlers.get(getattr(signal, "SIGTERM", None))
        if self.signalled and not isinstance(exc, Preempted) and getattr(outer, "stop_request", False):
            outer(signal.SIGTERM, None)  # one the run had nothing left to stop for: a tune worker's stops after it
        return False

    def _handler(self, signum, frame):  # noqa: ARG002 - signal handler signature
        self.signalled = True
        if self._until is not None:
            self._say()

    def outputs_left(self, seconds: float) -> None:
        """From here only the outputs are left to write (about `seconds` on rank 0): a request has nothing left to
        stop. One that comes, or came since the training's last look at its flag, is said once (`_say`)."""
        self._until = time.monotonic() + seconds
        if self.signalled:
            self._say()

    def _say(self) -> None:
        """One line on stderr (rank 0, once per run, not once the outputs are written): the request was received,
        the run goes on writing its outputs for about the seconds left of `outputs_left`'s. Not where an enclosing
        handler takes the request on (a tune worker's, which stops before its next trial and says so)."""
        outer = self._handlers.get(getattr(signal, "SIGTERM", None))
        if self.said or self.written or not self.root or getattr(outer, "stop_request", False):
            return
        self.said = True
        left = max(1, round(self._until - time.monotonic()))
        print(f"{self.prefix} stop request after the last training step: nothing left to stop; writing the outputs "
              f"(about {left} s)", file=sys.stderr, flush=True)

    def requested(self) -> bool:
        """Whether any rank got a stop request (collective: call on every rank at the same point)."""
        from hpcflow.parallel.reduce import any_true

        return any_true(self.signalled, comm=self.comm)


def _diverged_after_training(summary: dict) -> str:
    """Which networks trained after the main one (width sweep, kernel flow) diverged, and why ('' for none)."""
    sweep, kf = summary.get("width_sweep", {}), summary.get("kernel_flow", {})
    bad = [f"width {w} ({why})" for w, why in zip(sweep.get("width", ()), sweep.get("stopped", ())) if why]
    parts = [f"the width sweep's networks of {', '.join(bad)}"] if bad else []
    if kf.get("nn_stopped"):
        parts.append(f"the kernel flow's network ({kf['nn_stopped']})")
    return f"{' and '.join(parts)} diverged" if parts else ""


def _stop_point(ctx, outdir, summary, where) -> None:
    """A safe boundary after training: on a stop request (any rank) write job.toml and summary.json (status
    "preempted", checkpoint_step = epochs, whose checkpoint.pt --resume continues from) and raise Preempted."""
    from hpcflow.errors import RESUME_HINT, Preempted

    stops = ctx.get("stops")
    if stops is None or not stops.requested():
        return
    stops.signalled = True
    ctx["checkpoint"].restamp(ended="preempted")  # the training state as it was, this leg timed to here
    out = {k: v for k, v in summary.items() if k not in ("width_sweep", "kernel_flow")}
    out.update(status="preempted", checkpoint_step=summary["epochs"])
    _write_summary(outdir, ctx, _with_legs(ctx, out))
    raise Preempted(f"signal received {where}: training had finished ({summary['epochs']} epochs, in "
                    f"{os.path.join(outdir, 'checkpoint.pt')}), and a resume redoes what follows it; {RESUME_HINT}")


def _step_stop(ctx, outdir, summary, where, *, last=False):
    """A Trainer's on_step hook honouring a stop request after every optimiser step (`_stop_point`; collective:
    one Allreduce of a flag per step under MPI); `last`: the job's last training, whose last step leaves only the
    outputs to write, so a request there has nothing left to stop (the run finishes, `StopRequests`)."""

    def on_step(trainer):
        if last and trainer.at_last_step():
            if ctx.get("stops") is not None:
                ctx["stops"].outputs_left(0.0)
            return
        _stop_point(ctx, outdir, summary, f"{where}, after step {trainer.pos} of epoch {trainer.epoch + 1}")

    return on_step


def _write_outputs(outdir, cfg, ctx, data, summary, status, t0):
    """nn.h5 and model.pt(.json), then summary.json last (rank 0 only)."""
    from hpcflow.geometry.pointset import CONVENTIONS as GEOMETRY_CONVENTIONS
    from hpcflow.jobs.output import write_hdf5
    from hpcflow.nn.checkpoint import save_model

    c = ctx["comm"]
    epoch = summary["checkpoint_step"]
    attrs = {"kind": "hpcflow.nn", "schema_version": NN_H5_SCHEMA_VERSION, "config": cfg, "status": status,
             "epoch": epoch, "conventions": _CONVENTIONS, "geometry_conventions": GEOMETRY_CONVENTIONS}
    write_hdf5(os.path.join(outdir, "nn.h5"), data, attrs=attrs, comm=c)
    save_model(os.path.join(outdir, "model.pt"), ctx["model"], force=True, comm=c)
    ctx["checkpoint"].restamp(status=status, ended=status)  # the run is complete: its checkpoint says so
    summary.update(status=status)
    _write_summary(outdir, ctx, _with_legs(ctx, summary, time.perf_counter() - t0))
    if ctx.get("stops") is not None:  # the run's result is final: a stop request has nothing left to stop
        ctx["stops"].written = True


def _with_legs(ctx, summary, wall: float | None = None) -> dict:
    """`summary` with this run's `wall_seconds` (default: up to now), the checkpoint's `legs` and
    `wall_seconds_total` (the earlier legs' recorded seconds plus this run's; legs of unknown time not counted)."""
    from hpcflow.checkpoint import wall_seconds_total

    ck = ctx["checkpoint"]
    wall = time.perf_counter() - ctx["t0"] if wall is None else wall
    earlier = ck.legs if ck.epoch is None else ck.legs[:-1]  # the last leg is this run's once it has written
    summary.update(wall_seconds=wall, legs=[dict(g) for g in ck.legs],
                   wall_seconds_total=wall_seconds_total(earlier) + wall)
    return summary


def _write_summary(outdir, ctx, summary):
    """DIR/job.toml (when given), then DIR/summary.json: last, its presence marks what the run finished. Every
    rank calls it (the provenance gathers the ranks' hosts)."""
    from hpcflow.jobs.output import write_json, write_text
    from hpcflow.provenance import provenance

    summary["provenance"] = provenance(comm=ctx["comm"])
    if ctx.get("job_text") is not None:
        write_text(os.path.join(outdir, "job.toml"), ctx["job_text"], comm=ctx["comm"])
    write_json(os.path.join(outdir, "summary.json"), summary, comm=ctx["comm"])


def _prepare(cfg: dict, comm, prefix: str = "hpcflow nn:") -> dict:
    """Threads, device (`_train_device`), the manifold, this rank's shards of the points and tensors, the initial
    network."""
    from hpcflow.allocator import retain_freed_memory
    from hpcflow.geometry import Hypersurface
    from hpcflow.nn import experiment as ex
    from hpcflow.nn._torch import require_torch
    from hpcflow.nn.replicas import Shard
    from hpcflow.nn.train import TrainConfig
    from hpcflow.parallel.comm import limit_threads, pool_threads

    torch = require_torch()
    geo, mcfg, tcfg = cfg["geometry"], cfg["model"], cfg["training"]
    retain_freed_memory()  # a step's temporaries reuse their pages instead of faulting in fresh ones
    limit_threads(comm)  # the CPUs this rank owns
    if tcfg["threads"]:  # torch's and the BLAS pools (training, the NTK's spectra); sampling's workers keep theirs
        pool_threads(tcfg["threads"])
    device = _train_device(tcfg["device"], comm, prefix)
    X = Hypersurface.dwork(3, geo["psi"]) if geo["manifold"] == "dwork" else Hypersurface.fermat(3)
    train_ps, val_ps = ex.sample_shards(X, geo["n_train"], geo["n_val"], geo["seed"], geo["chart"], comm=comm,
                                        max_batches=geo["max_batches"], batches_said=batches_said("geometry"))
    train_d = Shard(ex.as_data(train_ps.data, mcfg["dtype"], device), train_ps.lo, train_ps.n)
    val_d = Shard(ex.as_data(val_ps.data, mcfg["dtype"], device), val_ps.lo, val_ps.n)
    model = ex.build_model(train_d.data.x.shape[1], mcfg, tcfg["seed"]).to(device)
    tc = TrainConfig(**{k: tcfg[k] for k in ("epochs", "batch_size", "lr", "lr_decay", "lr_schedule", "lr_min",
                                             "lr_warmup", "optimizer", "loss", "detach_kappa", "seed", "check_replicas")})
    return {"X": X, "train_ps": train_ps, "val_ps": val_ps, "train": train_d, "val": val_d, "model": model,
            "model0": copy.deepcopy(model), "tc": tc, "device": device, "threads": torch.get_num_threads(),
            "ntk_train": None, "ntk_test": None, "comm": comm}


def _train_device(asked: str, comm, prefix: str) -> str:
    """The torch device of this rank for [training].device = `asked` (collective: one allgather at R > 1, a
    COMM_TYPE_SHARED split unless `asked` is 'cpu'). A GPU torch reports available is tried with a tiny allocation
    (`cuda_fault`: one busy in exclusive mode, or a driver older than torch's CUDA, fails only then), on every rank's
    own GPU: under 'auto' a GPU that fails on any rank makes every rank train on the cpu, rank 0 saying so in one
    note line; under 'cuda' every rank refuses it (ConfigError, exit 2) before the points are sampled."""
    from hpcflow.nn._torch import CUDA_BUILD_HINT, cpu_only_build, cuda_available, cuda_fault, require_torch
    from hpcflow.parallel.comm import node_layout, raise_together

    torch = require_torch()
    ranks = comm.Get_size()
    local = node_layout(comm)[0] if ranks > 1 and asked != "cpu" else 0  # (every rank alike: `asked` is the job's)
    device = "cuda" if asked == "cuda" or (asked == "auto" and cuda_available()) else "cpu"
    if device == "cuda" and ranks > 1:
        device = f"cuda:{local % max(torch.cuda.device_count(), 1)}"
    fault = cuda_fault(device) if device != "cpu" else None
    faults = comm.allgather(fault) if ranks > 1 else [fault]
    failing = [r for r, f in enumerate(faults) if f is not None]
    if not failing:
        return device
    where = f" on rank {failing[0]}, {len(failing)} of {ranks} ranks" if ranks > 1 else ""
    failed = f"({faults[failing[0]]}{where})"
    if asked == "cuda":
        build = cpu_only_build()
        why = (f"this torch ({build}) is a CPU-only build: {CUDA_BUILD_HINT}" if build is not None else
               "it may be busy (exclusive compute mode) or its driver older than torch's CUDA: free it")
        raise_together(ConfigError(f"[training].device = 'cuda' but torch cannot use the GPU it sees {failed}; {why}, "
                                   "or use 'auto' or 'cpu'"), comm=comm)
    if comm.Get_rank() == 0:
        print(f"{prefix} note: torch sees a GPU but cannot use it {failed}: training on the cpu ([training].device = "
              "'auto')", file=sys.stderr, flush=True)
    return "cpu"


def _metric_rows(shard, idx, comm):
    """MetricData of the rows at global indices idx (on every rank)."""
    from hpcflow.nn.data import MetricData
    from hpcflow.nn.replicas import gather_rows

    d = shard.data
    rows = gather_rows(shard, idx, ("x", "gfs", "omega2", "weights"), comm=comm)
    return MetricData(*(torch_like(rows[k], d.x) for k in ("x", "gfs", "omega2", "weights")))


def torch_like(a, ref):
    from hpcflow.nn._torch import require_torch

    return require_torch().as_tensor(a, dtype=ref.dtype, device=ref.device)


def _point_rows(shard, idx, comm):
    """PointSet of the rows at global indices idx (on every rank)."""
    from hpcflow.geometry.pointset import PointSet
    from hpcflow.nn.replicas import gather_rows

    ps = shard.data
    names = ("points", "weights", "omega2", "g_fs", "chart") + (("jacobian",) if ps.jacobian is not None else ())
    rows = gather_rows(shard, idx, names, comm=comm)
    return PointSet(ps.manifold, rows["points"], rows["weights"], rows["omega2"], rows["g_fs"], rows["chart"],
                    rows.get("jacobian"), 0, ps.seed, dict(ps.attrs))


def _train_main(cfg: dict, ctx: dict, say, outdir, resume, base, t0, on_epoch=None):
    """Train ctx["model"] with σ history and the NTK on fixed points every epoch: (summary, HDF5 datasets).

    Checkpoints go to DIR/checkpoint.pt; divergence writes the last finite state and raises NumericalStop.
    """
    from hpcflow.errors import NumericalStop
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.checkpoint import CHECKPOINT, TrainingCheckpoint
    from hpcflow.nn.ntk import NTKTracker
    from hpcflow.nn.replicas import global_sigma
    from hpcflow.nn.train import Trainer

    ncfg, tc, data, c = cfg["ntk"], ctx["tc"], {}, ctx["comm"]
    root = c.Get_rank() == 0
    tracker = None
    if ncfg["enabled"]:
        i, j = ex.ntk_indices(ctx["train"].n, ctx["val"].n, ncfg["n_train_points"], ncfg["n_test_points"],
                              ncfg["seed"])
        ctx["ntk_train"], ctx["ntk_test"] = _metric_rows(ctx["train"], i, c), _metric_rows(ctx["val"], j, c)
        data.update({"ntk/points_train": _point_rows(ctx["train_ps"], i, c).points,
                     "ntk/points_test": _point_rows(ctx["val_ps"], j, c).points})
        if root:  # the NTK of the probe points is computed and written by rank 0 only
            tracker = NTKTracker(ctx["ntk_train"], ctx["ntk_test"], method=ncfg["method"])
    vps = ctx["val_ps"].data
    sigma_fs_val = global_sigma(vps.eta(), vps.weights, comm=c)
    path = os.path.join(outdir, CHECKPOINT)
    cosine = tc.lr_schedule == "cosine"  # its length is [training].epochs: each leg records its own
    ckpt = ctx["checkpoint"] = TrainingCheckpoint(path, resume, started=t0, comm=c, job_text=ctx.get("job_text"),
                                                  schedule_epochs=tc.epochs if cosine else None,
                                                  threads=ctx["threads"])

    def summarize(trainer, status):
        hist = trainer.hist.arrays()
        out = {**base, "status": status, "checkpoint_step": trainer.epoch, "sigma_fs_val": sigma_fs_val,
               "sigma_val_initial": hist["sigma_val"][0] if hist["sigma_val"].size else None,
               "sigma_val_final": hist["sigma_val"][-1] if hist["sigma_val"].size else None,
               "sigma_train_final": hist["sigma_train"][-1] if hist["sigma_train"].size else None,
               **best_positive_definite(hist["sigma_val"], hist["val_not_positive_definite"]),
               "val_not_positive_definite_final": (int(hist["val_not_positive_definite"][-1])
                                                   if hist["val_not_positive_definite"].size else None),
               "epochs": trainer.epoch, "train_seconds": float(hist["epoch_seconds"].sum()),
               "seconds_per_epoch": float(np.mean(hist["epoch_seconds"])) if hist["epoch_seconds"].size else None,
               "n_parameters": sum(p.numel() for p in ctx["model"].parameters())}
        r = trainer.reducer
        per = c.allgather({"rank": c.Get_rank(), "n_train_local": len(ctx["train"]), "n_val_local": len(ctx["val"]),
                           "comm_seconds": getattr(trainer.comm, "seconds", 0.0), "comm_calls": getattr(
                               trainer.comm, "calls", 0), "allreduce_seconds": r.seconds, "allreduce_bytes": r.bytes,
                           "allreduce_calls": r.calls})
        if c.Get_size() > 1:
            out["per_rank"] = per
        return out, hist

    def checkpoint(trainer, reason, status="running"):
        state = {"config": json.dumps(cfg, sort_keys=True), "ranks": c.Get_size(), "train": trainer.state_dict(),
                 "ntk": tracker.state_dict() if tracker is not None else {}} if root else None
        ckpt.save(trainer.epoch, state, status={"end": "trained", "stopped": "stopped"}.get(reason, status),
                  ended="preempted" if reason == "signal" else None)
        if reason == "signal":  # preempted: the summary says so and which checkpoint it describes
            out, _ = summarize(trainer, "preempted")
            _write_summary(outdir, ctx, _with_legs(ctx, out))

    should_stop = None if on_epoch is None else (
        lambda t: bool(on_epoch(t.epoch, list(t.hist.sigma_train), list(t.hist.sigma_val),
                                list(t.hist.val_not_positive_definite))))
    trainer = Trainer(ctx["model"], ctx["train"], ctx["val"], tc, comm=c, on_epoch=tracker, log=say,
                      checkpoint=checkpoint, every=cfg["checkpoint"]["every"], seconds=cfg["checkpoint"]["seconds"],
                      should_stop=should_stop)
    if resume is not None:
        try:  # the entries and tensors' shapes were checked before any work (prepare_out); anything else shows here
            trainer.load_state_dict(resume["train"])
            if tracker is not None and resume.get("ntk"):
                tracker.load_state_dict(resume["ntk"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            raise InputFileError(f"{os.path.join(outdir, CHECKPOINT)}: does not fit this job's network "
                                 f"({' '.join(str(exc).split())[:200]}); the checkpoint is damaged") from None
        if trainer.epoch >= tc.epochs and not trainer.pos:  # (a finished run's missing nn.h5, a post-training stop)
            say(f"training done in checkpoint.pt ({_counted(trainer.epoch, 'epoch', 'epochs')} of {tc.epochs}): "
                "nothing to train; redoing from it what follows the training")
        else:
            say(f"resuming after epoch {trainer.epoch} (+{trainer.pos} batches) of {tc.epochs}")
    stops = ctx.get("stops")
    if stops is not None:  # a request before training (sampling, the NTK points) stops at its first boundary
        trainer.signalled = trainer.signalled or stops.signalled
    trainer.run()
    if stops is not None:  # one after the trainer's last look at its flag is honoured at the next stop point
        stops.signalled = stops.signalled or trainer.signalled
        follows = cfg["width_sweep"]["widths"] or cfg["kernel_flow"]["enabled"]
        if trainer.diverged is not None or trainer.stopped or not follows:  # only the outputs are left to write
            stops.outputs_left(tracker.results_seconds() if tracker is not None else 0.0)
    if trainer.diverged is not None:
        last = trainer.last_finite
        if last is not None:
            trainer.load_state_dict(last)
            if tracker is not None:
                tracker.truncate(trainer.epoch)
            checkpoint(trainer, "diverged", status="diverged")
        summary, hist = summarize(trainer, "diverged")
        data.update({f"history/{k}": v for k, v in hist.items()})
        if tracker is not None and tracker.theta:
            data.update({f"ntk/{k}": v for k, v in tracker.results().items()})
        _write_outputs(outdir, cfg, ctx, data, summary, "diverged", t0)
        stop = NumericalStop(f"the network diverged ({trainer.diverged}); wrote history and model up to epoch "
                             f"{trainer.epoch} (last finite) to {outdir}")
        stop.summary = summary  # `hpcflow run` writes it (again) as its summary.json
        raise stop
    summary, hist = summarize(trainer, "stopped" if trainer.stopped else "finished")
    data.update({f"history/{k}": v for k, v in hist.items()})
    if ncfg["enabled"]:
        res = c.bcast(tracker.results() if root else None, root=0)  # the summary lists the NTK change
        if root:
            data.update({f"ntk/{k}": v for k, v in res.items()})
        summary.update(ntk_wasserstein=res["wasserstein"], ntk_rel_frobenius=res["rel_frobenius"],
                       ntk_seconds_per_epoch=float(np.mean(res["ntk_seconds"])))
    return summary, data


def best_positive_definite(sigma_val, not_pd) -> dict:
    """summary.json's sigma_val_best (the smallest finite σ_val of the epochs whose validation metric is positive
    definite at every point: count 0; an epoch of a checkpoint written before the count was recorded, -1, is not
    known to be and is left out; None when no epoch qualifies), sigma_val_best_epoch (its epoch, or None) and
    val_not_positive_definite_epochs (how many epochs have a count > 0)."""
    counts = np.asarray(not_pd, dtype=np.int64)
    ok = [(float(s), e) for e, (s, n) in enumerate(zip(sigma_val, counts)) if n == 0 and np.isfinite(s)]
    best = min(ok) if ok else (None, None)
    return {"sigma_val_best": best[0], "sigma_val_best_epoch": best[1],
            "val_not_positive_definite_epochs": int((counts > 0).sum())}


def _first_rows(shard, n, comm, kind):
    """The first n global rows of a shard, on every rank (MetricData or PointSet)."""
    idx = np.arange(n, dtype=np.int64)
    return _metric_rows(shard, idx, comm) if kind == "metric" else _point_rows(shard, idx, comm)


def _width_sweep(cfg: dict, ctx: dict, data: dict, say, outdir, summary) -> dict:
    """One network per width on the first n_train train points; NTK change and σ per width (data parallel).
    A stop request is honoured between widths and after every optimiser step of a width's training
    (`_stop_point`)."""
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.train import TrainConfig

    ws, c, kf_follows = cfg["width_sweep"], ctx["comm"], cfg["kernel_flow"]["enabled"]
    lr = ctx["tc"].lr if ws["lr"] is None else ws["lr"]
    sweep_tc = TrainConfig(**{**ctx["tc"].__dict__, "epochs": ws["epochs"], "optimizer": ws["optimizer"], "lr": lr})
    tr_small = _first_rows(ctx["train"], ws["n_train"], c, "metric")
    ntk_tr = _first_rows(ctx["train"], 10, c, "metric") if ctx["ntk_train"] is None else ctx["ntk_train"]
    ntk_te = _first_rows(ctx["val"], 10, c, "metric") if ctx["ntk_test"] is None else ctx["ntk_test"]
    parts = []
    for i, width in enumerate(ws["widths"]):  # each width's network is independent of the others
        if i:
            _stop_point(ctx, outdir, summary, f"in the width sweep, before width {width}")
        parts.append(ex.width_sweep([width], tr_small, ctx["val"], cfg["model"], sweep_tc, width_ref=ws["width_ref"],
                                    lr_exponent=ws["lr_exponent"], ntk_train=ntk_tr, ntk_test=ntk_te,
                                    seed=cfg["training"]["seed"], log=say, comm=c,
                                    on_step=_step_stop(ctx, outdir, summary, f"in the width sweep, width {width}",
                                                       last=i == len(ws["widths"]) - 1 and not kf_follows),
                                    abort_on_error=False))  # `hpcflow nn`'s own guard ends the job (commands/nn.py)
    sw = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    data.update({f"width_sweep/{k}": v for k, v in sw.items()})
    return dict(sw)


def _kernel_flow_vs_network(cfg: dict, ctx: dict, data: dict, say, outdir, summary) -> dict:
    """Kernel flow with the epoch-0 network's NTK vs that network trained on the same (flow) train points; a stop
    request is honoured after every step of the flow, between the two and after every optimiser step of the
    network's training (`_stop_point`)."""
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.train import TrainConfig

    kf, tc, model0, c = cfg["kernel_flow"], ctx["tc"], ctx["model0"], ctx["comm"]
    tr, te = _first_rows(ctx["train_ps"], kf["n_train"], c, "points"), _first_rows(ctx["val_ps"], kf["n_test"], c,
                                                                                   "points")

    def stop_point(info):  # after every step of the flow: a stop request is honoured within one step
        _stop_point(ctx, outdir, summary, f"in the kernel flow, after step {info['step']} of {kf['steps']}")

    flow = ex.ntk_kernel_flow(model0, ctx["X"], tr, te, dt=kf["dt"], steps=kf["steps"], tile=kf["tile"],
                              loss=tc.loss, callback=stop_point)
    _stop_point(ctx, outdir, summary, "after the kernel flow")
    small_tc = TrainConfig(**{**tc.__dict__, "batch_size": min(tc.batch_size, kf["n_train"])})
    dtype, device = cfg["model"]["dtype"], ctx["device"]
    res = ex.train_with_ntk(copy.deepcopy(model0), ex.as_data(tr, dtype, device), ex.as_data(te, dtype, device),
                            small_tc, comm=c, on_step=_step_stop(ctx, outdir, summary, "training the network on "
                                                                 "the kernel flow's points", last=True),
                            abort_on_error=False)  # `hpcflow nn`'s own guard ends the job (commands/nn.py)
    for k in ("sigma_train", "sigma_test"):
        data[f"kernel_flow/{k}"] = flow[k]
    data["kernel_flow/nn_sigma_train"] = res["history"]["sigma_train"]
    data["kernel_flow/nn_sigma_test"] = res["history"]["sigma_val"]
    final = math.nan if res["diverged"] else 1.0  # a diverged network has no final result
    out = {"flow_sigma_test_final": flow["sigma_test"][-1], "flow_sigma_train_final": flow["sigma_train"][-1],
           "flow_sigma_test_initial": flow["sigma_test"][0], "flow_steps_taken": flow["steps_taken"],
           "flow_rejected_steps": flow["rejected_steps"], "flow_seconds": flow["seconds"],
           "nn_sigma_test_initial": res["history"]["sigma_val"][0],
           "nn_sigma_test_final": final * res["history"]["sigma_val"][-1],
           "nn_sigma_train_final": final * res["history"]["sigma_train"][-1], "nn_stopped": res["diverged"] or ""}
    nn = f"diverged ({res['diverged']})" if res["diverged"] else f"{out['nn_sigma_test_final']:.4f}"
    say(f"kernel flow (epoch-0 NTK) sigma_test {out['flow_sigma_test_final']:.4f}  vs  "
        f"network trained on the same points {nn}")
    return out


_CONVENTIONS = json.dumps({  # sorted keys, as every JSON attribute (docs/outputs.md)
    "packing": "g00, g11, g22, Re g01, Im g01, Re g02, Im g02, Re g12, Im g12 (hpcflow.geometry.hermitian.pack)",
    "history": "index 0 = before training; sigma (eq. B.11) with kappa from the evaluated points; "
               "val_not_positive_definite: validation points whose metric is not positive definite",
    "ntk": "Theta[I, J, a, b] = sum_theta dg_I(x_a)/dtheta dg_J(x_b)/dtheta; per epoch (index 0 = init)",
    "spectrum": "eigenvalues of (A_IJ + A_JI)/2, A_IJ[a, b] = Theta_IJ(train_a, train_b), pooled over I, J",
    "spectrum_full": "eigenvalues of the PSD matrix Theta[(I, a), (J, b)] over the train points",
    "spectrum_train_test": "the paper's statistic: complex eigenvalues of B_IJ[a, b] = Theta_IJ(train_a, test_b), "
                           "pooled over I, J; wasserstein_train_test compares their real parts with epoch 0",
    "wasserstein": "scipy.stats.wasserstein_distance(spectrum[t], spectrum[0])",
    "rel_frobenius": "||Theta_t - Theta_0||_F / ||Theta_0||_F on the train x test block",
    "kernel_flow": "eq. 3.5 from g_FS with the fixed epoch-0 NTK; nn_* = same initial network trained on the "
                   "flow's train points, evaluated on its test points",
}, sort_keys=True)
