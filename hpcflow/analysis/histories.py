"""sigma histories (eq. B.11, train and test, log scale) of any runs overlaid, and per-rank step time and
communication volume of a distributed run.

Flow runs: DIR/checkpoint.h5 history/sigma_train, history/sigma_test (step 0 = FS), and when recorded
history/step_seconds, history/comm_bytes (steps, ranks). nn runs: DIR/nn.h5 history/sigma_train, sigma_val
(an interrupted one: the same histories in DIR/checkpoint.pt).
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.analysis.figure import new_figure
from hpcflow.analysis.rundir import (CHECKPOINT, NN, NN_CHECKPOINT, MissingData, check_array, label, read_attrs,
                                     read_datasets, read_summary, run_state, training_history)

HINT = "pass the run directory of a flow or nn job"
PER_RANK = ("history/step_seconds", "history/comm_bytes")
NDIM = {"history/sigma_train": 1, "history/sigma_test": 1, "history/sigma_val": 1, **dict.fromkeys(PER_RANK, (1, 2))}


def _kernel_tag(run_dir, ckpt) -> str:
    """' [kernel]' from summary.json, or from the checkpoint's config when the run has no summary yet."""
    kernel = (read_summary(run_dir) or {}).get("kernel")
    if not isinstance(kernel, str) and os.path.isfile(ckpt):
        cfg = read_attrs(ckpt, hint=HINT).get("config")
        kernel = ((cfg.get("kernel") or {}).get("name")) if isinstance(cfg, dict) else None
    return f" [{kernel}]" if isinstance(kernel, str) else ""


def load(run_dir) -> dict:
    """{'label', 'x', 'train', 'test', 'unit', ...} from checkpoint.h5 (per step) or nn.h5 (per epoch); the label
    marks a run that did not finish (incomplete, diverged, stopped: rundir.RunState.suffix)."""
    run_dir = os.fspath(run_dir)
    ckpt, nn = os.path.join(run_dir, CHECKPOINT), os.path.join(run_dir, NN)
    if os.path.isfile(ckpt):
        d = read_datasets(ckpt, ("history/sigma_train", "history/sigma_test"), hint=HINT, optional=PER_RANK, ndim=NDIM)
        out = {"train": d["history/sigma_train"], "test": d["history/sigma_test"], "unit": "flow step"}
        out.update({k.split("/")[1]: d[k] for k in PER_RANK if k in d})
    elif os.path.isfile(nn):
        d = read_datasets(nn, ("history/sigma_train", "history/sigma_val"), hint=HINT, ndim=NDIM)
        out = {"train": d["history/sigma_train"], "test": d["history/sigma_val"], "unit": "epoch"}
    elif os.path.isfile(os.path.join(run_dir, NN_CHECKPOINT)):  # a network run interrupted before nn.h5
        pt = os.path.join(run_dir, NN_CHECKPOINT)
        d = {k: check_array(pt, f"train.history.{k}", v, ndim=1, hint=HINT)
             for k, v in training_history(pt, ("sigma_train", "sigma_val"), hint=HINT).items()}
        out = {"train": d["sigma_train"], "test": d["sigma_val"], "unit": "epoch"}
    else:
        raise MissingData(f"{run_dir}: no {CHECKPOINT}, {NN} or {NN_CHECKPOINT}; {HINT}")
    name = label(run_dir) + _kernel_tag(run_dir, ckpt) + run_state(run_dir).suffix()
    out.update(label=name, x=np.arange(len(out["train"])))
    return out


def plot(runs):
    """Train (solid) and test (dashed) sigma per step of every run, one colour per run, log y."""
    fig, (ax,) = new_figure(size=(7.2, 4.8))
    for i, r in enumerate(runs):
        ax.plot(r["x"], r["train"], "-", color=f"C{i % 10}", label=f"{r['label']} train")
        if len(r["test"]) == len(r["x"]) and np.isfinite(r["test"]).any():
            ax.plot(r["x"], r["test"], "--", color=f"C{i % 10}", label=f"{r['label']} test")
    ax.set_yscale("log")
    units = {r["unit"] for r in runs}
    ax.set_xlabel(units.pop() if len(units) == 1 else "step / epoch")
    ax.set_ylabel("sigma (eq. B.11)")
    ax.set_title("sigma histories")
    ax.legend(fontsize="x-small")
    return fig


RANK_PANELS = (("step_seconds", "step time [s]"), ("comm_bytes", "bytes sent"))


def has_per_rank(run) -> bool:
    """Whether per-rank figures were recorded for at least one step (a run can stop before its first step)."""
    return any(len(run.get(key, ())) for key, _ in RANK_PANELS)


def plot_per_rank(run):
    """Step time and communication volume per step (those recorded), one line per rank."""
    panels = [(key, ylabel) for key, ylabel in RANK_PANELS if len(run.get(key, ()))]
    fig, axes = new_figure(1, len(panels), size=(5.5 * len(panels), 4.2))
    for ax, (key, ylabel) in zip(axes, panels):
        values = np.asarray(run[key], dtype=float).reshape(len(run[key]), -1)
        steps = np.arange(1, len(values) + 1)
        for r in range(values.shape[1]):
            ax.plot(steps, values[:, r], "-", lw=1, label=f"rank {r}")
        ax.set_xlabel("flow step")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize="x-small", ncol=2)
    fig.suptitle(f"per-rank cost: {run['label']}")
    return fig


def numbers(runs) -> list:
    return [f"{r['label']}: sigma train {r['train'][0]:.4g} -> {r['train'][-1]:.4g}, "
            f"test {r['test'][0]:.4g} -> {r['test'][-1]:.4g} ({len(r['x']) - 1} {r['unit']}s)" for r in runs]
